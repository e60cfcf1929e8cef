//! NumPy `.npy` files: a memory-mapped reader and a minimal writer.
//!
//! Format (numpy.lib.format): magic `\x93NUMPY`, major/minor version bytes,
//! little-endian header length (u16 for 1.0, u32 for 2.0/3.0), then an ASCII
//! Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`
//! padded with spaces and a final `\n`, then the raw data.
//!
//! Split by concern: `header` decodes the preamble and the dict's keys, `dict` parses
//! the Python literal itself, `read` maps and validates a file, `write` produces one.

mod dict;
mod header;
mod read;
mod write;

#[cfg(test)]
mod tests;

pub use header::npy_descr;
pub use read::read_npy;
pub use write::write_npy;

/// The six bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

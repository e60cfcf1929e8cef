//! TFRecord framing, the container format of TensorBoard event files.
//!
//! Every record is
//! `u64 LE length | u32 LE masked crc32c(length bytes) | data | u32 LE masked crc32c(data)`.
//! The CRC-32C (Castagnoli) itself comes from the `crc32c` crate (hardware-accelerated
//! where the CPU has it); only TFRecord's masking is written here.

use std::io::{self, Write};

/// TFRecord's masked CRC-32C: rotating and offsetting keeps a CRC of data that itself
/// contains CRCs from being trivially zero. Readers verify both CRCs of every record
/// with this.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// Frames `data` as one record.
pub(crate) fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_vectors() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c::crc32c(b""), 0);
        // Masked values as computed by TensorBoard's Python `masked_crc32c`.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        assert_eq!(masked_crc32c(&[0u8; 8]), 0x0798_0329);
    }

    /// The framed bytes of a known record (the `file_version` event with wall time 2.0),
    /// checksums included, as the hand-written CRC-32C produced them before the switch
    /// to the `crc32c` crate.
    #[test]
    fn known_record_is_unchanged() {
        let data = [
            0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x1a, 0x0d, b'b', b'r', b'a', b'i', b'n', b'.', b'E',
            b'v', b'e', b'n', b't', b':', b'2',
        ];
        let mut out = Vec::new();
        write_record(&mut out, &data).expect("write to a Vec");
        assert_eq!(out.len(), data.len() + 16);
        assert_eq!(out[..8], 24u64.to_le_bytes());
        assert_eq!(out[12..36], data);
        assert_eq!(
            u32::from_le_bytes([out[8], out[9], out[10], out[11]]),
            0x224b_7fa3
        );
        assert_eq!(
            u32::from_le_bytes([out[36], out[37], out[38], out[39]]),
            0xe7e0_2eff
        );
    }
}

//! The `deeptrain` binary: everything is in the library's `cli` module (see
//! `deeptrain --help`); this only hands its exit status to the OS.

fn main() {
    std::process::exit(deeptrain::cli::main());
}

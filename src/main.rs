//! The `deeptrain` binary: everything is in the library's `cli` module (see
//! `deeptrain --help`; `cli::main` also tunes the allocator, see `cli::tune_allocator`);
//! this only hands the exit status to the OS.

fn main() {
    std::process::exit(deeptrain::cli::main());
}

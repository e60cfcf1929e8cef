//! The `deeptrain` binary: everything is in the library's `cli` module (see
//! `deeptrain --help`); this only picks the allocator and hands the exit status to the OS.

/// mimalloc instead of the system allocator: a training step allocates and frees every
/// intermediate tensor, and glibc's malloc hands large blocks back to the kernel and faults
/// them in again on the next step (page faults and zeroing were ~8% of an MNIST MLP step).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(deeptrain::cli::main());
}

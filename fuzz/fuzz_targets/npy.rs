//! cargo-fuzz entry of the `npy` target; the body is `deeptrain_fuzz::npy` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    deeptrain_fuzz::npy(data);
});

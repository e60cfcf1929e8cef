//! cargo-fuzz entry of the `checkpoint` target; the body is `deeptrain_fuzz::checkpoint` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    deeptrain_fuzz::checkpoint(data);
});

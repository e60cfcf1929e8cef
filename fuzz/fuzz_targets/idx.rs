//! cargo-fuzz entry of the `idx` target; the body is `deeptrain_fuzz::idx` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    deeptrain_fuzz::idx(data);
});

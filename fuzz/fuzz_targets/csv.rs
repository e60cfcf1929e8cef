//! cargo-fuzz entry of the `csv` target; the body is `deeptrain_fuzz::csv` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    deeptrain_fuzz::csv(data);
});

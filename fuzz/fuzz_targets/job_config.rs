//! cargo-fuzz entry of the `job_config` target; the body is `deeptrain_fuzz::job_config` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    deeptrain_fuzz::job_config(data);
});

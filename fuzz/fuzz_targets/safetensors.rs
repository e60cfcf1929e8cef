//! cargo-fuzz entry of the `safetensors` target; the body is `deeptrain_fuzz::safetensors` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    deeptrain_fuzz::safetensors(data);
});

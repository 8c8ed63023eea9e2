#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certhub_fuzz::jws(data));

#![no_main]
// Whatever the bytes: an error or Ok, never a panic, a hang or an outsized allocation.
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = nfnet::fuzzing::cifar(bytes);
});

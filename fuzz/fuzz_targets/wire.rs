//! A datagram (or serial byte stream) as a peer could send it: decoded and framed without a
//! panic, whatever it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferroha::hb::fuzz::wire(data);
});

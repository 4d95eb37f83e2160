//! ha.cf, haresources and authkeys texts (split on NUL bytes): parsed into errors, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferroha::hb::fuzz::config(data);
});

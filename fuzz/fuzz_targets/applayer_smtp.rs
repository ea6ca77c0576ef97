//! Fuzzes the app-layer SMTP parser (`zonewatch_applayer`): arbitrary
//! commands and replies in both directions, any chunking, optional gap;
//! see `applayer_common.rs` for the input layout. Must not panic; memory
//! stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("applayer_common.rs");

fuzz_target!(|data: &[u8]| {
    drive(data, AppProto::Smtp, 6, 25);
});

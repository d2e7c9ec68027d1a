//! Fuzz target: `message::seven_bit::to_seven_bit`, the conversion of 8-bit mail for a server
//! without 8BITMIME. It must never panic; when it converts, the result must be pure 7-bit,
//! still parse as MIME, and be unchanged for input that was 7-bit already; converting the
//! result again must change nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use message::seven_bit::{has_8bit, to_seven_bit};

fuzz_target!(|data: &[u8]| {
    let Some(out) = to_seven_bit(data) else {
        assert!(has_8bit(data), "7-bit input is always convertible");
        return;
    };
    assert!(!has_8bit(&out), "8-bit octets left in the conversion");
    if !has_8bit(data) {
        assert_eq!(out, data, "7-bit input must pass unchanged");
    }
    let _ = message::mime::parse(&out);
    assert_eq!(to_seven_bit(&out).as_deref(), Some(out.as_slice()));
});

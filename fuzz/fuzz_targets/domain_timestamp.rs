//! `Timestamp::parse_rfc3339`, and that what the server writes reads back the same.
#![no_main]

use chat_domain::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(instant) = Timestamp::parse_rfc3339(text) {
        let written = instant.to_string();
        assert_eq!(
            Timestamp::parse_rfc3339(&written),
            Some(instant),
            "{written}"
        );
    }
});

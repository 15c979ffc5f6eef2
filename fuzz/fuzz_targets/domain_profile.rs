//! Profile bodies and events: `Profile::from_json` and `ProfileUpdate::from_json`.
#![no_main]

use chat_domain::{Profile, ProfileUpdate};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(profile) = Profile::from_json(&value) {
        for field in [&profile.gender, &profile.language, &profile.location]
            .into_iter()
            .flatten()
        {
            let text = field.as_str();
            assert!(!text.is_empty() && text.chars().count() <= 64, "{text:?}");
            assert_eq!(text.trim(), text);
        }
    }
    let _ = ProfileUpdate::from_json(&value);
});

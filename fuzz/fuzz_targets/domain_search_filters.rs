//! `match:search` / `match:next` payloads: `SearchFilters::from_payload`.
#![no_main]

use chat_domain::SearchFilters;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(filters) = SearchFilters::from_payload(Some(&value)) {
        for field in [&filters.gender, &filters.language, &filters.location]
            .into_iter()
            .flatten()
        {
            let lowered = field.as_str().to_ascii_lowercase();
            assert!(!matches!(lowered.as_str(), "" | "any" | "all"));
        }
    }
});

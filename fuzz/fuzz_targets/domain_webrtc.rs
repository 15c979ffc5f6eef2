//! WebRTC signaling payloads: offers, answers, ICE candidates and the call kind. What passes
//! is re-built with its standard fields only and within the size limits.
#![no_main]

use chat_domain::webrtc::{
    MAX_CANDIDATE_BYTES, MAX_SDP_BYTES, SdpRole, parse_call_kind, validate_candidate,
    validate_description,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for role in [SdpRole::Offer, SdpRole::Answer] {
        if let Ok(clean) = validate_description(Some(&value), role) {
            let object = clean.as_object().expect("an object");
            assert_eq!(object.len(), 2);
            let sdp = object["sdp"].as_str().expect("a string sdp");
            assert!(!sdp.is_empty() && sdp.len() <= MAX_SDP_BYTES);
        }
    }
    if let Ok(clean) = validate_candidate(Some(&value)) {
        assert!(clean.to_string().len() <= MAX_CANDIDATE_BYTES);
        let object = clean.as_object().expect("an object");
        assert!(object.keys().all(|key| matches!(
            key.as_str(),
            "candidate" | "sdpMid" | "sdpMLineIndex" | "usernameFragment"
        )));
    }
    if let Some(object) = value.as_object() {
        let _ = parse_call_kind(object.get("type"));
    }
});

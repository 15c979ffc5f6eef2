//! WebRTC signaling payloads: offers, answers, ICE candidates and the call kind. What passes
//! is re-built with its standard fields only and within the size limits.
#![no_main]

use chat_domain::webrtc::{
    IceCandidate, MAX_CANDIDATE_BYTES, MAX_SDP_BYTES, SdpType, SessionDescription,
    parse_call_kind,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for kind in [SdpType::Offer, SdpType::Answer] {
        if let Ok(clean) = SessionDescription::parse(Some(&value), kind) {
            assert_eq!(clean.kind, kind);
            assert!(!clean.sdp.is_empty() && clean.sdp.len() <= MAX_SDP_BYTES);
            let json = serde_json::to_value(&clean).expect("serializable");
            assert_eq!(json.as_object().expect("an object").len(), 2);
        }
    }
    if let Ok(clean) = IceCandidate::parse(Some(&value)) {
        let text = serde_json::to_string(&clean).expect("serializable");
        assert!(text.len() <= MAX_CANDIDATE_BYTES);
        let json: Value = serde_json::from_str(&text).expect("valid JSON");
        assert!(json.as_object().expect("an object").keys().all(|key| matches!(
            key.as_str(),
            "candidate" | "sdpMid" | "sdpMLineIndex" | "usernameFragment"
        )));
        let back: IceCandidate = serde_json::from_str(&text).expect("it reads back");
        assert_eq!(back, clean, "travels between nodes unchanged");
    }
    if let Some(object) = value.as_object() {
        let _ = parse_call_kind(object.get("type"));
    }
});

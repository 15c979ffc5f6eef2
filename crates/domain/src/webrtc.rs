//! Validation of WebRTC signaling payloads: the server relays them, so it checks their shape
//! and size and nothing else.

use serde_json::Value;

use crate::error::DomainError;

/// The largest SDP accepted, in bytes (64 KiB).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// The largest single ICE candidate accepted, in bytes of JSON (4 KiB).
pub const MAX_CANDIDATE_BYTES: usize = 4 * 1024;

/// Audio or video call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    /// Audio only.
    Audio,
    /// Audio and video.
    Video,
}

impl CallKind {
    /// The contract's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }
}

/// Which session description a payload must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpRole {
    /// `{type: "offer", sdp}`.
    Offer,
    /// `{type: "answer", sdp}`.
    Answer,
}

impl SdpRole {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
        }
    }
}

/// Checks a session description `{type, sdp}` of the expected role and returns a clean copy
/// holding only those two fields.
pub fn validate_description(
    description: Option<&Value>,
    role: SdpRole,
) -> Result<Value, DomainError> {
    let object = description
        .and_then(Value::as_object)
        .ok_or_else(|| DomainError::invalid(format!("{} must be an object", role.as_str())))?;
    if object.get("type").and_then(Value::as_str) != Some(role.as_str()) {
        return Err(DomainError::invalid(format!(
            "{}.type must be \"{}\"",
            role.as_str(),
            role.as_str()
        )));
    }
    let sdp = object
        .get("sdp")
        .and_then(Value::as_str)
        .filter(|sdp| !sdp.is_empty())
        .ok_or_else(|| {
            DomainError::invalid(format!("{}.sdp must be a non-empty string", role.as_str()))
        })?;
    if sdp.len() > MAX_SDP_BYTES {
        return Err(DomainError::TooLarge(format!(
            "{}.sdp must be at most {MAX_SDP_BYTES} bytes",
            role.as_str()
        )));
    }
    Ok(serde_json::json!({"type": role.as_str(), "sdp": sdp}))
}

/// Checks the call kind of an offer; absent means video, as the original assumed.
pub fn parse_call_kind(value: Option<&Value>) -> Result<CallKind, DomainError> {
    match value {
        None | Some(Value::Null) => Ok(CallKind::Video),
        Some(Value::String(kind)) if kind == "audio" => Ok(CallKind::Audio),
        Some(Value::String(kind)) if kind == "video" => Ok(CallKind::Video),
        Some(_) => Err(DomainError::invalid("type must be audio or video")),
    }
}

/// Checks an ICE candidate: an `RTCIceCandidateInit` object with a string `candidate`
/// (empty means end of candidates), at most 4 KiB of JSON, and returns a clean copy with only
/// the standard fields.
pub fn validate_candidate(candidate: Option<&Value>) -> Result<Value, DomainError> {
    let object = candidate
        .and_then(Value::as_object)
        .ok_or_else(|| DomainError::invalid("candidate must be an object"))?;
    let text = object
        .get("candidate")
        .and_then(Value::as_str)
        .ok_or_else(|| DomainError::invalid("candidate.candidate must be a string"))?;
    let mut clean = serde_json::Map::new();
    clean.insert("candidate".into(), Value::String(text.to_owned()));
    for (key, check) in [
        ("sdpMid", Value::is_string as fn(&Value) -> bool),
        ("sdpMLineIndex", Value::is_u64),
        ("usernameFragment", Value::is_string),
    ] {
        match object.get(key) {
            None => {}
            Some(value) if value.is_null() || check(value) => {
                clean.insert(key.into(), value.clone());
            }
            Some(_) => {
                return Err(DomainError::invalid(format!(
                    "candidate.{key} has the wrong type"
                )));
            }
        }
    }
    let clean = Value::Object(clean);
    if clean.to_string().len() > MAX_CANDIDATE_BYTES {
        return Err(DomainError::TooLarge(format!(
            "candidate must be at most {MAX_CANDIDATE_BYTES} bytes"
        )));
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn descriptions() {
        let offer = json!({"type": "offer", "sdp": "v=0\r\n", "extra": 1});
        assert_eq!(
            validate_description(Some(&offer), SdpRole::Offer).ok(),
            Some(json!({"type": "offer", "sdp": "v=0\r\n"}))
        );
        assert!(validate_description(Some(&offer), SdpRole::Answer).is_err());
        assert!(
            validate_description(Some(&json!({"type": "offer", "sdp": ""})), SdpRole::Offer)
                .is_err()
        );
        assert!(validate_description(Some(&json!("sdp")), SdpRole::Offer).is_err());
        assert!(validate_description(None, SdpRole::Offer).is_err());
        let huge = json!({"type": "offer", "sdp": "a".repeat(MAX_SDP_BYTES + 1)});
        assert!(matches!(
            validate_description(Some(&huge), SdpRole::Offer),
            Err(DomainError::TooLarge(_))
        ));
    }

    #[test]
    fn candidates() {
        let candidate = json!({"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0", "sdpMLineIndex": 0, "evil": true});
        let clean = validate_candidate(Some(&candidate)).ok();
        assert_eq!(clean.as_ref().and_then(|value| value.get("evil")), None);
        assert_eq!(
            clean.as_ref().and_then(|value| value.get("sdpMid")),
            Some(&json!("0"))
        );
        assert!(validate_candidate(Some(&json!({"candidate": ""}))).is_ok());
        assert!(validate_candidate(Some(&json!({"candidate": 1}))).is_err());
        assert!(
            validate_candidate(Some(&json!({"candidate": "x", "sdpMLineIndex": "zero"}))).is_err()
        );
        assert!(
            validate_candidate(Some(&json!({"candidate": "x".repeat(MAX_CANDIDATE_BYTES)})))
                .is_err()
        );
    }

    #[test]
    fn call_kinds() {
        assert_eq!(
            parse_call_kind(Some(&json!("audio"))).ok(),
            Some(CallKind::Audio)
        );
        assert_eq!(parse_call_kind(None).ok(), Some(CallKind::Video));
        assert!(parse_call_kind(Some(&json!("fax"))).is_err());
    }
}

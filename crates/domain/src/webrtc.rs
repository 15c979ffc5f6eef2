//! WebRTC signaling payloads: the server relays them, so it checks their shape and size and
//! nothing else, and re-builds them with their known fields only.
//!
//! [`SessionDescription`] and [`IceCandidate`] are parsed once at the edge (`parse`) and
//! serialize to the exact JSON the contract relays.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::DomainError;

/// The largest SDP accepted, in bytes (64 KiB).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// The largest single ICE candidate accepted, in bytes of JSON (4 KiB).
pub const MAX_CANDIDATE_BYTES: usize = 4 * 1024;

/// Audio or video call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// The type of a session description: which one a payload must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// `{type: "offer", sdp}`.
    Offer,
    /// `{type: "answer", sdp}`.
    Answer,
}

impl SdpType {
    /// The contract's name (also the payload field the description travels in).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
        }
    }
}

/// A checked session description: `{type, sdp}` with a non-empty SDP of at most
/// [`MAX_SDP_BYTES`]. Serializes to exactly those two fields.
// Fields in the order the relayed JSON has always had them (sorted keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// The SDP text.
    pub sdp: String,
    /// Offer or answer.
    #[serde(rename = "type")]
    pub kind: SdpType,
}

impl SessionDescription {
    /// Checks a session description `{type, sdp}` of the expected type `kind`; other fields
    /// are dropped.
    pub fn parse(description: Option<&Value>, kind: SdpType) -> Result<Self, DomainError> {
        let name = kind.as_str();
        let object = description
            .and_then(Value::as_object)
            .ok_or_else(|| DomainError::invalid(format!("{name} must be an object")))?;
        if object.get("type").and_then(Value::as_str) != Some(name) {
            return Err(DomainError::invalid(format!(
                "{name}.type must be \"{name}\""
            )));
        }
        let sdp = object
            .get("sdp")
            .and_then(Value::as_str)
            .filter(|sdp| !sdp.is_empty())
            .ok_or_else(|| {
                DomainError::invalid(format!("{name}.sdp must be a non-empty string"))
            })?;
        if sdp.len() > MAX_SDP_BYTES {
            return Err(DomainError::TooLarge(format!(
                "{name}.sdp must be at most {MAX_SDP_BYTES} bytes"
            )));
        }
        Ok(Self {
            sdp: sdp.to_owned(),
            kind,
        })
    }
}

/// A checked ICE candidate, an `RTCIceCandidateInit` with its standard fields only, at most
/// [`MAX_CANDIDATE_BYTES`] of JSON.
///
/// The optional fields keep what the client sent: `None` when absent (not serialized),
/// `Some(None)` when `null`, `Some(Some(value))` otherwise, so the relayed JSON is the one
/// the client's fields make.
// Fields in the order the relayed JSON has always had them (sorted keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The candidate line; empty means end of candidates.
    pub candidate: String,
    /// `sdpMLineIndex`.
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub sdp_m_line_index: Option<Option<u64>>,
    /// `sdpMid`.
    #[serde(
        rename = "sdpMid",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub sdp_mid: Option<Option<String>>,
    /// `usernameFragment`.
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub username_fragment: Option<Option<String>>,
}

/// A field that is present deserializes to `Some` (of `None` when `null`); an absent one
/// takes the `default`, `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl IceCandidate {
    /// Checks an ICE candidate: an object with a string `candidate`, optional `sdpMid`,
    /// `sdpMLineIndex` and `usernameFragment` of their types (or `null`), at most
    /// [`MAX_CANDIDATE_BYTES`] of JSON once re-built; other fields are dropped.
    pub fn parse(candidate: Option<&Value>) -> Result<Self, DomainError> {
        let object = candidate
            .and_then(Value::as_object)
            .ok_or_else(|| DomainError::invalid("candidate must be an object"))?;
        let text = object
            .get("candidate")
            .and_then(Value::as_str)
            .ok_or_else(|| DomainError::invalid("candidate.candidate must be a string"))?;
        let string = |value: &Value| value.as_str().map(str::to_owned);
        let clean = Self {
            candidate: text.to_owned(),
            sdp_mid: optional(object.get("sdpMid"), "sdpMid", string)?,
            sdp_m_line_index: optional(
                object.get("sdpMLineIndex"),
                "sdpMLineIndex",
                Value::as_u64,
            )?,
            username_fragment: optional(
                object.get("usernameFragment"),
                "usernameFragment",
                string,
            )?,
        };
        if clean.json_len() > MAX_CANDIDATE_BYTES {
            return Err(DomainError::TooLarge(format!(
                "candidate must be at most {MAX_CANDIDATE_BYTES} bytes"
            )));
        }
        Ok(clean)
    }

    /// The length of the candidate's JSON, counted without building it.
    fn json_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        match serde_json::to_writer(&mut counter, self) {
            Ok(()) => counter.0,
            Err(_) => usize::MAX,
        }
    }
}

/// An optional field of a candidate: absent, `null`, or a value `read` accepts.
fn optional<T>(
    value: Option<&Value>,
    key: &str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<Option<T>>, DomainError> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(value) => read(value)
            .map(|value| Some(Some(value)))
            .ok_or_else(|| DomainError::invalid(format!("candidate.{key} has the wrong type"))),
    }
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// Parses, checks the relayed JSON, and that it travels between nodes unchanged.
    fn check_candidate(input: Value, expected: Result<Value, &str>) {
        let parsed = IceCandidate::parse(Some(&input));
        match (&parsed, &expected) {
            (Ok(candidate), Ok(json)) => {
                assert_eq!(&serde_json::to_value(candidate).unwrap(), json, "{input}");
                let text = serde_json::to_string(candidate).unwrap();
                assert_eq!(
                    serde_json::from_str::<IceCandidate>(&text).ok().as_ref(),
                    Some(candidate)
                );
            }
            (Err(error), Err(message)) => assert_eq!(&error.to_string(), message, "{input}"),
            _ => panic!("{input}: {parsed:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn descriptions() {
        let offer = json!({"type": "offer", "sdp": "v=0\r\n", "extra": 1});
        let parsed = SessionDescription::parse(Some(&offer), SdpType::Offer).unwrap();
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            r#"{"sdp":"v=0\r\n","type":"offer"}"#
        );
        let text = serde_json::to_string(&parsed).unwrap();
        assert_eq!(
            serde_json::from_str::<SessionDescription>(&text).ok(),
            Some(parsed)
        );
        let error = |value: Option<&Value>, kind| {
            SessionDescription::parse(value, kind)
                .err()
                .map(|error| error.to_string())
        };
        assert_eq!(
            error(Some(&offer), SdpType::Answer).as_deref(),
            Some("answer.type must be \"answer\"")
        );
        assert_eq!(
            error(Some(&json!({"type": "offer", "sdp": ""})), SdpType::Offer).as_deref(),
            Some("offer.sdp must be a non-empty string")
        );
        assert_eq!(
            error(Some(&json!("sdp")), SdpType::Offer).as_deref(),
            Some("offer must be an object")
        );
        assert_eq!(
            error(None, SdpType::Offer).as_deref(),
            Some("offer must be an object")
        );
        let huge = json!({"type": "offer", "sdp": "a".repeat(MAX_SDP_BYTES + 1)});
        assert!(matches!(
            SessionDescription::parse(Some(&huge), SdpType::Offer),
            Err(DomainError::TooLarge(_))
        ));
        let largest = json!({"type": "answer", "sdp": "a".repeat(MAX_SDP_BYTES)});
        assert!(SessionDescription::parse(Some(&largest), SdpType::Answer).is_ok());
    }

    #[test]
    fn candidates() {
        check_candidate(
            json!({"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0", "sdpMLineIndex": 0, "evil": true}),
            Ok(
                json!({"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0", "sdpMLineIndex": 0}),
            ),
        );
        check_candidate(json!({"candidate": ""}), Ok(json!({"candidate": ""})));
        check_candidate(
            json!({"candidate": "x", "sdpMid": null, "sdpMLineIndex": null, "usernameFragment": null}),
            Ok(
                json!({"candidate": "x", "sdpMid": null, "sdpMLineIndex": null, "usernameFragment": null}),
            ),
        );
        check_candidate(
            json!({"candidate": "x", "usernameFragment": "abcd"}),
            Ok(json!({"candidate": "x", "usernameFragment": "abcd"})),
        );
        check_candidate(
            json!({"candidate": 1}),
            Err("candidate.candidate must be a string"),
        );
        check_candidate(json!("x"), Err("candidate must be an object"));
        check_candidate(
            json!({"candidate": "x", "sdpMLineIndex": "zero"}),
            Err("candidate.sdpMLineIndex has the wrong type"),
        );
        check_candidate(
            json!({"candidate": "x", "sdpMLineIndex": -1}),
            Err("candidate.sdpMLineIndex has the wrong type"),
        );
        // The first wrong field is named, in the order sdpMid, sdpMLineIndex, usernameFragment.
        check_candidate(
            json!({"candidate": "x", "usernameFragment": 1, "sdpMid": 2}),
            Err("candidate.sdpMid has the wrong type"),
        );
        check_candidate(
            json!({"candidate": "x".repeat(MAX_CANDIDATE_BYTES)}),
            Err("candidate must be at most 4096 bytes"),
        );
        // The limit counts the re-built JSON: `{"candidate":"…"}` is 16 bytes around the text.
        check_candidate(
            json!({"candidate": "x".repeat(MAX_CANDIDATE_BYTES - 16), "junk": "y".repeat(9000)}),
            Ok(json!({"candidate": "x".repeat(MAX_CANDIDATE_BYTES - 16)})),
        );
        check_candidate(
            json!({"candidate": "x".repeat(MAX_CANDIDATE_BYTES - 15)}),
            Err("candidate must be at most 4096 bytes"),
        );
        assert_eq!(
            serde_json::to_string(
                &IceCandidate::parse(Some(&json!({"usernameFragment": "u", "candidate": "c", "sdpMid": "0", "sdpMLineIndex": 1}))).unwrap()
            )
            .unwrap(),
            r#"{"candidate":"c","sdpMLineIndex":1,"sdpMid":"0","usernameFragment":"u"}"#,
            "keys in the order they were always relayed in"
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

//! How the chat's [`Outgoing`] events are written on the wire: event names and payloads of
//! the contract.

use chat_signaling::Outgoing;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// The wire event name of an outgoing chat event.
pub fn event_name(event: &Outgoing) -> &'static str {
    match event {
        Outgoing::Searching => "match:searching",
        Outgoing::Cancelled => "match:cancelled",
        Outgoing::Found { .. } => "match:found",
        Outgoing::Message(_) => "chat:message",
        Outgoing::Sent { .. } => "message:sent",
        Outgoing::Delivered { .. } => "message:delivered",
        Outgoing::Typing { .. } => "chat:typing",
        Outgoing::Cleared => "chat:cleared",
        Outgoing::PartnerDisconnected { .. } => "partner:disconnected",
        Outgoing::PartnerReconnected => "partner:reconnected",
        Outgoing::RoomClosed { .. } => "room:closed",
        Outgoing::Offer { .. } => "webrtc:offer",
        Outgoing::Answer { .. } => "webrtc:answer",
        Outgoing::Candidate { .. } => "webrtc:ice-candidate",
        Outgoing::CallEnded { .. } => "webrtc:call-end",
        Outgoing::CallRejected { .. } => "webrtc:call-reject",
        Outgoing::CallTimeout { .. } => "webrtc:call-timeout",
    }
}

/// The wire payload of an outgoing chat event, serialized straight from the event (no
/// intermediate JSON tree: this is the relay's hot path).
pub struct Payload<'a>(pub &'a Outgoing);

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Outgoing::Searching
            | Outgoing::Cancelled
            | Outgoing::Cleared
            | Outgoing::PartnerReconnected => serializer.serialize_map(Some(0))?.end(),
            Outgoing::Found {
                room_id,
                partner,
                initiator,
                ..
            } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("roomId", room_id)?;
                map.serialize_entry("partner", partner)?;
                map.serialize_entry("initiator", initiator)?;
                map.end()
            }
            Outgoing::Message(message) => message.serialize(serializer),
            Outgoing::Sent {
                id,
                client_id,
                timestamp,
            } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("id", id)?;
                map.serialize_entry("clientId", client_id)?;
                map.serialize_entry("timestamp", timestamp)?;
                map.end()
            }
            Outgoing::Delivered { id, delivered_at } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("id", id)?;
                map.serialize_entry("deliveredAt", delivered_at)?;
                map.end()
            }
            Outgoing::Typing { from, is_typing } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("from", from)?;
                map.serialize_entry("isTyping", is_typing)?;
                map.end()
            }
            Outgoing::PartnerDisconnected { grace_secs } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("graceSecs", grace_secs)?;
                map.end()
            }
            Outgoing::RoomClosed { room_id, reason } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("roomId", room_id)?;
                map.serialize_entry("reason", reason.as_str())?;
                map.end()
            }
            Outgoing::Offer {
                offer,
                kind,
                from,
                from_username,
                timestamp,
            } => {
                let mut map = serializer.serialize_map(Some(5))?;
                map.serialize_entry("offer", offer)?;
                map.serialize_entry("type", kind)?;
                map.serialize_entry("from", from)?;
                map.serialize_entry("fromUsername", from_username)?;
                map.serialize_entry("timestamp", timestamp)?;
                map.end()
            }
            Outgoing::Answer {
                answer,
                from,
                from_username,
            } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("answer", answer)?;
                map.serialize_entry("from", from)?;
                map.serialize_entry("fromUsername", from_username)?;
                map.end()
            }
            Outgoing::Candidate { candidate, from } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("candidate", candidate)?;
                map.serialize_entry("from", from)?;
                map.end()
            }
            Outgoing::CallEnded {
                from,
                from_username,
            }
            | Outgoing::CallRejected {
                from,
                from_username,
            }
            | Outgoing::CallTimeout {
                from,
                from_username,
            } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("from", from)?;
                map.serialize_entry("fromUsername", from_username)?;
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_domain::webrtc::{IceCandidate, SdpType, SessionDescription};
    use chat_domain::{GuestUser, MessageId, Profile, RoomId, Timestamp, UserId, Username};
    use chat_signaling::CloseReason;
    use serde_json::{Value, json};

    use super::*;

    fn check(event: Outgoing, name: &str, expected: Value) {
        assert_eq!(event_name(&event), name);
        assert_eq!(
            serde_json::to_value(Payload(&event)).ok(),
            Some(expected),
            "{name}"
        );
    }

    #[test]
    fn payloads_have_the_contract_shapes() {
        let (user, name, room) = (UserId::generate(), Username::generate(), RoomId::generate());
        let now = Timestamp::from_millis(0);
        let partner = GuestUser::new(Profile::default(), now).public();
        check(Outgoing::Searching, "match:searching", json!({}));
        check(
            Outgoing::Found {
                room_id: room.clone(),
                partner: partner.clone(),
                initiator: true,
                own_username: name.clone(),
            },
            "match:found",
            json!({"roomId": room, "partner": partner, "initiator": true}),
        );
        let id = MessageId::generate(now);
        check(
            Outgoing::Sent {
                id: id.clone(),
                client_id: None,
                timestamp: now,
            },
            "message:sent",
            json!({"id": id, "clientId": null, "timestamp": now}),
        );
        check(
            Outgoing::Delivered {
                id: id.clone(),
                delivered_at: now,
            },
            "message:delivered",
            json!({"id": id, "deliveredAt": now}),
        );
        check(
            Outgoing::Typing {
                from: user.clone(),
                is_typing: true,
            },
            "chat:typing",
            json!({"from": user, "isTyping": true}),
        );
        check(
            Outgoing::PartnerDisconnected { grace_secs: 10 },
            "partner:disconnected",
            json!({"graceSecs": 10}),
        );
        check(
            Outgoing::RoomClosed {
                room_id: room.clone(),
                reason: CloseReason::PartnerLeft,
            },
            "room:closed",
            json!({"roomId": room, "reason": "partner_left"}),
        );
        check(
            Outgoing::Offer {
                offer: SessionDescription {
                    sdp: "v=0".into(),
                    kind: SdpType::Offer,
                },
                kind: chat_domain::webrtc::CallKind::Audio,
                from: user.clone(),
                from_username: name.clone(),
                timestamp: now,
            },
            "webrtc:offer",
            json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "audio", "from": user, "fromUsername": name, "timestamp": now}),
        );
        check(
            Outgoing::Answer {
                answer: SessionDescription {
                    sdp: "v=0".into(),
                    kind: SdpType::Answer,
                },
                from: user.clone(),
                from_username: name.clone(),
            },
            "webrtc:answer",
            json!({"answer": {"type": "answer", "sdp": "v=0"}, "from": user, "fromUsername": name}),
        );
        check(
            Outgoing::Candidate {
                candidate: IceCandidate {
                    candidate: "candidate:1".into(),
                    sdp_mid: Some(None),
                    sdp_m_line_index: Some(Some(0)),
                    username_fragment: None,
                },
                from: user.clone(),
            },
            "webrtc:ice-candidate",
            json!({"candidate": {"candidate": "candidate:1", "sdpMid": null, "sdpMLineIndex": 0}, "from": user}),
        );
        check(
            Outgoing::CallTimeout {
                from: user.clone(),
                from_username: name.clone(),
            },
            "webrtc:call-timeout",
            json!({"from": user, "fromUsername": name}),
        );
    }
}

//! How the chat's [`Outgoing`] events are written on the wire: event names and payloads of
//! the contract.

use chat_signaling::Outgoing;
use serde_json::{Value, json};

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

/// The wire payload of an outgoing chat event.
pub fn payload(event: &Outgoing) -> Value {
    match event {
        Outgoing::Searching
        | Outgoing::Cancelled
        | Outgoing::Cleared
        | Outgoing::PartnerReconnected => json!({}),
        Outgoing::Found {
            room_id,
            partner,
            initiator,
            ..
        } => json!({"roomId": room_id, "partner": partner, "initiator": initiator}),
        Outgoing::Message(message) => serde_json::to_value(message).unwrap_or(Value::Null),
        Outgoing::Sent {
            id,
            client_id,
            timestamp,
        } => json!({"id": id, "clientId": client_id, "timestamp": timestamp}),
        Outgoing::Delivered { id, delivered_at } => json!({"id": id, "deliveredAt": delivered_at}),
        Outgoing::Typing { from, is_typing } => json!({"from": from, "isTyping": is_typing}),
        Outgoing::PartnerDisconnected { grace_secs } => json!({ "graceSecs": grace_secs }),
        Outgoing::RoomClosed { room_id, reason } => {
            json!({"roomId": room_id, "reason": reason.as_str()})
        }
        Outgoing::Offer {
            offer,
            kind,
            from,
            from_username,
            timestamp,
        } => {
            json!({"offer": offer, "type": kind, "from": from, "fromUsername": from_username, "timestamp": timestamp})
        }
        Outgoing::Answer {
            answer,
            from,
            from_username,
        } => json!({"answer": answer, "from": from, "fromUsername": from_username}),
        Outgoing::Candidate { candidate, from } => json!({"candidate": candidate, "from": from}),
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
            json!({"from": from, "fromUsername": from_username})
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The quoted literals of `source` that look like event names: `word:word[-word]…`.
    fn event_literals(source: &str) -> BTreeSet<&str> {
        let is_event = |text: &str| {
            text.contains(':')
                && text.chars().all(|character| {
                    character.is_ascii_lowercase() || character == ':' || character == '-'
                })
        };
        source.split('"').filter(|text| is_event(text)).collect()
    }

    #[test]
    fn the_asyncapi_document_names_every_socket_event() {
        let code: BTreeSet<&str> = [
            include_str!("events.rs"),
            include_str!("handler.rs"),
            include_str!("hub.rs"),
            include_str!("wire.rs"),
        ]
        .into_iter()
        .flat_map(event_literals)
        .collect();
        let document = include_str!("../../../../docs/asyncapi.yaml");
        // Message names sit at one depth under `components: messages:`.
        let documented: BTreeSet<&str> = document
            .lines()
            .filter_map(|line| line.strip_prefix("      name: "))
            .collect();
        assert!(code.len() > 25, "{code:?}");
        let undocumented: Vec<_> = code.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "events missing from docs/asyncapi.yaml: {undocumented:?}"
        );
        let unknown: Vec<_> = documented
            .iter()
            .filter(|name| !code.contains(*name) && !["ack", "error"].contains(name))
            .collect();
        assert!(
            unknown.is_empty(),
            "docs/asyncapi.yaml names events the code does not have: {unknown:?}"
        );
        assert!(documented.contains("error"));
    }
}

//! Outgoing Socket.IO packets, encoded once: [`EncodedPacket`].
//!
//! Socket.IO packets are encoded by `socketioxide-parser-common`; this module only wraps the
//! result in the Engine.IO message framing (`4` + packet) and splits off binary attachments,
//! as the engine's frames.

use bytes::Bytes;
use bytestring::ByteString;
use engineioxide_core::{Sid, Str};
use serde::{Serialize, ser::SerializeTuple};
use serde_json::Value;
use socketioxide_core::{
    Value as SioValue,
    packet::{ConnectPacket, Packet},
    parser::{Parse, ParserError},
};
use socketioxide_parser_common::CommonParser;

use crate::engine::frame::Frame;

/// A Socket.IO packet encoded once, ready to be queued on any number of sockets; each send is a
/// reference-count clone of the encoded bytes.
#[derive(Debug, Clone)]
pub struct EncodedPacket {
    text: ByteString,
    attachments: Vec<Bytes>,
}

impl EncodedPacket {
    /// An EVENT `[event, data]` for namespace `nsp`. A tuple or array `data` is spread into
    /// several arguments (`&[(); 0]` sends none, `()` sends `null`); `bytes::Bytes` values
    /// become binary attachments.
    pub fn event<T: Serialize + ?Sized>(
        nsp: &str,
        event: &str,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        event_packet(nsp_str(nsp), event, data, None)
    }

    /// An EVENT whose arguments are given as JSON values; `{"_placeholder":true,"num":i}`
    /// objects among them refer to `attachments[i]`.
    pub fn event_with_attachments(
        nsp: &str,
        event: &str,
        args: &[Value],
        attachments: Vec<Bytes>,
    ) -> Result<Self, serde_json::Error> {
        let value = with_attachments(encode_value(&ArgsTuple(args), Some(event))?, attachments);
        Ok(encode(Packet::event(nsp_str(nsp), value)))
    }

    /// The frames to queue: the text packet, then its attachments.
    pub(crate) fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        std::iter::once(Frame::Text(self.text.clone()))
            .chain(self.attachments.iter().cloned().map(Frame::Binary))
    }

    /// How many frames [`EncodedPacket::frames`] yields.
    pub(crate) fn frame_count(&self) -> usize {
        1 + self.attachments.len()
    }

    /// The Engine.IO text packet (`4` + Socket.IO packet).
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// Serializes a slice of values as a tuple, so the parser spreads them into separate arguments.
pub(crate) struct ArgsTuple<'a>(pub &'a [Value]);

impl Serialize for ArgsTuple<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for value in self.0 {
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }
}

/// A namespace as the parser's string type, without allocating for the main namespace.
pub(crate) fn nsp_str(nsp: &str) -> Str {
    if nsp == "/" {
        Str::from("/")
    } else {
        Str::copy_from_slice(nsp)
    }
}

/// An EVENT on `nsp`, with an ack id when the server waits for an acknowledgement.
pub(crate) fn event_packet<T: Serialize + ?Sized>(
    nsp: Str,
    event: &str,
    data: &T,
    ack_id: Option<i64>,
) -> Result<EncodedPacket, serde_json::Error> {
    let mut packet = Packet::event(nsp, encode_value(data, Some(event))?);
    if let Some(id) = ack_id {
        packet.inner.set_ack_id(id);
    }
    Ok(encode(packet))
}

/// An ACK answering the client's event `ack_id`.
pub(crate) fn ack_packet<T: Serialize + ?Sized>(
    nsp: Str,
    ack_id: i64,
    data: &T,
    attachments: Vec<Bytes>,
) -> Result<EncodedPacket, serde_json::Error> {
    let value = with_attachments(encode_value(data, None)?, attachments);
    Ok(encode(Packet::ack(nsp, value, ack_id)))
}

/// The CONNECT answer carrying the new socket's id.
pub(crate) fn connect_packet(nsp: Str, socket_id: Sid) -> EncodedPacket {
    let payload = CommonParser.encode_default(&ConnectPacket { sid: socket_id });
    encode(Packet::connect(nsp, payload.ok()))
}

/// A CONNECT_ERROR with `{"message": message}`.
pub(crate) fn connect_error_packet(nsp: Str, message: &str) -> EncodedPacket {
    encode(Packet::connect_error(nsp, message))
}

/// A server DISCONNECT for `nsp`.
pub(crate) fn disconnect_packet(nsp: Str) -> EncodedPacket {
    encode(Packet::disconnect(nsp))
}

fn encode_value<T: Serialize + ?Sized>(
    data: &T,
    event: Option<&str>,
) -> Result<SioValue, serde_json::Error> {
    CommonParser.encode_value(data, event).map_err(json_error)
}

fn with_attachments(value: SioValue, attachments: Vec<Bytes>) -> SioValue {
    match value {
        SioValue::Str(data, bins) if !attachments.is_empty() => {
            let mut all = bins.unwrap_or_default();
            all.extend(attachments);
            SioValue::Str(data, Some(all))
        }
        other => other,
    }
}

fn json_error(error: ParserError) -> serde_json::Error {
    <serde_json::Error as serde::ser::Error>::custom(error)
}

/// Wraps the parser's output in an Engine.IO message packet.
fn encode(packet: Packet) -> EncodedPacket {
    match CommonParser.encode(packet) {
        SioValue::Str(data, bins) => {
            let mut text = String::with_capacity(1 + data.len());
            text.push('4');
            text.push_str(&data);
            EncodedPacket {
                text: text.into(),
                attachments: bins.map(Vec::from).unwrap_or_default(),
            }
        }
        // The common parser only produces string packets; a binary value is sent as one
        // attachment-only packet rather than dropped.
        SioValue::Bytes(bytes) => EncodedPacket {
            text: ByteString::from_static("4"),
            attachments: vec![bytes],
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(packet: EncodedPacket, expected: &str) {
        assert_eq!(packet.text(), expected);
    }

    #[test]
    fn events_are_encoded_like_the_reference() {
        check(
            EncodedPacket::event("/", "hello", &json!({"a": 1})).unwrap(),
            r#"42["hello",{"a":1}]"#,
        );
        check(
            EncodedPacket::event("/admin", "x", &(1, "2")).unwrap(),
            r#"42/admin,["x",1,"2"]"#,
        );
        check(
            EncodedPacket::event("/", "none", &[(); 0]).unwrap(),
            r#"42["none"]"#,
        );
        check(
            EncodedPacket::event("/", "unit", &()).unwrap(),
            r#"42["unit",null]"#,
        );
        check(
            event_packet(nsp_str("/"), "e", &vec![1, 2], Some(7)).unwrap(),
            r#"427["e",[1,2]]"#,
        );
        check(
            ack_packet(
                nsp_str("/"),
                456,
                &ArgsTuple(&[json!(1), json!("2")]),
                vec![],
            )
            .unwrap(),
            r#"43456[1,"2"]"#,
        );
        check(
            connect_error_packet(nsp_str("/random"), "Invalid namespace"),
            r#"44/random,{"message":"Invalid namespace"}"#,
        );
        check(disconnect_packet(nsp_str("/")), "41");
        check(disconnect_packet(nsp_str("/custom")), "41/custom,");
    }

    #[test]
    fn attachments_follow_the_text_frame() {
        let placeholder = json!({"_placeholder": true, "num": 0});
        let packet = EncodedPacket::event_with_attachments(
            "/",
            "bin",
            &[placeholder],
            vec![Bytes::from_static(&[1, 2, 3])],
        )
        .unwrap();
        assert_eq!(
            packet.text(),
            r#"451-["bin",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(packet.frame_count(), 2);
    }

    #[test]
    fn connect_packet_carries_the_socket_id() {
        let sid = Sid::new();
        check(
            connect_packet(nsp_str("/"), sid),
            &format!(r#"40{{"sid":"{sid}"}}"#),
        );
    }
}

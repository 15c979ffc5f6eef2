//! Incoming Socket.IO packets: Engine.IO message packets decoded by the common parser and
//! dispatched to the connection's sockets. Synchronous: anything that calls the handler is
//! queued as [`Work`] for the connection's task.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use serde_json::Value;
use socketioxide_core::{
    Value as SioValue,
    packet::{Packet, PacketData},
    parser::{Parse, ParseConfig, ParseError, ParserState},
};
use socketioxide_parser_common::CommonParser;

use crate::{
    engine::{reason::DisconnectReason, server::Incoming},
    socketio::{
        event::{AckSender, Event, PacketSink},
        handler::Handler,
        packet::connect_error_packet,
        socket::{SocketConn, Work},
    },
};

/// Handles one Engine.IO message packet from the client; `Err` means the connection must
/// close.
pub(crate) fn message<H: Handler>(
    handler: &H,
    parse_config: &ParseConfig,
    conn: &Arc<SocketConn<H::State>>,
    message: Incoming,
) -> Result<(), DisconnectReason> {
    let decoded = match message {
        Incoming::Text(data) => {
            let binary_header = matches!(data.as_bytes().first(), Some(b'5' | b'6'));
            match conn.existing_parser() {
                Some(state) => CommonParser.decode_str(parse_config, state, data),
                None if binary_header => CommonParser.decode_str(parse_config, conn.parser(), data),
                // Plain packets leave no parser state behind: a throwaway one will do.
                None => CommonParser.decode_str(parse_config, &ParserState::default(), data),
            }
        }
        Incoming::Binary(data) => CommonParser.decode_bin(parse_config, conn.parser(), data),
    };
    match decoded {
        Ok(packet) => dispatch(handler, conn, packet),
        Err(ParseError::NeedsMoreBinaryData) => Ok(()),
        Err(error) => {
            tracing::debug!(sid = %conn.sid, %error, "invalid Socket.IO packet");
            Err(DisconnectReason::ParseError)
        }
    }
}

fn dispatch<H: Handler>(
    handler: &H,
    conn: &Arc<SocketConn<H::State>>,
    packet: Packet,
) -> Result<(), DisconnectReason> {
    let Packet { inner, ns } = packet;
    match inner {
        PacketData::Connect(payload) => {
            if !handler.accepts_namespace(&ns) {
                conn.push_control(connect_error_packet(ns, "Invalid namespace").frames());
                return Ok(());
            }
            let auth = payload.map(|payload| decode_auth(&payload)).transpose()?;
            conn.push_work(Work::Connect { nsp: ns, auth });
        }
        PacketData::Disconnect => {
            if let Some(socket) = conn.socket_for(&ns)
                && socket.mark_disconnected()
            {
                conn.data.registry.remove(&socket.sid());
                conn.remove_socket(&socket);
                conn.push_work(Work::Disconnected {
                    socket,
                    reason: DisconnectReason::ClientDisconnect,
                });
            }
        }
        PacketData::Event(value, ack) | PacketData::BinaryEvent(value, ack) => {
            let (mut args, attachments) = decode_array(value)?;
            let name = event_name(&mut args)?;
            // Events for a namespace the client has not joined are dropped, as the reference
            // server does.
            if let Some(socket) = conn.socket_for(&ns) {
                let ack = ack.map(|id| {
                    let outbound: Weak<dyn PacketSink> =
                        Arc::downgrade(conn) as Weak<dyn PacketSink>;
                    AckSender::new(outbound, ns.clone(), id)
                });
                conn.push_work(Work::Event {
                    socket,
                    event: Event {
                        name,
                        args,
                        attachments,
                        ack,
                    },
                });
            }
        }
        PacketData::EventAck(value, id) | PacketData::BinaryAck(value, id) => {
            let (args, _attachments) = decode_array(value)?;
            if let Some(socket) = conn.socket_for(&ns) {
                socket.resolve_ack(id, args);
            }
        }
        PacketData::ConnectError(_) => return Err(DisconnectReason::ParseError),
    }
    Ok(())
}

/// The CONNECT payload must be a JSON object.
fn decode_auth(payload: &SioValue) -> Result<Value, DisconnectReason> {
    let text = payload.as_str().ok_or(DisconnectReason::ParseError)?;
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(DisconnectReason::ParseError),
    }
}

/// EVENT and ACK payloads must be JSON arrays.
fn decode_array(value: SioValue) -> Result<(Vec<Value>, Vec<Bytes>), DisconnectReason> {
    match value {
        SioValue::Str(text, attachments) => {
            let args = serde_json::from_str::<Vec<Value>>(&text)
                .map_err(|_| DisconnectReason::ParseError)?;
            Ok((args, attachments.map(Vec::from).unwrap_or_default()))
        }
        SioValue::Bytes(_) => Err(DisconnectReason::ParseError),
    }
}

/// Takes the event name off the front of the arguments: a string, or a number as the
/// JavaScript client allows.
fn event_name(args: &mut Vec<Value>) -> Result<String, DisconnectReason> {
    if args.is_empty() {
        return Err(DisconnectReason::ParseError);
    }
    match args.remove(0) {
        Value::String(name) => Ok(name),
        Value::Number(number) => Ok(number.to_string()),
        _ => Err(DisconnectReason::ParseError),
    }
}

#[cfg(test)]
mod tests {
    use engineioxide_core::Str;
    use serde_json::json;

    use super::*;

    fn check_event(payload: &str, expected: Option<(&str, Value)>) {
        let decoded = decode_array(SioValue::Str(Str::from(payload.to_owned()), None))
            .and_then(|(mut args, _)| event_name(&mut args).map(|name| (name, args)));
        match (decoded, expected) {
            (Ok((name, args)), Some((expected_name, expected_args))) => {
                assert_eq!(name, expected_name);
                assert_eq!(Value::Array(args), expected_args);
            }
            (Err(_), None) => {}
            (got, expected) => panic!("{payload}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn event_payloads() {
        check_event(r#"["hello"]"#, Some(("hello", json!([]))));
        check_event(
            r#"["m",1,"2",{"3":[true]}]"#,
            Some(("m", json!([1, "2", {"3": [true]}]))),
        );
        check_event(r#"[42,"x"]"#, Some(("42", json!(["x"]))));
        check_event("{}", None);
        check_event("[]", None);
        check_event("[null]", None);
        check_event(r#"abc["m"]"#, None);
        check_event("", None);
    }

    #[test]
    fn auth_must_be_an_object() {
        let check = |text: &str| decode_auth(&SioValue::Str(Str::from(text.to_owned()), None));
        assert_eq!(check(r#"{"token":"1"}"#), Ok(json!({"token": "1"})));
        assert!(check("[1]").is_err());
        assert!(check("nope").is_err());
    }
}

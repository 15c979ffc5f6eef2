//! [`Frame`], one frame of the Engine.IO wire as queued per connection, and the OPEN packet.
//!
//! Engine.IO control packets are encoded by `engineioxide-core`; the layers above queue their
//! message packets as ready text (`4…`) and binary frames.

use bytes::Bytes;
use bytestring::ByteString;
use engineioxide_core::{OpenPacket, Packet as EnginePacket, Sid, TransportType};

use crate::config::Config;

/// One frame of the Engine.IO wire: a text packet, a binary attachment, or a WebSocket pong.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// An Engine.IO text packet, already including its type digit.
    Text(ByteString),
    /// A binary attachment (a WebSocket binary frame, or `b<base64>` on polling).
    Binary(Bytes),
    /// The answer to a WebSocket ping control frame; never sent on polling.
    WsPong(Bytes),
}

impl Frame {
    /// A static Engine.IO control packet such as `"2"` (ping) or `"6"` (noop).
    pub(crate) const fn control(packet: &'static str) -> Self {
        Self::Text(ByteString::from_static(packet))
    }
}

/// The Engine.IO OPEN packet of a new session.
pub(crate) fn open_frame(sid: Sid, config: &Config, can_upgrade: bool) -> Frame {
    let upgrades = if can_upgrade {
        [TransportType::Websocket].into_iter().collect()
    } else {
        Default::default()
    };
    let open = EnginePacket::Open(OpenPacket {
        sid,
        upgrades,
        ping_interval: config.ping_interval,
        ping_timeout: config.ping_timeout,
        max_payload: u64::try_from(config.max_payload).unwrap_or(u64::MAX),
    });
    Frame::Text(String::from(open).into())
}

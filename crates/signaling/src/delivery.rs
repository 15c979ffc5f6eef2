//! What the chat sends to users, and the interface that carries it to this node's sockets.

use chat_domain::webrtc::{CallKind, IceCandidate, SessionDescription};
use chat_domain::{FileId, Message, MessageId, PublicUser, RoomId, Timestamp, UserId, Username};
use serde::{Deserialize, Serialize};

use crate::service::{Receipt, SessionEnd};

/// Why a room closed, as `room:closed` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CloseReason {
    /// The receiver left.
    Left,
    /// The partner left (or deleted the session).
    PartnerLeft,
    /// The partner skipped to someone new (`match:next`); on the wire `partner_left`. The
    /// receiver's next search avoids them, as the skipper's avoids the receiver.
    PartnerSkipped,
    /// The partner's socket dropped and did not come back in time.
    PartnerDisconnected,
    /// The partner's session expired.
    SessionExpired,
    /// The partner was banned.
    PartnerBanned,
}

impl CloseReason {
    /// The contract's name of the reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::PartnerLeft | Self::PartnerSkipped => "partner_left",
            Self::PartnerDisconnected => "partner_disconnected",
            Self::PartnerBanned => "partner_banned",
            Self::SessionExpired => "session_expired",
        }
    }
}

/// A server → client event of the chat. The transport turns each into its wire event; between
/// nodes it travels as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outgoing {
    /// `match:searching`.
    Searching,
    /// `match:cancelled`.
    Cancelled,
    /// `match:found`.
    Found {
        /// The new room.
        room_id: RoomId,
        /// The partner's public profile.
        partner: PublicUser,
        /// Whether this side sends the WebRTC offer.
        initiator: bool,
        /// The receiver's own name (not sent on the wire; the receiver's node keeps it).
        own_username: Username,
    },
    /// `chat:message`, sent asking the client for an ack: it comes with a [`Receipt`] the ack
    /// confirms.
    Message(Box<Message>),
    /// `message:sent` to the sender.
    Sent {
        /// The message id.
        id: MessageId,
        /// The client's own id, echoed.
        client_id: Option<String>,
        /// When it was routed.
        timestamp: Timestamp,
    },
    /// `message:delivered` to the sender.
    Delivered {
        /// The message id.
        id: MessageId,
        /// When the recipient confirmed it.
        delivered_at: Timestamp,
    },
    /// `chat:typing`.
    Typing {
        /// Who types.
        from: UserId,
        /// Whether they are typing.
        is_typing: bool,
    },
    /// `chat:cleared`.
    Cleared,
    /// `partner:disconnected`.
    PartnerDisconnected {
        /// How long the room waits.
        grace_secs: u64,
    },
    /// `partner:reconnected`.
    PartnerReconnected,
    /// `room:closed`.
    RoomClosed {
        /// The room.
        room_id: RoomId,
        /// Why.
        reason: CloseReason,
    },
    /// `webrtc:offer`.
    Offer {
        /// The offer, `{type, sdp}`.
        offer: SessionDescription,
        /// Audio or video.
        kind: CallKind,
        /// The caller.
        from: UserId,
        /// The caller's name.
        from_username: Username,
        /// When it was relayed.
        timestamp: Timestamp,
    },
    /// `webrtc:answer`.
    Answer {
        /// The answer, `{type, sdp}`.
        answer: SessionDescription,
        /// The callee.
        from: UserId,
        /// The callee's name.
        from_username: Username,
    },
    /// `webrtc:ice-candidate`.
    Candidate {
        /// The candidate, its standard fields only.
        candidate: IceCandidate,
        /// The sender.
        from: UserId,
    },
    /// `webrtc:call-end`.
    CallEnded {
        /// Who hung up.
        from: UserId,
        /// Their name.
        from_username: Username,
    },
    /// `webrtc:call-reject`.
    CallRejected {
        /// Who rejected.
        from: UserId,
        /// Their name.
        from_username: Username,
    },
    /// `webrtc:call-timeout`, to both sides.
    CallTimeout {
        /// The caller.
        from: UserId,
        /// The caller's name.
        from_username: Username,
    },
}

/// Carries events to the users whose socket is on this node; events for users on other
/// nodes never reach it (the chat forwards them over its [`chat_storage::Cluster`]).
/// Implementations must not block: queue and return. An event for a user with no live
/// socket here is dropped.
pub trait Delivery: Send + Sync + 'static {
    /// Whether `to` has a live socket on this node.
    fn is_local(&self, to: &UserId) -> bool;

    /// Hands `event` to `to`'s socket on this node. A [`Outgoing::Message`] comes with its
    /// `receipt`: confirm it when the recipient's client acknowledges the message
    /// ([`Receipt::confirm`]); every other event comes with `None`.
    fn deliver_local(&self, to: &UserId, event: Outgoing, receipt: Option<Receipt>);

    /// `user` connected on another node, which holds their chat now: their socket here, if
    /// any, is replaced (the gateway says `session:replaced` and disconnects it, without
    /// reconnect grace). Never called on a single node; does nothing unless implemented.
    fn replaced_elsewhere(&self, user: &UserId) {
        let _ = user;
    }

    /// `user`'s session ended through another node (deleted, expired or ended by an
    /// operator): their socket here, if any, is ended as if it had happened here (the
    /// gateway says `session:expired` when `end` is [`SessionEnd::Expired`], then disconnects
    /// it, without reconnect grace). Their room is closed by the node where it ended. Never
    /// called on a single node; does nothing unless implemented.
    fn ended_elsewhere(&self, user: &UserId, end: SessionEnd) {
        let _ = (user, end);
    }
}

/// Makes the short-lived signed download URL of a file for one viewer.
pub trait FileUrls: Send + Sync + 'static {
    /// The URL `viewer` may fetch `file` with.
    fn url_for(&self, file: &FileId, viewer: &UserId) -> String;
}

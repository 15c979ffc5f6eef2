//! [`ChatStore`]: what the chat shares between nodes: the search queue and who is in which
//! room. Which node holds a user's socket, and the bus between nodes, are the
//! [`crate::Cluster`]'s.
//!
//! Per-message state (receipts, call timers, who is away) stays on the nodes; only these
//! rarely-changing facts are shared, so relaying a message costs no storage round trip.

use async_trait::async_trait;
use chat_domain::{RoomId, Searcher, UserId, Username};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// A room as the shared store keeps it: its id and its two members (the first is the
/// initiator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The room.
    pub room_id: RoomId,
    /// The two members and their names.
    pub members: [(UserId, Username); 2],
}

impl RoomRecord {
    /// The member that is not `user`, if `user` is a member.
    pub fn partner_of(&self, user: &UserId) -> Option<&(UserId, Username)> {
        match &self.members {
            [first, second] if &first.0 == user => Some(second),
            [first, second] if &second.0 == user => Some(first),
            _ => None,
        }
    }

    /// Whether `user` is a member.
    pub fn has_member(&self, user: &UserId) -> bool {
        self.members.iter().any(|(member, _)| member == user)
    }
}

/// The chat's shared state. In memory on one node; in Redis across nodes.
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// Queues `searcher`, or takes the oldest compatible searcher out of the queue and returns
    /// it. Atomic across nodes: no searcher is ever returned twice. A searcher already queued
    /// is replaced.
    ///
    /// `avoid` is a hard exclusion both ways: `searcher` is never paired with the queued
    /// searcher it avoids, nor with a queued searcher whose own `avoid` is `searcher`; when
    /// nobody else fits it is queued and waits (the two of a `match:next` pass each other's id
    /// and are not paired again on their next pairing).
    async fn search(&self, searcher: &Searcher) -> StoreResult<Option<Searcher>>;

    /// Takes `user` out of the queue; returns whether they were in it.
    async fn cancel_search(&self, user: &UserId) -> StoreResult<bool>;

    /// Records a new room and its members.
    async fn open_room(&self, room: &RoomRecord) -> StoreResult<()>;

    /// The room with this id, while open.
    async fn room(&self, id: &RoomId) -> StoreResult<Option<RoomRecord>>;

    /// The open room `user` is in.
    async fn room_of(&self, user: &UserId) -> StoreResult<Option<RoomRecord>>;

    /// Closes a room; exactly one caller gets `true`.
    async fn close_room(&self, room: &RoomRecord) -> StoreResult<bool>;
}

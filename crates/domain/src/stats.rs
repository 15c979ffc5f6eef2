//! Service-wide counters.

use serde::{Deserialize, Serialize};

/// The contract's `Stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Live sessions.
    pub total_users: u64,
    /// Users with a connected socket.
    pub online_users: u64,
    /// Users active in the last five minutes.
    pub active_users: u64,
    /// Users searching for a partner.
    pub available_users: u64,
    /// Chat pairs (users in chat / 2, as the original counts).
    pub connected_users: u64,
    /// Users in a chat.
    pub users_in_chat: u64,
}

impl Stats {
    /// How far back activity counts for [`Stats::active_users`].
    pub const ACTIVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);
}

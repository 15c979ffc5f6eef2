//! [`ModerationStore`]: reports, who may never be paired with whom, the client addresses a
//! user came from, and bans — shared by every node (in Redis), or kept by one (in memory).
//!
//! Addresses and device ids reach the store only as keyed hashes ("marks", computed by the
//! caller): the store never sees them in clear. A ban is kept under each mark it covers
//! (`user:<id>`, `device:<hash>`, `addr:<hash>`) until it ends or is lifted.

use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{Ban, BanId, Report, ReportId, Timestamp, UserId};

use crate::StoreResult;

/// How long reports are kept (for the admin API's list and the ban window).
pub const REPORTS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a report keeps its two users from being paired again: past any session's life
/// in practice (sessions live for `session.ttl_secs` after their last activity).
pub const BLOCK_KEPT: Duration = Duration::from_secs(24 * 3600);

/// What [`ModerationStore::file_report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiled {
    /// The report stored: the new one, or the reporter's earlier report of the same user.
    pub report: Report,
    /// Whether an earlier report was found (nothing new was counted).
    pub duplicate: bool,
    /// How many distinct reporter addresses reported the user within the window (this one
    /// included).
    pub reporters: u64,
}

/// A page of reports, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportPage {
    /// The reports.
    pub reports: Vec<Report>,
    /// Pass it back for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Reports and bans, shared by the nodes of a deployment.
#[async_trait]
pub trait ModerationStore: Send + Sync + 'static {
    /// Files `report`, made from the address whose mark is `reporter_mark`, unless its
    /// reporter reported the same user before (then that earlier report is answered, and
    /// nothing counts twice). Blocks the two from being paired again (both ways), and counts
    /// the distinct reporter marks of the reported user within `window`.
    async fn file_report(
        &self,
        report: &Report,
        reporter_mark: &str,
        window: Duration,
    ) -> StoreResult<ReportFiled>;

    /// Reports, newest first, `limit` at a time after `cursor`.
    async fn reports(&self, limit: usize, cursor: Option<&str>) -> StoreResult<ReportPage>;

    /// The users `user` may never be paired with (reported by or reporting them).
    async fn blocked(&self, user: &UserId) -> StoreResult<Vec<UserId>>;

    /// Notes that `user` came from the address whose mark is `mark` (kept while the session
    /// may live: `keep`).
    async fn note_address(&self, user: &UserId, mark: &str, keep: Duration) -> StoreResult<()>;

    /// The address marks noted for `user`.
    async fn addresses(&self, user: &UserId) -> StoreResult<Vec<String>>;

    /// Records `ban` under every mark in `marks`, until it ends.
    async fn ban(&self, ban: &Ban, marks: &[String]) -> StoreResult<()>;

    /// The ban in force at `now` under any of `marks` (the one ending last).
    async fn ban_for(&self, marks: &[String], now: Timestamp) -> StoreResult<Option<Ban>>;

    /// Every ban in force at `now`, newest first.
    async fn bans(&self, now: Timestamp) -> StoreResult<Vec<Ban>>;

    /// Lifts a ban at once (under every mark); returns it, or `None` if unknown or over.
    async fn lift(&self, id: &BanId) -> StoreResult<Option<Ban>>;
}

/// The cursor of a report page: the last report's time and id.
pub(crate) fn report_cursor(report: &Report) -> String {
    format!("{}_{}", report.created_at.as_millis(), report.id)
}

/// Reads a cursor of [`report_cursor`].
pub(crate) fn parse_report_cursor(cursor: &str) -> Option<(i64, ReportId)> {
    let (millis, id) = cursor.split_once('_')?;
    Some((millis.parse().ok()?, ReportId::parse(id)?))
}

//! [`ModerationStore`] through the failover store: Redis while it answers, this node's memory
//! during an outage. Reports and bans made during an outage stay on this node (they are not
//! written back): the node goes on protecting its own users, and the shared record resumes
//! when Redis is back.

use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{Ban, BanId, Report, Timestamp, UserId};

use crate::StoreResult;
use crate::failover::FailoverStore;
use crate::moderation::{ModerationStore, ReportFiled, ReportPage};

#[async_trait]
impl ModerationStore for FailoverStore {
    async fn file_report(
        &self,
        report: &Report,
        reporter_mark: &str,
        window: Duration,
    ) -> StoreResult<ReportFiled> {
        serve_read!(self.shared, |store| store.file_report(
            report,
            reporter_mark,
            window
        ))
    }

    async fn reports(&self, limit: usize, cursor: Option<&str>) -> StoreResult<ReportPage> {
        serve_read!(self.shared, |store| store.reports(limit, cursor))
    }

    async fn blocked(&self, user: &UserId) -> StoreResult<Vec<UserId>> {
        serve_read!(self.shared, |store| store.blocked(user))
    }

    async fn note_address(&self, user: &UserId, mark: &str, keep: Duration) -> StoreResult<()> {
        serve_read!(self.shared, |store| store.note_address(user, mark, keep))
    }

    async fn addresses(&self, user: &UserId) -> StoreResult<Vec<String>> {
        serve_read!(self.shared, |store| store.addresses(user))
    }

    async fn ban(&self, ban: &Ban, marks: &[String]) -> StoreResult<()> {
        serve_read!(self.shared, |store| store.ban(ban, marks))
    }

    async fn ban_for(&self, marks: &[String], now: Timestamp) -> StoreResult<Option<Ban>> {
        serve_read!(self.shared, |store| store.ban_for(marks, now))
    }

    async fn bans(&self, now: Timestamp) -> StoreResult<Vec<Ban>> {
        serve_read!(self.shared, |store| store.bans(now))
    }

    async fn lift(&self, id: &BanId) -> StoreResult<Option<Ban>> {
        serve_read!(self.shared, |store| store.lift(id))
    }
}

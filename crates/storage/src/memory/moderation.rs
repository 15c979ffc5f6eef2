//! [`ModerationStore`] for [`MemoryStore`]: one process's reports and bans.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{Ban, BanId, Report, ReportId, Timestamp, UserId};

use super::{MemoryStore, lock};
use crate::StoreResult;
use crate::moderation::{
    BLOCK_KEPT, ModerationStore, REPORTS_KEPT, ReportFiled, ReportPage, parse_report_cursor,
    report_cursor,
};

/// Reports and bans of one process.
#[derive(Debug, Default)]
pub(crate) struct ModerationTables {
    /// Every report kept, by (time, id): pages read it backwards.
    log: BTreeMap<(i64, ReportId), Report>,
    /// (reporter, reported) → the report.
    by_pair: HashMap<(UserId, UserId), ReportId>,
    /// reported → reporter mark → when it last reported.
    reporters: HashMap<UserId, HashMap<String, Timestamp>>,
    /// user → users never to pair with, until when.
    blocked: HashMap<UserId, HashMap<UserId, Timestamp>>,
    /// user → address marks, until when.
    addresses: HashMap<UserId, HashMap<String, Timestamp>>,
    /// Bans by id, and the marks each is kept under.
    bans: HashMap<BanId, (Ban, Vec<String>)>,
    /// mark → bans kept under it.
    marks: HashMap<String, HashSet<BanId>>,
}

impl ModerationTables {
    fn forget_old_reports(&mut self, now: Timestamp) {
        let oldest = now.minus(REPORTS_KEPT).as_millis();
        while let Some(entry) = self.log.first_entry() {
            if entry.key().0 >= oldest {
                break;
            }
            let report = entry.remove();
            self.by_pair
                .remove(&(report.reporter_id, report.reported_id));
        }
    }

    fn lift(&mut self, id: &BanId) -> Option<Ban> {
        let (ban, marks) = self.bans.remove(id)?;
        for mark in marks {
            if let Some(bans) = self.marks.get_mut(&mark) {
                bans.remove(id);
                if bans.is_empty() {
                    self.marks.remove(&mark);
                }
            }
        }
        Some(ban)
    }
}

#[async_trait]
impl ModerationStore for MemoryStore {
    async fn file_report(
        &self,
        report: &Report,
        reporter_mark: &str,
        window: Duration,
    ) -> StoreResult<ReportFiled> {
        let now = report.created_at;
        let mut tables = lock(&self.moderation);
        tables.forget_old_reports(now);
        let pair = (report.reporter_id.clone(), report.reported_id.clone());
        let existing = tables.by_pair.get(&pair).and_then(|id| {
            tables
                .log
                .values()
                .rev()
                .find(|stored| &stored.id == id)
                .cloned()
        });
        let since = now.minus(window);
        let marks = tables
            .reporters
            .entry(report.reported_id.clone())
            .or_default();
        if existing.is_none() {
            marks.insert(reporter_mark.to_owned(), now);
        }
        marks.retain(|_, at| *at >= since);
        let reporters = marks.len() as u64;
        if let Some(report) = existing {
            return Ok(ReportFiled {
                report,
                duplicate: true,
                reporters,
            });
        }
        tables
            .log
            .insert((now.as_millis(), report.id.clone()), report.clone());
        tables.by_pair.insert(pair, report.id.clone());
        let until = now.plus(BLOCK_KEPT);
        for (one, other) in [
            (&report.reporter_id, &report.reported_id),
            (&report.reported_id, &report.reporter_id),
        ] {
            tables
                .blocked
                .entry(one.clone())
                .or_default()
                .insert(other.clone(), until);
        }
        Ok(ReportFiled {
            report: report.clone(),
            duplicate: false,
            reporters,
        })
    }

    async fn reports(&self, limit: usize, cursor: Option<&str>) -> StoreResult<ReportPage> {
        let tables = lock(&self.moderation);
        let limit = limit.max(1);
        let before = cursor.and_then(parse_report_cursor);
        let mut page: Vec<Report> = tables
            .log
            .iter()
            .rev()
            .filter(|(key, _)| before.as_ref().is_none_or(|before| *key < before))
            .take(limit + 1)
            .map(|(_, report)| report.clone())
            .collect();
        let next_cursor = (page.len() > limit).then(|| report_cursor(&page[limit - 1]));
        page.truncate(limit);
        Ok(ReportPage {
            reports: page,
            next_cursor,
        })
    }

    async fn blocked(&self, user: &UserId) -> StoreResult<Vec<UserId>> {
        let now = Timestamp::now();
        let tables = lock(&self.moderation);
        Ok(tables
            .blocked
            .get(user)
            .map(|blocked| {
                blocked
                    .iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(other, _)| other.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn note_address(&self, user: &UserId, mark: &str, keep: Duration) -> StoreResult<()> {
        let now = Timestamp::now();
        let mut tables = lock(&self.moderation);
        let marks = tables.addresses.entry(user.clone()).or_default();
        marks.retain(|_, until| *until > now);
        marks.insert(mark.to_owned(), now.plus(keep));
        Ok(())
    }

    async fn addresses(&self, user: &UserId) -> StoreResult<Vec<String>> {
        let now = Timestamp::now();
        let tables = lock(&self.moderation);
        Ok(tables
            .addresses
            .get(user)
            .map(|marks| {
                marks
                    .iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(mark, _)| mark.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn ban(&self, ban: &Ban, marks: &[String]) -> StoreResult<()> {
        let mut tables = lock(&self.moderation);
        let now = Timestamp::now();
        let over: Vec<BanId> = tables
            .bans
            .values()
            .filter(|(ban, _)| !ban.holds_at(now))
            .map(|(ban, _)| ban.id.clone())
            .collect();
        for id in over {
            tables.lift(&id);
        }
        for mark in marks {
            tables
                .marks
                .entry(mark.clone())
                .or_default()
                .insert(ban.id.clone());
        }
        tables
            .bans
            .insert(ban.id.clone(), (ban.clone(), marks.to_vec()));
        Ok(())
    }

    async fn ban_for(&self, marks: &[String], now: Timestamp) -> StoreResult<Option<Ban>> {
        let tables = lock(&self.moderation);
        Ok(marks
            .iter()
            .filter_map(|mark| tables.marks.get(mark))
            .flatten()
            .filter_map(|id| tables.bans.get(id).map(|(ban, _)| ban))
            .filter(|ban| ban.holds_at(now))
            .max_by_key(|ban| ban.until)
            .cloned())
    }

    async fn bans(&self, now: Timestamp) -> StoreResult<Vec<Ban>> {
        let tables = lock(&self.moderation);
        let mut bans: Vec<Ban> = tables
            .bans
            .values()
            .map(|(ban, _)| ban.clone())
            .filter(|ban| ban.holds_at(now))
            .collect();
        bans.sort_by_key(|ban| std::cmp::Reverse(ban.created_at));
        Ok(bans)
    }

    async fn lift(&self, id: &BanId) -> StoreResult<Option<Ban>> {
        let now = Timestamp::now();
        let lifted = lock(&self.moderation).lift(id);
        Ok(lifted.filter(|ban| ban.holds_at(now)))
    }
}

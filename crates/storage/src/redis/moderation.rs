//! [`ModerationStore`] for [`RedisStore`]: reports counted in the reported user's slot (one
//! script: idempotent per reporter, distinct reporter marks in the window), the report log
//! and the bans each in their own slot, and each ban kept under every mark it covers with the
//! ban's own expiry, so a ban made or lifted through any node holds on every node at once.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{Ban, BanId, Report, Timestamp, UserId};
use fred::prelude::{Expiration, HashesInterface, KeysInterface, SortedSetsInterface};
use fred::types::Value;
use fred::types::scripts::Script;
use futures_util::future::try_join_all;

use super::{RedisStore, millis};
use crate::moderation::{
    BLOCK_KEPT, ModerationStore, REPORTS_KEPT, ReportFiled, ReportPage, parse_report_cursor,
    report_cursor,
};
use crate::{StorageError, StoreResult};

/// Files a report unless the reporter reported this user before, and counts the distinct
/// reporter marks in the window.
///
/// KEYS: the reported user's reports, its reporters. ARGV: reporter id, report JSON, mark,
/// now ms, window ms, reports kept ms. Returns `{earlier report JSON or '', reporters}`.
static FILE_REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local earlier = redis.call('HGET', KEYS[1], ARGV[1])
if not earlier then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(ARGV[4]) - tonumber(ARGV[5])))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {earlier or '', redis.call('ZCARD', KEYS[2])}
"#,
    )
});

/// Adds a report to the log and forgets the ones older than kept.
///
/// KEYS: log, entries. ARGV: id, JSON, created ms, oldest kept ms.
static LOG_REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4], 'LIMIT', 0, 100)
for _, id in ipairs(old) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return 1
"#,
    )
});

/// Adds `member` to a sorted set scored by until when, drops what is over, and keeps the set
/// as long as its last member. KEYS: set. ARGV: member, until ms, now ms.
static KEEP_UNTIL: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1
"#,
    )
});

/// Deletes a mark's ban pointer if it still names the ban. KEYS: pointer. ARGV: ban id.
static CLEAR_MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|error| StorageError::Corrupt(error.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|error| StorageError::Corrupt(error.to_string()))
}

impl RedisStore {
    /// The members of a sorted set scored by until when that are still in force.
    async fn members_until(&self, key: String) -> StoreResult<Vec<String>> {
        let now = Timestamp::now().as_millis();
        self.pool
            .zrangebyscore(key, format!("({now}"), "+inf", false, None)
            .await
            .map_err(crate::error::redis)
    }

    async fn keep_until(&self, key: String, member: &str, until: Timestamp) -> StoreResult<()> {
        let args = vec![
            Value::from(member),
            Value::from(until.as_millis()),
            Value::from(Timestamp::now().as_millis()),
        ];
        let _: i64 = self.run(&KEEP_UNTIL, vec![key], args).await?;
        Ok(())
    }
}

#[async_trait]
impl ModerationStore for RedisStore {
    async fn file_report(
        &self,
        report: &Report,
        reporter_mark: &str,
        window: Duration,
    ) -> StoreResult<ReportFiled> {
        let json = encode(report)?;
        let reported = &report.reported_id;
        let keys = vec![
            self.keys.user_reports(reported),
            self.keys.user_reporters(reported),
        ];
        let args = vec![
            Value::from(report.reporter_id.as_str()),
            Value::from(json.clone()),
            Value::from(reporter_mark),
            Value::from(report.created_at.as_millis()),
            Value::from(millis(window).max(1)),
            Value::from(millis(REPORTS_KEPT)),
        ];
        let answer: (String, u64) = self.run(&FILE_REPORT, keys, args).await?;
        let (earlier, reporters) = answer;
        if !earlier.is_empty() {
            return Ok(ReportFiled {
                report: decode(&earlier)?,
                duplicate: true,
                reporters,
            });
        }
        // Follow-up writes, each in its own slot: the log, then the blocks both ways.
        let oldest = report.created_at.minus(REPORTS_KEPT).as_millis();
        let args = vec![
            Value::from(report.id.as_str()),
            Value::from(json),
            Value::from(report.created_at.as_millis()),
            Value::from(oldest),
        ];
        let _: i64 = self
            .run(&LOG_REPORT, self.keys.report_log().to_vec(), args)
            .await?;
        let until = report.created_at.plus(BLOCK_KEPT);
        tokio::try_join!(
            self.keep_until(
                self.keys.user_blocked(&report.reporter_id),
                reported.as_str(),
                until
            ),
            self.keep_until(
                self.keys.user_blocked(reported),
                report.reporter_id.as_str(),
                until
            ),
        )?;
        Ok(ReportFiled {
            report: report.clone(),
            duplicate: false,
            reporters,
        })
    }

    async fn reports(&self, limit: usize, cursor: Option<&str>) -> StoreResult<ReportPage> {
        let limit = limit.max(1);
        let [log, entries] = self.keys.report_log();
        let before = cursor.and_then(parse_report_cursor);
        let max = before
            .as_ref()
            .map_or(f64::INFINITY, |(millis, _)| *millis as f64);
        // Reports of the cursor's millisecond that come before it are skipped here, so ask
        // for a few more than a page.
        let wanted = i64::try_from(limit + 64).unwrap_or(i64::MAX);
        let scored: Vec<(String, f64)> = self
            .pool
            .zrevrangebyscore(&log, max, f64::NEG_INFINITY, true, Some((0, wanted)))
            .await
            .map_err(crate::error::redis)?;
        let ids: Vec<String> = scored
            .into_iter()
            .filter(|(id, score)| match &before {
                // Same order as (time, id) descending: within a millisecond, ids descend.
                Some((millis, last)) => (*score as i64) < *millis || id.as_str() < last.as_str(),
                None => true,
            })
            .map(|(id, _)| id)
            .take(limit + 1)
            .collect();
        if ids.is_empty() {
            return Ok(ReportPage::default());
        }
        let raw: Vec<Option<String>> = self
            .pool
            .hmget(&entries, ids)
            .await
            .map_err(crate::error::redis)?;
        let mut reports = raw
            .iter()
            .flatten()
            .map(|json| decode::<Report>(json))
            .collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = (reports.len() > limit).then(|| report_cursor(&reports[limit - 1]));
        reports.truncate(limit);
        Ok(ReportPage {
            reports,
            next_cursor,
        })
    }

    async fn blocked(&self, user: &UserId) -> StoreResult<Vec<UserId>> {
        let members = self.members_until(self.keys.user_blocked(user)).await?;
        Ok(members.iter().filter_map(|id| UserId::parse(id)).collect())
    }

    async fn note_address(&self, user: &UserId, mark: &str, keep: Duration) -> StoreResult<()> {
        let until = Timestamp::now().plus(keep);
        self.keep_until(self.keys.user_addresses(user), mark, until)
            .await
    }

    async fn addresses(&self, user: &UserId) -> StoreResult<Vec<String>> {
        self.members_until(self.keys.user_addresses(user)).await
    }

    async fn ban(&self, ban: &Ban, marks: &[String]) -> StoreResult<()> {
        let [all, all_marks] = self.keys.bans();
        let left = (ban.until.as_millis() - Timestamp::now().as_millis()).max(1);
        let _: i64 = self
            .pool
            .hset(&all, (ban.id.as_str(), encode(ban)?))
            .await
            .map_err(crate::error::redis)?;
        let _: i64 = self
            .pool
            .hset(&all_marks, (ban.id.as_str(), marks.join(" ")))
            .await
            .map_err(crate::error::redis)?;
        try_join_all(marks.iter().map(|mark| {
            self.pool.set::<(), _, _>(
                self.keys.ban_mark(mark),
                ban.id.as_str(),
                Some(Expiration::PX(left)),
                None,
                false,
            )
        }))
        .await
        .map_err(crate::error::redis)?;
        Ok(())
    }

    async fn ban_for(&self, marks: &[String], now: Timestamp) -> StoreResult<Option<Ban>> {
        let ids: Vec<Option<String>> = try_join_all(
            marks
                .iter()
                .map(|mark| self.pool.get::<Option<String>, _>(self.keys.ban_mark(mark))),
        )
        .await
        .map_err(crate::error::redis)?;
        let ids: Vec<String> = ids.into_iter().flatten().collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let [all, _] = self.keys.bans();
        let raw: Vec<Option<String>> = self
            .pool
            .hmget(all, ids)
            .await
            .map_err(crate::error::redis)?;
        let bans = raw
            .iter()
            .flatten()
            .map(|json| decode::<Ban>(json))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(bans
            .into_iter()
            .filter(|ban| ban.holds_at(now))
            .max_by_key(|ban| ban.until))
    }

    async fn bans(&self, now: Timestamp) -> StoreResult<Vec<Ban>> {
        let [all, all_marks] = self.keys.bans();
        let raw: Vec<String> = self.pool.hvals(&all).await.map_err(crate::error::redis)?;
        let mut bans = Vec::new();
        let mut over = Vec::new();
        for json in &raw {
            let ban: Ban = decode(json)?;
            if ban.holds_at(now) {
                bans.push(ban);
            } else {
                over.push(ban.id.to_string());
            }
        }
        if !over.is_empty() {
            let _: i64 = self
                .pool
                .hdel(&all, over.clone())
                .await
                .map_err(crate::error::redis)?;
            let _: i64 = self
                .pool
                .hdel(&all_marks, over)
                .await
                .map_err(crate::error::redis)?;
        }
        bans.sort_by_key(|ban| std::cmp::Reverse(ban.created_at));
        Ok(bans)
    }

    async fn lift(&self, id: &BanId) -> StoreResult<Option<Ban>> {
        let [all, all_marks] = self.keys.bans();
        let (json, marks): (Option<String>, Option<String>) = tokio::try_join!(
            self.pool.hget::<Option<String>, _, _>(&all, id.as_str()),
            self.pool
                .hget::<Option<String>, _, _>(&all_marks, id.as_str()),
        )
        .map_err(crate::error::redis)?;
        let Some(json) = json else {
            return Ok(None);
        };
        let ban: Ban = decode(&json)?;
        // The marks first: from here on no node sees the ban.
        let marks = marks.unwrap_or_default();
        try_join_all(marks.split_whitespace().map(|mark| {
            self.run::<i64>(
                &CLEAR_MARK,
                vec![self.keys.ban_mark(mark)],
                vec![Value::from(id.as_str())],
            )
        }))
        .await?;
        let _: (i64, i64) = tokio::try_join!(
            self.pool.hdel::<i64, _, _>(&all, id.as_str()),
            self.pool.hdel::<i64, _, _>(&all_marks, id.as_str()),
        )
        .map_err(crate::error::redis)?;
        Ok(Some(ban).filter(|ban| ban.holds_at(Timestamp::now())))
    }
}

//! Moderation in the gateway: who is banned (checked when a session is created and when a
//! socket connects), reports (`user:report`), bans from reports or from an operator, and
//! their effects.
//!
//! Client addresses (IPv6 by /64) and device ids are never stored or logged in clear: they
//! become "marks", HMAC-SHA256 under a key derived from the server secret, so every node of
//! a deployment (same secret) computes the same marks and nobody can read an address back
//! from one. A ban is kept under the user's id, its device's mark and the marks of every
//! address its session was created or connected from.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Ban, BanId, BanSource, GuestUser, Report, ReportId, ReportRequest, RoomId, Timestamp, UserId,
};
use chat_storage::{ModerationStore, ReportFiled, StoreResult};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::client_ip::client_key;
use crate::settings::ModerationSettings;

/// The moderation of one deployment (every node computes the same marks).
pub struct Moderation {
    store: Arc<dyn ModerationStore>,
    key: Vec<u8>,
    rules: ModerationSettings,
    /// How long an address mark is kept for a user: as long as their session may live.
    address_keep: Duration,
}

impl std::fmt::Debug for Moderation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Moderation")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// What a report did.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The report stored (an earlier one of the same pair if it was a repeat).
    pub report: Report,
    /// The ban it started, if it was the one too many.
    pub ban: Option<Ban>,
    /// Whether it repeated an earlier report (nothing new was filed).
    pub duplicate: bool,
}

impl Moderation {
    /// Moderation over `store`, with marks keyed from `secret`.
    pub fn new(
        store: Arc<dyn ModerationStore>,
        secret: &[u8],
        rules: ModerationSettings,
        session_ttl: Duration,
    ) -> Self {
        let key = hmac_hex(secret, b"chat moderation marks v1");
        Self {
            store,
            key: key.into_bytes(),
            rules,
            address_keep: session_ttl + Duration::from_secs(60),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ModerationStore> {
        &self.store
    }

    /// The mark of a client address (IPv6 by /64).
    pub fn address_mark(&self, address: IpAddr) -> String {
        let client = client_key(address).to_string();
        format!("addr:{}", self.mark(b"addr", client.as_bytes()))
    }

    /// A rate-limit key that names a client address, as its mark (the store never sees an
    /// address in clear).
    pub fn rate_key(&self, key: &str) -> String {
        format!("h:{}", self.mark(b"rate", key.as_bytes()))
    }

    /// The mark of a device id.
    pub fn device_mark(&self, device: &str) -> String {
        format!("device:{}", self.mark(b"device", device.as_bytes()))
    }

    /// The mark of a user (the id is no secret).
    pub fn user_mark(user: &UserId) -> String {
        format!("user:{user}")
    }

    fn mark(&self, kind: &[u8], value: &[u8]) -> String {
        let mut input = kind.to_vec();
        input.push(0);
        input.extend_from_slice(value);
        let mut hex = hmac_hex(&self.key, &input);
        hex.truncate(32);
        hex
    }

    /// The ban that keeps a new session from `address` with `device` from being created.
    pub async fn ban_on_new_session(
        &self,
        address: Option<IpAddr>,
        device: Option<&str>,
    ) -> StoreResult<Option<Ban>> {
        let mut marks = Vec::new();
        marks.extend(address.map(|address| self.address_mark(address)));
        marks.extend(device.map(|device| self.device_mark(device)));
        if marks.is_empty() {
            return Ok(None);
        }
        self.store.ban_for(&marks, Timestamp::now()).await
    }

    /// The ban that keeps `user` from connecting from `address`.
    pub async fn ban_on_connect(
        &self,
        user: &UserId,
        address: Option<IpAddr>,
    ) -> StoreResult<Option<Ban>> {
        let mut marks = vec![Self::user_mark(user)];
        marks.extend(address.map(|address| self.address_mark(address)));
        self.store.ban_for(&marks, Timestamp::now()).await
    }

    /// Notes that `user` came from `address` (a ban of theirs will cover it).
    pub async fn note_address(&self, user: &UserId, address: IpAddr) -> StoreResult<()> {
        self.store
            .note_address(user, &self.address_mark(address), self.address_keep)
            .await
    }

    /// Files `reporter`'s report of `reported` (in `room`), made from `address`; bans the
    /// reported user when this report makes [`ModerationSettings::reports_to_ban`] distinct
    /// reporters within the window (the caller applies the ban's effects).
    pub async fn report(
        &self,
        reporter: &UserId,
        reported: &GuestUser,
        room: Option<RoomId>,
        request: ReportRequest,
        address: Option<IpAddr>,
    ) -> StoreResult<ReportOutcome> {
        let report = Report {
            id: ReportId::generate(),
            reporter_id: reporter.clone(),
            reported_id: reported.id.clone(),
            reason: request.reason,
            details: request.details,
            room_id: room,
            created_at: Timestamp::now(),
        };
        // Without an address (a test client, a socket pair), the reporter stands for one.
        let mark = match address {
            Some(address) => self.address_mark(address),
            None => Self::user_mark(reporter),
        };
        let window = Duration::from_secs(self.rules.report_window_secs);
        let ReportFiled {
            report,
            duplicate,
            reporters,
        } = self.store.file_report(&report, &mark, window).await?;
        let threshold = u64::from(self.rules.reports_to_ban.max(1));
        let ban = if !duplicate && reporters >= threshold {
            let marks = vec![Self::user_mark(&reported.id)];
            let already = self.store.ban_for(&marks, Timestamp::now()).await?;
            match already {
                Some(_) => None,
                None => Some(
                    self.ban(reported, BanSource::Reports, report.reason.as_str(), None)
                        .await?,
                ),
            }
        } else {
            None
        };
        Ok(ReportOutcome {
            report,
            ban,
            duplicate,
        })
    }

    /// Bans `user` for `secs` (default [`ModerationSettings::ban_secs`]): their id, their
    /// device and every address noted for them. The caller applies its effects.
    pub async fn ban(
        &self,
        user: &GuestUser,
        source: BanSource,
        reason: &str,
        secs: Option<u64>,
    ) -> StoreResult<Ban> {
        let now = Timestamp::now();
        let ban = Ban {
            id: BanId::generate(),
            user_id: user.id.clone(),
            reason: reason.to_owned(),
            source,
            created_at: now,
            until: now.plus(Duration::from_secs(
                secs.unwrap_or(self.rules.ban_secs).max(1),
            )),
        };
        let mut marks = vec![Self::user_mark(&user.id)];
        marks.extend(
            user.device_id
                .as_ref()
                .map(|device| self.device_mark(device.as_str())),
        );
        marks.extend(self.store.addresses(&user.id).await?);
        self.store.ban(&ban, &marks).await?;
        tracing::info!(user_id = %user.id, ban_id = %ban.id, ?source, "user banned");
        Ok(ban)
    }
}

fn hmac_hex(key: &[u8], input: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC takes keys of any length; unreachable, but no panic on input.
        return String::new();
    };
    mac.update(input);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Applies a ban that just started: the user's socket (on whichever node) gets
/// `session:banned {until, reason}` and is disconnected, their room closes with
/// `partner_banned` for the partner, and the session ends.
pub async fn enforce(state: &crate::state::AppState, ban: &Ban) {
    let end = chat_signaling::SessionEnd::Banned {
        until: ban.until,
        reason: ban.reason.clone(),
    };
    let source = match ban.source {
        chat_domain::BanSource::Reports => "reports",
        chat_domain::BanSource::Admin => "admin",
    };
    state.metrics.ban_started(source);
    state.hub.end_session(&ban.user_id, end).await;
    if let Err(error) = state.hub.lifecycle.delete(&ban.user_id).await {
        tracing::warn!(%error, "could not delete a banned session");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_hide_the_address_and_group_an_ipv6_64() {
        let store = Arc::new(chat_storage::MemoryStore::new(Default::default()));
        let moderation = Moderation::new(
            store,
            b"a secret of thirty-two bytes, at least",
            ModerationSettings::default(),
            Duration::from_secs(60),
        );
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0; 4]));
        let same_64: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let other: IpAddr = "203.0.113.7".parse().unwrap_or(IpAddr::from([0; 4]));
        let mark = moderation.address_mark(one);
        assert_eq!(mark, moderation.address_mark(same_64));
        assert_ne!(mark, moderation.address_mark(other));
        assert!(!mark.contains("2001") && !mark.contains("db8"), "{mark}");
        assert!(!moderation.address_mark(other).contains("203.0.113"));
        assert_ne!(moderation.device_mark("d"), moderation.device_mark("e"));
    }
}

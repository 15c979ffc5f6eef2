//! The in-memory session table and the indexes kept beside it.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::time::Duration;

use chat_domain::{GuestUser, PublicUser, Stats, Timestamp, UserId};

use crate::OnlinePage;

/// Every session with its indexes. Invariant: each index holds exactly the entries derived
/// from `users` by [`Sessions::index`], so counters never need a scan.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    users: HashMap<UserId, GuestUser>,
    /// (expiry, id): sessions in the order they expire.
    expiries: BTreeSet<(Timestamp, String)>,
    /// (last seen, id): for `active_users`.
    activity: BTreeSet<(Timestamp, String)>,
    /// Ids of online users, ordered for cursor pagination.
    online: BTreeSet<String>,
    searching: u64,
    in_chat: u64,
}

impl Sessions {
    /// The session of `id` if it expires after `now`.
    pub(super) fn live(&self, id: &UserId, now: Timestamp, ttl: Duration) -> Option<&GuestUser> {
        self.users.get(id).filter(|user| expiry(user, ttl) > now)
    }

    /// Whether `id`'s session is stored but its TTL ran out (the sweep has not ended it yet).
    pub(super) fn ran_out(&self, id: &UserId, now: Timestamp, ttl: Duration) -> bool {
        self.users
            .get(id)
            .is_some_and(|user| expiry(user, ttl) <= now)
    }

    /// Inserts or replaces a session, keeping the indexes in step.
    pub(super) fn put(&mut self, user: GuestUser, ttl: Duration) {
        if let Some(old) = self.users.remove(&user.id) {
            self.unindex(&old, ttl);
        }
        self.index(&user, ttl);
        self.users.insert(user.id.clone(), user);
    }

    /// Replaces a session that is here already; does nothing for one that is not, so that a
    /// copy cannot come back after [`Sessions::remove`].
    pub(super) fn refresh(&mut self, user: GuestUser, ttl: Duration) {
        if self.users.contains_key(&user.id) {
            self.put(user, ttl);
        }
    }

    /// Removes a session and its index entries.
    pub(super) fn remove(&mut self, id: &UserId, ttl: Duration) -> Option<GuestUser> {
        let user = self.users.remove(id)?;
        self.unindex(&user, ttl);
        Some(user)
    }

    /// Removes every session that expires at or before `now` and returns them.
    pub(super) fn sweep(&mut self, now: Timestamp, ttl: Duration) -> Vec<GuestUser> {
        let mut expired = Vec::new();
        while let Some((expires_at, id)) = self.expiries.first().cloned() {
            if expires_at > now {
                break;
            }
            let removed = UserId::parse(&id).and_then(|user_id| self.remove(&user_id, ttl));
            match removed {
                Some(user) => expired.push(user),
                // Unreachable while the invariant holds; never loop on a stray entry.
                None => {
                    self.expiries.remove(&(expires_at, id));
                }
            }
        }
        expired
    }

    /// The counters at `now`: cost O(log n + expired-but-unswept + active).
    pub(super) fn stats(&self, now: Timestamp) -> Stats {
        let expired = self
            .expiries
            .range(..(now.plus(Duration::from_millis(1)), String::new()))
            .count();
        let since = now.minus(Stats::ACTIVE_WINDOW);
        let active = self.activity.range((since, String::new())..).count();
        Stats {
            total_users: self.users.len().saturating_sub(expired) as u64,
            online_users: self.online.len() as u64,
            active_users: active as u64,
            available_users: self.searching,
            connected_users: self.in_chat / 2,
            users_in_chat: self.in_chat,
        }
    }

    /// Online users after `cursor`, skipping sessions that expired but were not swept yet.
    pub(super) fn online_page(
        &self,
        limit: usize,
        cursor: Option<&str>,
        now: Timestamp,
        ttl: Duration,
    ) -> OnlinePage {
        let start = cursor.map_or(Bound::Unbounded, |cursor| {
            Bound::Excluded(cursor.to_owned())
        });
        let mut users: Vec<PublicUser> = Vec::with_capacity(limit);
        let mut next_cursor = None;
        for id in self.online.range::<String, _>((start, Bound::Unbounded)) {
            if users.len() == limit {
                next_cursor = users.last().map(|user| user.id.to_string());
                break;
            }
            if let Some(user) = UserId::parse(id).and_then(|user_id| self.live(&user_id, now, ttl))
            {
                users.push(user.public());
            }
        }
        OnlinePage { users, next_cursor }
    }

    /// Clones of the sessions that expire after `now`.
    pub(super) fn live_users(&self, now: Timestamp, ttl: Duration) -> Vec<GuestUser> {
        self.users
            .values()
            .filter(|user| expiry(user, ttl) > now)
            .cloned()
            .collect()
    }

    fn index(&mut self, user: &GuestUser, ttl: Duration) {
        let id = user.id.to_string();
        self.expiries.insert((expiry(user, ttl), id.clone()));
        self.activity.insert((user.last_seen, id.clone()));
        if user.is_online {
            self.online.insert(id);
        }
        self.searching += u64::from(user.is_searching);
        self.in_chat += u64::from(user.in_chat);
    }

    fn unindex(&mut self, user: &GuestUser, ttl: Duration) {
        let id = user.id.to_string();
        self.expiries.remove(&(expiry(user, ttl), id.clone()));
        self.activity.remove(&(user.last_seen, id.clone()));
        self.online.remove(&id);
        self.searching = self.searching.saturating_sub(u64::from(user.is_searching));
        self.in_chat = self.in_chat.saturating_sub(u64::from(user.in_chat));
    }
}

/// When a session expires: `session_ttl` after its last activity.
pub(crate) fn expiry(user: &GuestUser, ttl: Duration) -> Timestamp {
    user.last_seen.plus(ttl)
}

//! In-memory fixed-window rate limiting.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::RateDecision;

/// One key's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    ends_at: Instant,
    hits: u32,
}

/// Windows by key. A window opens at a key's first hit and lasts `window`, like Redis'
/// `INCR` + `PEXPIRE NX`.
#[derive(Debug, Default)]
pub(super) struct RateWindows {
    windows: HashMap<String, Window>,
}

impl RateWindows {
    /// Counts a hit at `now` and says whether it is allowed.
    pub(super) fn hit(
        &mut self,
        key: &str,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> RateDecision {
        let fresh = Window {
            ends_at: now + window,
            hits: 0,
        };
        let current = self.windows.entry(key.to_owned()).or_insert(fresh);
        if current.ends_at <= now {
            *current = fresh;
        }
        current.hits = current.hits.saturating_add(1);
        RateDecision {
            allowed: current.hits <= limit,
            remaining: limit.saturating_sub(current.hits),
            retry_after: current.ends_at.saturating_duration_since(now),
        }
    }

    /// Forgets windows that have ended.
    pub(super) fn sweep(&mut self, now: Instant) {
        self.windows.retain(|_, window| window.ends_at > now);
    }
}

//! A token bucket per socket: a sustained `rate` events a second, bursts up to `burst`; and
//! the handshake limit per client, counted in the store every node shares.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chat_storage::{RateDecision, StoreResult};

use crate::client_ip::client_key;

/// A token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens a second, holding at most `burst`.
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            updated: Instant::now(),
        }
    }

    /// Takes a token at `now`; `false` when the bucket is empty.
    pub fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// New Engine.IO connections per client ([`client_key`]: an IPv4 address, an IPv6 /64), at
/// most `limit` per fixed `window`, counted in the shared store
/// ([`SessionStore::hit_rate_limit`](chat_storage::SessionStore::hit_rate_limit)) so the limit
/// holds across every node.
///
/// Once the store refused a client, this node remembers it until the store's window ends and
/// refuses it again without asking: the store's count only grows within a window, so it would
/// refuse too. A flood from one address costs the store one call per node per window past
/// the limit, not one per handshake. Memory is one deadline per refused client, dropped once
/// it passed.
#[derive(Debug)]
pub struct HandshakeLimit {
    limit: u32,
    window: Duration,
    refused: Mutex<Refused>,
}

/// The clients the store refused, with the end of their window.
#[derive(Debug)]
struct Refused {
    until: HashMap<IpAddr, tokio::time::Instant>,
    /// Size at which the passed deadlines are dropped next (amortized: twice what is left).
    prune_at: usize,
}

/// Size under which the refused clients are never pruned.
const PRUNE_FLOOR: usize = 1024;

impl HandshakeLimit {
    /// At most `limit` handshakes per client per `window`; `0` admits everything.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            refused: Mutex::new(Refused {
                until: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// Counts a handshake from `address` with `hit` (the store's
    /// `hit_rate_limit(key, limit, window)`); `false` when the client's window is used up.
    /// With no limit, or while the store's refusal of this client is remembered, `hit` is not
    /// called. A store error admits the handshake: a failing store must not lock everyone out.
    pub async fn allow<F, Hit>(&self, address: IpAddr, hit: F) -> bool
    where
        F: FnOnce(String, u32, Duration) -> Hit,
        Hit: Future<Output = StoreResult<RateDecision>>,
    {
        if self.limit == 0 {
            return true;
        }
        let client = client_key(address);
        // Taken before asking, so the remembered end of the window is never late.
        let now = tokio::time::Instant::now();
        if self.is_refused(client, now) {
            return false;
        }
        match hit(format!("handshake:{client}"), self.limit, self.window).await {
            Ok(decision) if decision.allowed => true,
            Ok(decision) => {
                self.refuse(client, now + decision.retry_after, now);
                false
            }
            Err(error) => {
                tracing::warn!(%error, "handshake admitted: the rate limit could not be counted");
                true
            }
        }
    }

    fn is_refused(&self, client: IpAddr, now: tokio::time::Instant) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        match refused.until.get(&client) {
            Some(until) if *until > now => true,
            Some(_) => {
                refused.until.remove(&client);
                false
            }
            None => false,
        }
    }

    fn refuse(&self, client: IpAddr, until: tokio::time::Instant, now: tokio::time::Instant) {
        if until <= now {
            return;
        }
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.until.len() >= refused.prune_at {
            refused.until.retain(|_, until| *until > now);
            refused.prune_at = (refused.until.len() * 2).max(PRUNE_FLOOR);
        }
        refused.until.insert(client, until);
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .until
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chat_storage::{MemoryStore, SessionStore, StorageError, StoreConfig};

    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("not an address: {text}"))
    }

    /// One node's limit over `store`, counting its calls to the store in `calls`.
    async fn allow(
        node: &HandshakeLimit,
        store: &MemoryStore,
        calls: &AtomicUsize,
        address: &str,
    ) -> bool {
        node.allow(ip(address), |key, limit, window| async move {
            calls.fetch_add(1, Ordering::Relaxed);
            store.hit_rate_limit(&key, limit, window).await
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn handshakes_are_limited_per_client_across_nodes() {
        let store = MemoryStore::new(StoreConfig::default());
        let calls = AtomicUsize::new(0);
        let nodes = [
            HandshakeLimit::new(3, WINDOW),
            HandshakeLimit::new(3, WINDOW),
        ];
        let mut allowed = 0;
        for round in 0..6 {
            allowed += usize::from(allow(&nodes[round % 2], &store, &calls, "10.0.0.1").await);
        }
        assert_eq!(allowed, 3, "the two nodes share one count");
        assert!(
            allow(&nodes[0], &store, &calls, "10.0.0.2").await,
            "another address has its own count"
        );
        // One IPv6 /64 is one client; the v4-mapped form is the v4 address.
        let v6 = ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"];
        let mut allowed = 0;
        for round in 0..4 {
            allowed += usize::from(allow(&nodes[round % 2], &store, &calls, v6[round % 2]).await);
        }
        assert_eq!(allowed, 3);
        assert!(!allow(&nodes[1], &store, &calls, "::ffff:10.0.0.1").await);
        tokio::time::advance(WINDOW).await;
        assert!(
            allow(&nodes[1], &store, &calls, "10.0.0.1").await,
            "a new window starts afresh"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_client_is_not_counted_again_until_its_window_ends() {
        let store = MemoryStore::new(StoreConfig::default());
        let calls = AtomicUsize::new(0);
        let node = HandshakeLimit::new(2, WINDOW);
        for _ in 0..2 {
            assert!(allow(&node, &store, &calls, "10.0.0.1").await);
        }
        for _ in 0..100 {
            assert!(!allow(&node, &store, &calls, "10.0.0.1").await);
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            3,
            "one refusal from the store"
        );
        tokio::time::advance(WINDOW - Duration::from_millis(1)).await;
        assert!(!allow(&node, &store, &calls, "10.0.0.1").await);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(allow(&node, &store, &calls, "10.0.0.1").await);
        assert_eq!(calls.load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_clients_are_forgotten_once_their_window_passed() {
        let store = MemoryStore::new(StoreConfig::default());
        let calls = AtomicUsize::new(0);
        let node = HandshakeLimit::new(1, WINDOW);
        for index in 0..PRUNE_FLOOR {
            let address = format!("10.1.{}.{}", index / 256, index % 256);
            assert!(allow(&node, &store, &calls, &address).await);
            assert!(!allow(&node, &store, &calls, &address).await);
        }
        assert_eq!(node.remembered(), PRUNE_FLOOR);
        tokio::time::advance(WINDOW).await;
        assert!(allow(&node, &store, &calls, "10.2.0.1").await);
        assert!(!allow(&node, &store, &calls, "10.2.0.1").await);
        assert_eq!(node.remembered(), 1);
    }

    #[tokio::test]
    async fn no_limit_asks_nothing_and_a_store_error_admits() {
        let unlimited = HandshakeLimit::new(0, WINDOW);
        for _ in 0..1000 {
            let allowed = unlimited
                .allow(ip("10.0.0.1"), |_, _, _| async {
                    panic!("the store is asked with no limit")
                })
                .await;
            assert!(allowed);
        }
        let node = HandshakeLimit::new(1, WINDOW);
        for _ in 0..3 {
            let allowed = node
                .allow(ip("10.0.0.1"), |_, _, _| async {
                    Err(StorageError::Unavailable("down".to_owned()))
                })
                .await;
            assert!(allowed, "a failing store admits");
        }
    }

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(50, 100);
        let allowed = (0..150).filter(|_| bucket.take_at(start)).count();
        assert_eq!(allowed, 100);
        let later = start + Duration::from_millis(100);
        let allowed = (0..10).filter(|_| bucket.take_at(later)).count();
        assert_eq!(allowed, 5, "50 a second is 5 per 100 ms");
    }
}

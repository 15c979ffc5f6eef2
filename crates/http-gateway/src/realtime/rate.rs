//! A token bucket per socket: a sustained `rate` events a second, bursts up to `burst`; and
//! the handshake limit per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// New Engine.IO connections per client address, in fixed windows: at most `limit` per
/// address per `window`. Memory is one counter per address seen in the current window; all
/// of them go when the window rolls over.
#[derive(Debug)]
pub struct HandshakeLimiter {
    limit: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    counts: HashMap<IpAddr, u32>,
}

impl HandshakeLimiter {
    /// At most `limit` handshakes per address per `window`; `0` admits everything.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                counts: HashMap::new(),
            }),
        }
    }

    /// Counts a handshake from `address` at `now`; `false` when its window is used up.
    pub fn allow_at(&self, address: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut window = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(window.started) >= self.window {
            window.started = now;
            window.counts = HashMap::new();
        }
        let count = window.counts.entry(client_key(address)).or_insert(0);
        if *count >= self.limit {
            return false;
        }
        *count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn handshakes_are_limited_per_address_and_window() {
        let limiter = HandshakeLimiter::new(3, Duration::from_secs(10));
        let start = Instant::now();
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let two: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!((0..5).filter(|_| limiter.allow_at(one, start)).count(), 3);
        assert!(
            limiter.allow_at(two, start),
            "another address has its own count"
        );
        let next = start + Duration::from_secs(10);
        assert!(limiter.allow_at(one, next), "a new window starts afresh");
        // One IPv6 /64 is one client; the v4-mapped form is the v4 address.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(
            [a, b, a, b]
                .iter()
                .filter(|ip| limiter.allow_at(**ip, next))
                .count(),
            3
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), one);
        let unlimited = HandshakeLimiter::new(0, Duration::from_secs(10));
        assert!((0..1000).all(|_| unlimited.allow_at(one, start)));
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

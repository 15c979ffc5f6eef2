//! Process counters exposed at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges of one process. Cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Guest sessions created.
    pub sessions_created: AtomicU64,
    /// Requests or events refused by a rate limit.
    pub rate_limited: AtomicU64,
    /// Socket.IO connections accepted.
    pub socket_connects: AtomicU64,
    /// Socket.IO connections refused at CONNECT.
    pub socket_refused: AtomicU64,
    /// Socket.IO events received.
    pub socket_events: AtomicU64,
    /// Chat messages relayed.
    pub messages_relayed: AtomicU64,
    /// Delivery receipts relayed.
    pub receipts_relayed: AtomicU64,
    /// Pairs matched.
    pub matches: AtomicU64,
    /// Files uploaded.
    pub files_uploaded: AtomicU64,
    /// `realtime:stats` broadcasts sent.
    pub stats_broadcasts: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the live gauges given by the caller.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let counters = [
            (
                "chat_sessions_created_total",
                "Guest sessions created.",
                &self.sessions_created,
            ),
            (
                "chat_rate_limited_total",
                "Requests and events refused by a rate limit.",
                &self.rate_limited,
            ),
            (
                "chat_socket_connects_total",
                "Socket.IO connections accepted.",
                &self.socket_connects,
            ),
            (
                "chat_socket_refused_total",
                "Socket.IO connections refused.",
                &self.socket_refused,
            ),
            (
                "chat_socket_events_total",
                "Socket.IO events received.",
                &self.socket_events,
            ),
            (
                "chat_messages_relayed_total",
                "Chat messages relayed.",
                &self.messages_relayed,
            ),
            (
                "chat_receipts_relayed_total",
                "Delivery receipts relayed.",
                &self.receipts_relayed,
            ),
            ("chat_matches_total", "Pairs matched.", &self.matches),
            (
                "chat_files_uploaded_total",
                "Files uploaded.",
                &self.files_uploaded,
            ),
            (
                "chat_stats_broadcasts_total",
                "realtime:stats broadcasts.",
                &self.stats_broadcasts,
            ),
        ];
        let mut text = String::with_capacity(2048);
        for (name, help, counter) in counters {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        text
    }
}

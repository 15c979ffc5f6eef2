//! The metrics of one process, exposed at `/metrics` in the Prometheus text format (0.0.4)
//! through `prometheus-client`: counters of what happened, gauges of now, histograms of how
//! long things take, the build and the process (`docs/operations.md` lists them all).
//!
//! Every label takes its value from a small fixed set (known names, else `other`), so the
//! number of series is bounded whatever clients send. Series that matter from the start
//! (refusals, rate limits, reports and bans, dropped events) exist at 0 before anything
//! happened, so that `rate()` and `increase()` see their first increment.
//!
//! The storage and the chat know nothing of metrics: they are told of an observer
//! ([`chat_storage::redis::RedisObserver`], [`chat_signaling::ClusterObserver`]), which
//! [`Metrics`] is.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chat_domain::ErrorCode;
use chat_signaling::{ClusterObserver, DropReason, Outgoing};
use chat_storage::redis::RedisObserver;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The client events timed by name (`chat_socket_event_duration_seconds{event}`); any other
/// name is timed as `other`. A new client event belongs here.
pub const SOCKET_EVENTS: &[&str] = &[
    "presence:heartbeat",
    "presence:online",
    "stats:request",
    "users:online:request",
    "match:search",
    "match:cancel",
    "match:next",
    "chat:message",
    "message:delivered",
    "chat:typing",
    "chat:leave",
    "chat:clear",
    "webrtc:offer",
    "webrtc:answer",
    "webrtc:ice-candidate",
    "webrtc:call-end",
    "webrtc:call-reject",
    "user:report",
];

/// Kinds of rate limit (`chat_rate_limited_total{kind}`).
pub const RATE_LIMITS: &[&str] = &["sessions", "events", "handshakes", "uploads"];

/// Why a Socket.IO connection was refused (`chat_socket_refused_total{reason}`): `auth` (no,
/// an invalid or an expired token, or no such session), `banned`, `draining` (this node takes
/// no new sockets), `handshake_limit` (too many new connections from one address).
pub const SOCKET_REFUSALS: &[&str] = &["auth", "banned", "draining", "handshake_limit"];

/// Why a REST request was refused (`chat_http_refused_total{reason}`).
pub const HTTP_REFUSALS: &[&str] = &["auth", "banned", "draining", "rate_limited"];

/// Where a ban came from (`chat_bans_total{source}`): too many reports, or an operator.
pub const BAN_SOURCES: &[&str] = &["reports", "admin"];

/// Why events between nodes were lost (`chat_bus_dropped_events_total{reason}`): `lagged`
/// (this node read its bus too slowly) and each [`DropReason`].
const BUS_DROPS: &[&str] = &["lagged", "unplaced", "publish_failed", "unreadable"];

/// Buckets of the latency histograms (socket events, Redis commands, cross-node delivery),
/// in seconds: 0.5 ms to 2.5 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Buckets of the wait for a match, in seconds: half a second to ten minutes.
const MATCH_WAIT_BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// One label, its value from a fixed set.
type Label = [(&'static str, &'static str); 1];

type Histograms = Family<Label, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// `value` if it is one of `known`, else `other`.
fn known(value: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|candidate| **candidate == value)
        .copied()
        .unwrap_or("other")
}

/// The reason label of a CONNECT refused with `message` ([`SOCKET_REFUSALS`]): `banned` or
/// `draining` when the message says so, else `auth` (every other refusal at CONNECT is about
/// the token or its session).
pub fn connect_refusal(message: &str) -> &'static str {
    let message = message.to_ascii_lowercase();
    if message.contains("banned") {
        "banned"
    } else if message.contains("draining") {
        "draining"
    } else {
        "auth"
    }
}

/// The label of a client event's name: itself if known ([`SOCKET_EVENTS`]), else `other`.
pub fn event_label(name: &str) -> &'static str {
    known(name, SOCKET_EVENTS)
}

/// The metrics of one process. Cheap to bump from any thread.
pub struct Metrics {
    registry: Registry,
    /// Guest sessions created.
    pub sessions_created: Counter,
    /// Socket.IO connections accepted.
    pub socket_connects: Counter,
    /// Socket.IO events received.
    pub socket_events: Counter,
    /// Chat messages relayed.
    pub messages_relayed: Counter,
    /// Delivery receipts relayed.
    pub receipts_relayed: Counter,
    /// Pairs matched (counted once per pair, on the searcher's node).
    pub matches: Counter,
    /// Files uploaded.
    pub files_uploaded: Counter,
    /// `realtime:stats` broadcasts sent.
    pub stats_broadcasts: Counter,
    rate_limited: Family<Label, Counter>,
    socket_refused: Family<Label, Counter>,
    http_refused: Family<Label, Counter>,
    reports: Counter,
    bans: Family<Label, Counter>,
    slow_clients: Counter,
    bus_dropped: Family<Label, Counter>,
    socket_event_seconds: Histograms,
    redis_command_seconds: Histograms,
    bus_delivery_seconds: Histogram,
    match_wait_seconds: Histogram,
    redis_up: Gauge,
    connected_sockets: Gauge,
    local_chats: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What `/metrics` reads from the node at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Whether Redis answers.
    pub redis_up: bool,
    /// Socket.IO connections of authenticated users on this node.
    pub connected_sockets: usize,
    /// Users of this node in a chat.
    pub local_chats: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A counter family whose series for each of `values` exist from the start.
fn counters(key: &'static str, values: &[&'static str]) -> Family<Label, Counter> {
    let family = Family::<Label, Counter>::default();
    for value in values {
        drop(family.get_or_create(&[(key, value)]));
    }
    family
}

fn gauge_of(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            sessions_created: Counter::default(),
            socket_connects: Counter::default(),
            socket_events: Counter::default(),
            messages_relayed: Counter::default(),
            receipts_relayed: Counter::default(),
            matches: Counter::default(),
            files_uploaded: Counter::default(),
            stats_broadcasts: Counter::default(),
            rate_limited: counters("kind", RATE_LIMITS),
            socket_refused: counters("reason", SOCKET_REFUSALS),
            http_refused: counters("reason", HTTP_REFUSALS),
            reports: Counter::default(),
            bans: counters("source", BAN_SOURCES),
            slow_clients: Counter::default(),
            bus_dropped: counters("reason", BUS_DROPS),
            socket_event_seconds: Family::new_with_constructor(latency_histogram),
            redis_command_seconds: Family::new_with_constructor(latency_histogram),
            bus_delivery_seconds: latency_histogram(),
            match_wait_seconds: Histogram::new(MATCH_WAIT_BUCKETS),
            redis_up: Gauge::default(),
            connected_sockets: Gauge::default(),
            local_chats: Gauge::default(),
        };
        metrics.registered()
    }

    /// `self` with everything in its registry.
    fn registered(mut self) -> Self {
        let registry = &mut self.registry;
        let counters = [
            (
                "chat_sessions_created",
                "Guest sessions created",
                &self.sessions_created,
            ),
            (
                "chat_socket_connects",
                "Socket.IO connections accepted",
                &self.socket_connects,
            ),
            (
                "chat_socket_events",
                "Socket.IO events received",
                &self.socket_events,
            ),
            (
                "chat_messages_relayed",
                "Chat messages relayed",
                &self.messages_relayed,
            ),
            (
                "chat_receipts_relayed",
                "Delivery receipts relayed",
                &self.receipts_relayed,
            ),
            ("chat_matches", "Pairs matched", &self.matches),
            (
                "chat_files_uploaded",
                "Files uploaded",
                &self.files_uploaded,
            ),
            (
                "chat_stats_broadcasts",
                "realtime:stats broadcasts",
                &self.stats_broadcasts,
            ),
            ("chat_reports", "Reports filed", &self.reports),
            (
                "chat_slow_client_disconnects",
                "Socket.IO connections closed because the client did not read (outbound queue full)",
                &self.slow_clients,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let families = [
            (
                "chat_rate_limited",
                "Requests, events and connections refused by a rate limit, by kind",
                &self.rate_limited,
            ),
            (
                "chat_socket_refused",
                "Socket.IO connections refused, by reason",
                &self.socket_refused,
            ),
            (
                "chat_http_refused",
                "REST requests refused (auth, ban, drain, rate limit), by reason",
                &self.http_refused,
            ),
            ("chat_bans", "Bans started, by source", &self.bans),
            (
                "chat_bus_dropped_events",
                "Events between nodes lost or given up, by reason",
                &self.bus_dropped,
            ),
        ];
        for (name, help, family) in families {
            registry.register(name, help, family.clone());
        }
        registry.register_with_unit(
            "chat_socket_event_duration",
            "Time to handle a Socket.IO event, by event name",
            Unit::Seconds,
            self.socket_event_seconds.clone(),
        );
        registry.register_with_unit(
            "chat_redis_command_duration",
            "Time of a Redis command or script, by name",
            Unit::Seconds,
            self.redis_command_seconds.clone(),
        );
        registry.register_with_unit(
            "chat_bus_delivery_duration",
            "Time from an event's publication on another node to its delivery here",
            Unit::Seconds,
            self.bus_delivery_seconds.clone(),
        );
        registry.register_with_unit(
            "chat_match_wait",
            "Time a queued searcher waited until match:found",
            Unit::Seconds,
            self.match_wait_seconds.clone(),
        );
        let gauges = [
            ("chat_redis_up", "1 when Redis answers", &self.redis_up),
            (
                "chat_connected_sockets",
                "Socket.IO connections of authenticated users on this node",
                &self.connected_sockets,
            ),
            (
                "chat_local_chats",
                "Users of this node in a chat",
                &self.local_chats,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        let build = Family::<Label, Gauge>::default();
        build
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("chat_build_info", "The running build (always 1)", build);
        registry.register_collector(Box::new(ProcessCollector {
            pid: std::process::id(),
        }));
        self
    }

    /// Adds one to a counter.
    pub fn bump(counter: &Counter) {
        counter.inc();
    }

    /// A rate limit of `kind` refused something (see [`RATE_LIMITS`]).
    pub fn rate_limited(&self, kind: &str) {
        self.rate_limited
            .get_or_create(&[("kind", known(kind, RATE_LIMITS))])
            .inc();
    }

    /// A Socket.IO connection was refused, for `reason` (see [`SOCKET_REFUSALS`]).
    pub fn socket_refused(&self, reason: &str) {
        self.socket_refused
            .get_or_create(&[("reason", known(reason, SOCKET_REFUSALS))])
            .inc();
    }

    /// A new connection was refused by the handshake limit (a rate limit and a refusal).
    pub fn handshake_refused(&self) {
        self.rate_limited("handshakes");
        self.socket_refused("handshake_limit");
    }

    /// A REST request was refused with `code`: counted when it is a refusal (bad or no
    /// credentials, a ban, a draining node, a rate limit), ignored otherwise.
    pub fn http_refused(&self, code: ErrorCode) {
        let reason = match code {
            ErrorCode::AuthRequired
            | ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::SessionNotFound => "auth",
            ErrorCode::Banned => "banned",
            ErrorCode::Draining => "draining",
            ErrorCode::RateLimited => "rate_limited",
            _ => return,
        };
        self.http_refused.get_or_create(&[("reason", reason)]).inc();
    }

    /// A user filed a report.
    pub fn report_filed(&self) {
        self.reports.inc();
    }

    /// A ban started; `source` is `reports` or `admin` ([`BAN_SOURCES`]).
    pub fn ban_started(&self, source: &str) {
        self.bans
            .get_or_create(&[("source", known(source, BAN_SOURCES))])
            .inc();
    }

    /// A connection was closed because its client did not read what it was sent.
    pub fn slow_client_dropped(&self) {
        self.slow_clients.inc();
    }

    /// A client event labelled `event` ([`event_label`]) took `elapsed` to handle.
    pub fn event_handled(&self, event: &'static str, elapsed: Duration) {
        self.socket_event_seconds
            .get_or_create(&[("event", event)])
            .observe(elapsed.as_secs_f64());
    }

    /// Times the wait for a match from what is handed to a socket, on `clock` (the
    /// socket's): `match:searching` starts it, `match:cancelled` stops it, `match:found`
    /// ends it. The side that waited in the queue (the `initiator`) is a wait; the searcher
    /// who found them is a match. A `match:found` with no clock running (repeated after a
    /// reconnect, or after the socket changed) counts as neither.
    pub fn match_event(&self, clock: &MatchClock, event: &Outgoing) {
        match event {
            Outgoing::Searching => clock.start(),
            Outgoing::Cancelled => {
                clock.stop();
            }
            Outgoing::Found { initiator, .. } => {
                let Some(waited) = clock.stop() else {
                    return;
                };
                if *initiator {
                    self.match_wait_seconds.observe(waited.as_secs_f64());
                } else {
                    self.matches.inc();
                }
            }
            _ => {}
        }
    }

    /// The text of `/metrics`, with the gauges of `live`.
    pub fn render(&self, live: Live) -> String {
        self.redis_up.set(i64::from(live.redis_up));
        self.connected_sockets.set(gauge_of(live.connected_sockets));
        self.local_chats.set(gauge_of(live.local_chats));
        let mut text = String::with_capacity(16 * 1024);
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!(%error, "metrics could not be encoded");
        }
        text
    }
}

impl RedisObserver for Metrics {
    fn command(&self, command: &'static str, elapsed: Duration) {
        self.redis_command_seconds
            .get_or_create(&[("command", command)])
            .observe(elapsed.as_secs_f64());
    }

    fn bus_lagged(&self, missed: u64) {
        self.bus_dropped
            .get_or_create(&[("reason", "lagged")])
            .inc_by(missed);
    }
}

impl ClusterObserver for Metrics {
    fn event_delivered(&self, latency: Duration) {
        self.bus_delivery_seconds.observe(latency.as_secs_f64());
    }

    fn events_dropped(&self, events: usize, reason: DropReason) {
        self.bus_dropped
            .get_or_create(&[("reason", reason.as_str())])
            .inc_by(u64::try_from(events).unwrap_or(u64::MAX));
    }
}

/// When a socket's user started searching (see [`Metrics::match_event`]).
#[derive(Debug, Default)]
pub struct MatchClock(Mutex<Option<Instant>>);

impl MatchClock {
    fn start(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// How long since the start, and the clock stopped; `None` if it was not running.
    fn stop(&self) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|started| started.elapsed())
    }
}

/// The standard `process_*` metrics of this process, read from `/proc` at each scrape
/// (nothing where there is no `/proc`).
#[derive(Debug)]
struct ProcessCollector {
    pid: u32,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(sample) = chat_procfs::sample(self.pid) else {
            return Ok(());
        };
        let cpu = ConstCounter::new(sample.cpu_secs);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, value: f64| {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            (sample.rss_kib * 1024) as f64,
        )?;
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            sample.fds as f64,
        )?;
        if let Ok(Some(limit)) = chat_procfs::max_fds(self.pid) {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                limit as f64,
            )?;
        }
        if let Ok(started) = chat_procfs::start_time(self.pid) {
            gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                started,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series ` in `text`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn names_keep_their_meaning_and_labels_stay_bounded() {
        let metrics = Metrics::new();
        Metrics::bump(&metrics.sessions_created);
        metrics.rate_limited("events");
        metrics.rate_limited("anything else");
        metrics.socket_refused(connect_refusal("Token has expired"));
        metrics.socket_refused(connect_refusal("Banned"));
        metrics.http_refused(ErrorCode::TokenExpired);
        metrics.http_refused(ErrorCode::InvalidInput);
        metrics.ban_started("reports");
        metrics.ban_started("admin");
        metrics.ban_started("a made-up source");
        metrics.report_filed();
        metrics.event_handled(event_label("chat:message"), Duration::from_millis(3));
        metrics.event_handled(event_label("no:such-event"), Duration::from_millis(1));
        metrics.command("search", Duration::from_micros(700));
        metrics.bus_lagged(3);
        metrics.events_dropped(2, DropReason::Unplaced);
        let text = metrics.render(Live {
            redis_up: true,
            connected_sockets: 2,
            local_chats: 1,
        });
        for (series, expected) in [
            ("chat_sessions_created_total", 1.0),
            ("chat_matches_total", 0.0),
            ("chat_rate_limited_total{kind=\"events\"}", 1.0),
            ("chat_rate_limited_total{kind=\"uploads\"}", 0.0),
            ("chat_rate_limited_total{kind=\"other\"}", 1.0),
            ("chat_socket_refused_total{reason=\"auth\"}", 1.0),
            ("chat_socket_refused_total{reason=\"banned\"}", 1.0),
            ("chat_socket_refused_total{reason=\"draining\"}", 0.0),
            ("chat_http_refused_total{reason=\"auth\"}", 1.0),
            ("chat_http_refused_total{reason=\"draining\"}", 0.0),
            ("chat_bans_total{source=\"reports\"}", 1.0),
            ("chat_bans_total{source=\"admin\"}", 1.0),
            ("chat_bans_total{source=\"other\"}", 1.0),
            ("chat_reports_total", 1.0),
            ("chat_slow_client_disconnects_total", 0.0),
            ("chat_bus_dropped_events_total{reason=\"lagged\"}", 3.0),
            ("chat_bus_dropped_events_total{reason=\"unplaced\"}", 2.0),
            (
                "chat_bus_dropped_events_total{reason=\"publish_failed\"}",
                0.0,
            ),
            (
                "chat_socket_event_duration_seconds_count{event=\"chat:message\"}",
                1.0,
            ),
            (
                "chat_socket_event_duration_seconds_bucket{event=\"chat:message\",le=\"0.0025\"}",
                0.0,
            ),
            (
                "chat_socket_event_duration_seconds_bucket{event=\"chat:message\",le=\"0.005\"}",
                1.0,
            ),
            (
                "chat_socket_event_duration_seconds_count{event=\"other\"}",
                1.0,
            ),
            (
                "chat_redis_command_duration_seconds_count{command=\"search\"}",
                1.0,
            ),
            ("chat_match_wait_seconds_count", 0.0),
            ("chat_bus_delivery_duration_seconds_count", 0.0),
            ("chat_redis_up", 1.0),
            ("chat_connected_sockets", 2.0),
            ("chat_local_chats", 1.0),
            (
                &format!(
                    "chat_build_info{{version=\"{}\"}}",
                    env!("CARGO_PKG_VERSION")
                ),
                1.0,
            ),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE chat_socket_event_duration_seconds histogram"));
        assert!(text.contains("# TYPE chat_sessions_created_total counter"));
        assert!(text.contains("# HELP chat_sessions_created_total Guest sessions created.\n"));
        assert!(
            !text.contains(".."),
            "help texts end with one period:\n{text}"
        );
        if cfg!(target_os = "linux") {
            assert!(value(&text, "process_resident_memory_bytes").is_some_and(|bytes| bytes > 0.0));
            assert!(value(&text, "process_open_fds").is_some_and(|fds| fds > 0.0));
            assert!(value(&text, "process_cpu_seconds_total").is_some());
            assert!(value(&text, "process_start_time_seconds").is_some_and(|at| at > 1.0e9));
        }
    }

    #[test]
    fn the_wait_for_a_match_is_the_queued_side_and_a_pair_is_counted_once() {
        let metrics = Metrics::new();
        let found = |initiator: bool| Outgoing::Found {
            room_id: chat_domain::RoomId::generate(),
            partner: chat_domain::GuestUser::new(
                chat_domain::Profile::default(),
                chat_domain::Timestamp::now(),
            )
            .public(),
            initiator,
            own_username: chat_domain::Username::generate(),
        };
        let (queued, searcher, gone) = (
            MatchClock::default(),
            MatchClock::default(),
            MatchClock::default(),
        );
        metrics.match_event(&queued, &Outgoing::Searching);
        metrics.match_event(&searcher, &Outgoing::Searching);
        metrics.match_event(&searcher, &found(false));
        metrics.match_event(&queued, &found(true));
        // A repeat (after a reconnect) counts as nothing, nor does a cancelled search.
        metrics.match_event(&queued, &found(true));
        metrics.match_event(&gone, &Outgoing::Searching);
        metrics.match_event(&gone, &Outgoing::Cancelled);
        metrics.match_event(&gone, &found(false));
        let text = metrics.render(Live::default());
        assert_eq!(value(&text, "chat_matches_total"), Some(1.0));
        assert_eq!(value(&text, "chat_match_wait_seconds_count"), Some(1.0));
        assert_eq!(
            value(&text, "chat_match_wait_seconds_bucket{le=\"0.5\"}"),
            Some(1.0)
        );
    }
}

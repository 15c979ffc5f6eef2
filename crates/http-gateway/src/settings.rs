//! The service's settings: one serde struct, loaded once by the app and passed down by value.
//! Every key has a default, so an empty configuration runs the service in memory mode.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// All settings, as `config/default.toml` lays them out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listener and proxies.
    pub server: ServerSettings,
    /// Redis connection.
    pub redis: RedisSettings,
    /// Token signing.
    pub auth: AuthSettings,
    /// Guest sessions.
    pub session: SessionSettings,
    /// WebRTC signaling and ICE servers.
    pub webrtc: WebRtcSettings,
    /// Chat rooms.
    pub chat: ChatSettings,
    /// Many nodes behind one Redis.
    pub cluster: ClusterSettings,
    /// Presence.
    pub presence: PresenceSettings,
    /// Live statistics.
    pub stats: StatsSettings,
    /// Uploaded files.
    pub files: FileSettings,
    /// Rate limits.
    pub rate: RateSettings,
    /// Payload limits.
    pub limits: LimitSettings,
    /// Logging.
    pub log: LogSettings,
    /// Reports and bans.
    pub moderation: ModerationSettings,
    /// The operator's admin listener.
    pub admin: AdminSettings,
}

/// `[moderation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationSettings {
    /// Distinct reporters (distinct users and distinct client addresses) within the window
    /// that ban a user.
    pub reports_to_ban: u32,
    /// The window reports are counted in, in seconds.
    pub report_window_secs: u64,
    /// How long a ban from reports (or an operator's ban without `secs`) lasts, in seconds.
    pub ban_secs: u64,
}

impl Default for ModerationSettings {
    fn default() -> Self {
        Self {
            reports_to_ban: 3,
            report_window_secs: 3600,
            ban_secs: 86_400,
        }
    }
}

/// `[admin]`: the operator's API, on its own listener; off unless `port` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Port of the admin listener (`0` picks a free one); unset: no admin listener.
    pub port: Option<u16>,
    /// Address it binds.
    pub host: String,
    /// Bearer token every admin request must carry (at least 32 bytes; required with a port).
    pub token: Option<Secret>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            port: None,
            host: "127.0.0.1".into(),
            token: None,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Peers whose `X-Forwarded-For` is believed: addresses or CIDR blocks.
    #[serde(deserialize_with = "without_blanks")]
    pub trusted_proxies: Vec<IpNet>,
    /// How long shutdown waits for connections to drain.
    pub shutdown_grace_secs: u64,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// A connection must send a request's whole head (request line and headers) within this
    /// many milliseconds of its first byte, or it gets 408 and is closed (slow clients).
    pub client_request_timeout_ms: u64,
    /// How long a closing connection may take to shut down, in milliseconds.
    pub client_disconnect_timeout_ms: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            trusted_proxies: Vec::new(),
            shutdown_grace_secs: 5,
            workers: 0,
            client_request_timeout_ms: 5000,
            client_disconnect_timeout_ms: 1000,
        }
    }
}

/// `[redis]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://…`, `rediss://…`, `redis-cluster://…` or `redis-sentinel://…`; unset or empty
    /// means in-memory storage.
    pub url: Option<Secret>,
    /// Prefix of every key (inside each key's hash tag, so it may not hold `{` or `}`).
    pub key_prefix: String,
    /// PEM file of the CA certificates a TLS URL's server is checked against, instead of the
    /// system's roots (a private CA); only with a TLS URL.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret; unset means a random one per process (tokens die with it).
    pub jwt_secret: Option<Secret>,
}

/// `[session]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Seconds a session lives after its last activity.
    pub ttl_secs: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { ttl_secs: 7200 }
    }
}

/// `[webrtc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcSettings {
    /// Seconds an offer waits for an answer before `webrtc:call-timeout`.
    pub call_timeout_secs: u64,
    /// STUN server URLs handed to clients.
    #[serde(deserialize_with = "without_blanks")]
    pub stun_urls: Vec<String>,
    /// TURN server URLs handed to clients.
    #[serde(deserialize_with = "without_blanks")]
    pub turn_urls: Vec<String>,
    /// Shared secret of the TURN REST API; unset means no TURN credentials.
    pub turn_secret: Option<Secret>,
    /// Seconds TURN credentials stay valid.
    pub turn_credential_ttl_secs: u64,
}

impl Default for WebRtcSettings {
    fn default() -> Self {
        Self {
            call_timeout_secs: 30,
            stun_urls: vec!["stun:stun.l.google.com:19302".into()],
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_credential_ttl_secs: 86_400,
        }
    }
}

/// `[chat]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// Seconds a room waits for a dropped user to come back.
    pub reconnect_grace_secs: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            reconnect_grace_secs: 10,
        }
    }
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// A node that dies without a word is noticed by the others within this many seconds:
    /// its users show offline and their partners hear `partner:disconnected`.
    pub node_timeout_secs: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            node_timeout_secs: 10,
        }
    }
}

/// `[presence]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceSettings {
    /// Seconds without activity after which a connected user is shown offline.
    pub stale_after_secs: u64,
    /// Engine.IO ping interval, milliseconds.
    pub ping_interval_ms: u64,
    /// Engine.IO ping timeout, milliseconds.
    pub ping_timeout_ms: u64,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            stale_after_secs: 90,
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
        }
    }
}

/// `[stats]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsSettings {
    /// At most one `realtime:stats` per this many milliseconds.
    pub broadcast_interval_ms: u64,
}

impl Default for StatsSettings {
    fn default() -> Self {
        Self {
            broadcast_interval_ms: 1000,
        }
    }
}

/// `[files]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSettings {
    /// Largest upload in bytes.
    pub max_bytes: u64,
    /// Seconds a file lives at most.
    pub ttl_secs: u64,
    /// Seconds a signed download URL stays valid.
    pub url_ttl_secs: u64,
    /// Bytes one room's live files may hold together (with Redis: counted across every
    /// node); an upload past it is 413 `too_large`. At least `max_bytes`.
    pub max_room_bytes: u64,
    /// Bytes of files this node may hold in its memory (memory mode, and in Redis mode its
    /// copies for outages, which are not made past it); an upload past it is 503
    /// `unavailable` until files expire. At least `max_bytes`.
    pub max_total_bytes: u64,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            ttl_secs: 3600,
            url_ttl_secs: 3600,
            max_room_bytes: 50 * 1024 * 1024,
            max_total_bytes: 512 * 1024 * 1024,
        }
    }
}

/// `[rate]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    /// `POST /api/guest` per client address per minute.
    pub sessions_per_minute: u32,
    /// Socket.IO events per socket per second, sustained.
    pub events_per_sec: u32,
    /// New Engine.IO connections (handshakes) per client address per 10 seconds; 0 means no
    /// limit. IPv6 clients are counted per /64.
    pub handshakes_per_10s: u32,
    /// `POST /api/files` per user per minute (with Redis: counted across every node); every
    /// attempt counts, refused or not.
    pub uploads_per_minute: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            sessions_per_minute: 10,
            events_per_sec: 50,
            handshakes_per_10s: 100,
            uploads_per_minute: 20,
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Engine.IO frame and polling payload limit, and JSON body limit, in bytes.
    pub max_payload_bytes: usize,
    /// A new Engine.IO connection that has not sent its Socket.IO CONNECT within this many
    /// milliseconds is closed.
    pub connect_timeout_ms: u64,
    /// Outgoing frames queued per connection; a client that lets its queue fill (it does not
    /// read) is disconnected.
    pub outbound_queue_frames: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            connect_timeout_ms: 45_000,
            outbound_queue_frames: 128,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// An `EnvFilter` directive, e.g. `info` or `chat=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Settings {
    /// Checks values serde cannot: ranges and formats. Returns every problem at once, each
    /// naming its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut positive = |key: &str, value: u64| {
            if value == 0 {
                problems.push(format!("{key}: must be greater than 0"));
            }
        };
        positive("session.ttl_secs", self.session.ttl_secs);
        positive(
            "moderation.reports_to_ban",
            u64::from(self.moderation.reports_to_ban),
        );
        positive(
            "moderation.report_window_secs",
            self.moderation.report_window_secs,
        );
        positive("moderation.ban_secs", self.moderation.ban_secs);
        positive("webrtc.call_timeout_secs", self.webrtc.call_timeout_secs);
        positive(
            "stats.broadcast_interval_ms",
            self.stats.broadcast_interval_ms,
        );
        positive("files.max_bytes", self.files.max_bytes);
        positive("files.ttl_secs", self.files.ttl_secs);
        positive("files.url_ttl_secs", self.files.url_ttl_secs);
        positive(
            "rate.sessions_per_minute",
            u64::from(self.rate.sessions_per_minute),
        );
        positive("rate.events_per_sec", u64::from(self.rate.events_per_sec));
        positive(
            "rate.uploads_per_minute",
            u64::from(self.rate.uploads_per_minute),
        );
        positive("cluster.node_timeout_secs", self.cluster.node_timeout_secs);
        positive("presence.stale_after_secs", self.presence.stale_after_secs);
        positive("presence.ping_interval_ms", self.presence.ping_interval_ms);
        positive("presence.ping_timeout_ms", self.presence.ping_timeout_ms);
        positive("limits.connect_timeout_ms", self.limits.connect_timeout_ms);
        positive(
            "limits.outbound_queue_frames",
            self.limits.outbound_queue_frames as u64,
        );
        positive(
            "server.client_request_timeout_ms",
            self.server.client_request_timeout_ms,
        );
        for (key, bound) in [
            ("files.max_room_bytes", self.files.max_room_bytes),
            ("files.max_total_bytes", self.files.max_total_bytes),
        ] {
            if bound < self.files.max_bytes {
                problems.push(format!(
                    "{key}: must be at least files.max_bytes ({}), or the largest upload never fits",
                    self.files.max_bytes
                ));
            }
        }
        if self.limits.max_payload_bytes < 1024 {
            problems.push("limits.max_payload_bytes: must be at least 1024".into());
        }
        if self.server.host.parse::<IpAddr>().is_err() && self.server.host != "localhost" {
            problems.push(format!(
                "server.host: not an IP address: {}",
                self.server.host
            ));
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < 32
        {
            problems.push("auth.jwt_secret: must be at least 32 bytes".into());
        }
        if let Some(target) = self.redis_target()
            && let Err(error) = target.check()
        {
            // The URL itself is not repeated: it may hold a password.
            problems.push(format!("redis.url: cannot be used: {error}"));
        }
        if self.admin.port.is_some() {
            match &self.admin.token {
                Some(token) if token.expose().len() >= 32 => {}
                _ => {
                    problems.push("admin.token: required with admin.port, at least 32 bytes".into())
                }
            }
            if self.admin.host.parse::<IpAddr>().is_err() && self.admin.host != "localhost" {
                problems.push(format!(
                    "admin.host: not an IP address: {}",
                    self.admin.host
                ));
            }
        }
        if self.redis.key_prefix.contains(['{', '}']) {
            problems.push(
                "redis.key_prefix: may not hold { or } (the prefix goes inside each key's hash tag)"
                    .into(),
            );
        }
        for url in &self.webrtc.stun_urls {
            if !(url.starts_with("stun:") || url.starts_with("stuns:")) {
                problems.push(format!(
                    "webrtc.stun_urls: not a stun: or stuns: URL: {url}"
                ));
            }
        }
        for url in &self.webrtc.turn_urls {
            if !(url.starts_with("turn:") || url.starts_with("turns:")) {
                problems.push(format!(
                    "webrtc.turn_urls: not a turn: or turns: URL: {url}"
                ));
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            problems.push(format!(
                "log.format: must be text or json, not {}",
                self.log.format
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The Redis URL, or `None` for in-memory storage (unset or empty).
    pub fn redis_url(&self) -> Option<&str> {
        self.redis
            .url
            .as_ref()
            .map(Secret::expose)
            .filter(|url| !url.trim().is_empty())
    }

    /// The Redis deployment (URL and CA file), or `None` for in-memory storage.
    pub fn redis_target(&self) -> Option<chat_storage::redis::RedisTarget> {
        let target = chat_storage::redis::RedisTarget::new(self.redis_url()?);
        Some(match &self.redis.tls_ca_file {
            Some(path) => target.with_tls_ca_file(path),
            None => target,
        })
    }

    /// The bounds on uploaded files, as the stores keep them.
    pub fn file_limits(&self) -> chat_storage::FileLimits {
        chat_storage::FileLimits {
            max_room_bytes: self.files.max_room_bytes,
            max_memory_bytes: self.files.max_total_bytes,
        }
    }

    /// `session.ttl_secs` as a duration.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session.ttl_secs)
    }
}

/// A list whose blank entries are dropped: an empty environment variable (`CHAT__WEBRTC__STUN_URLS=`)
/// means an empty list, not a list of one empty string.
fn without_blanks<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let entries = Vec::<String>::deserialize(deserializer)?;
    entries
        .iter()
        .map(|entry| entry.trim())
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<T>()
                .map_err(|error| serde::de::Error::custom(format!("{entry}: {error}")))
        })
        .collect()
}

/// A secret that never prints: `Debug` shows `[redacted]`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

/// An IP network: an address with a prefix length (`10.0.0.0/8`, `::1/128`, or a bare
/// address meaning just that address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    address: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `address` or `address/prefix`.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (
                address.parse::<IpAddr>().ok()?,
                Some(prefix.parse::<u8>().ok()?),
            ),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { address, prefix })
    }

    /// Whether `candidate` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, candidate: IpAddr) -> bool {
        let candidate = match candidate {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(candidate, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, candidate) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| "not an IP address or CIDR block".to_owned())
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("not an IP address or CIDR block: {text}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(network: &str, address: &str, expected: bool) {
        let network = IpNet::parse(network);
        let address: Option<IpAddr> = address.parse().ok();
        assert_eq!(
            network
                .zip(address)
                .map(|(network, address)| network.contains(address)),
            Some(expected)
        );
    }

    #[test]
    fn networks_contain_addresses() {
        check("10.0.0.0/8", "10.1.2.3", true);
        check("10.0.0.0/8", "11.1.2.3", false);
        check("127.0.0.1", "127.0.0.1", true);
        check("127.0.0.1", "127.0.0.2", false);
        check("0.0.0.0/0", "8.8.8.8", true);
        check("::1", "::1", true);
        check("fd00::/8", "fd12::1", true);
        check("127.0.0.1", "::ffff:127.0.0.1", true);
        check("10.0.0.0/8", "::1", false);
        assert_eq!(IpNet::parse("10.0.0.0/33"), None);
        assert_eq!(IpNet::parse("nope"), None);
    }

    #[test]
    fn blank_list_entries_are_dropped() {
        let settings: Settings = serde_json::from_value(serde_json::json!({
            "server": {"trusted_proxies": ["", " 10.0.0.0/8 "]},
            "webrtc": {"stun_urls": [""], "turn_urls": ["turn:a:3478", " "]}
        }))
        .unwrap_or_default();
        assert_eq!(settings.webrtc.stun_urls, Vec::<String>::new());
        assert_eq!(settings.webrtc.turn_urls, vec!["turn:a:3478".to_owned()]);
        assert_eq!(
            settings.server.trusted_proxies,
            vec![IpNet::parse("10.0.0.0/8").unwrap_or_else(|| unreachable!())]
        );
        let bad: Result<Settings, _> =
            serde_json::from_value(serde_json::json!({"server": {"trusted_proxies": ["nope"]}}));
        assert!(bad.is_err());
    }

    #[test]
    fn defaults_are_valid_and_problems_name_their_keys() {
        assert_eq!(Settings::default().validate(), Ok(()));
        let mut settings = Settings::default();
        settings.session.ttl_secs = 0;
        settings.auth.jwt_secret = Some(Secret::new("short"));
        settings.redis.url = Some(Secret::new("http://nope"));
        let problems = settings.validate().err().unwrap_or_default();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("session.ttl_secs"));
        assert!(format!("{:?}", settings.auth).contains("[redacted]"));
    }

    #[test]
    fn upload_bounds_have_the_contract_defaults_and_fit_the_largest_upload() {
        let settings = Settings::default();
        assert_eq!(
            (
                settings.files.max_room_bytes,
                settings.files.max_total_bytes,
                settings.rate.uploads_per_minute
            ),
            (52_428_800, 536_870_912, 20)
        );
        let mut settings = Settings::default();
        settings.files.max_bytes = 1000;
        settings.files.max_room_bytes = 999;
        settings.files.max_total_bytes = 0;
        settings.rate.uploads_per_minute = 0;
        let problems = settings.validate().err().unwrap_or_default();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("rate.uploads_per_minute"),
            "{problems:?}"
        );
        assert!(
            problems[1]
                .starts_with("files.max_room_bytes: must be at least files.max_bytes (1000)")
        );
        assert!(problems[2].starts_with("files.max_total_bytes"));
        settings.files.max_room_bytes = 1000;
        settings.files.max_total_bytes = 1000;
        settings.rate.uploads_per_minute = 1;
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn the_node_timeout_is_at_least_a_second() {
        let mut settings = Settings::default();
        assert_eq!(settings.cluster.node_timeout_secs, 10);
        settings.cluster.node_timeout_secs = 0;
        let problems = settings.validate().err().unwrap_or_default();
        assert_eq!(
            problems,
            vec!["cluster.node_timeout_secs: must be greater than 0".to_owned()]
        );
    }

    #[test]
    fn malformed_redis_urls_are_named_without_their_password() {
        for url in [
            "redis://:hunter2@localhost:notaport",
            "redis://:hunter2@/0",
            "redis-sentinel://:hunter2@host:26379",
        ] {
            let mut settings = Settings::default();
            settings.redis.url = Some(Secret::new(url));
            let problems = settings.validate().err().unwrap_or_default();
            assert_eq!(problems.len(), 1, "{url}: {problems:?}");
            assert!(problems[0].starts_with("redis.url: "), "{problems:?}");
            assert!(!problems[0].contains("hunter2"), "{problems:?}");
        }
        let mut settings = Settings::default();
        settings.redis.url = Some(Secret::new("redis://127.0.0.1:6379/2"));
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn redis_options_that_cannot_be_honoured_stop_the_start() {
        let problems_with = |url: &str, ca: Option<&str>, prefix: &str| {
            let mut settings = Settings::default();
            settings.redis.url = Some(Secret::new(url));
            settings.redis.tls_ca_file = ca.map(Into::into);
            settings.redis.key_prefix = prefix.into();
            settings.validate().err().unwrap_or_default()
        };
        let plain_with_ca = problems_with("redis://h:1", Some("/etc/ca.pem"), "chat:");
        assert!(
            plain_with_ca[0].contains("does not use TLS"),
            "{plain_with_ca:?}"
        );
        let missing_ca = problems_with("rediss://h:1", Some("/nonexistent/ca.pem"), "chat:");
        assert!(
            missing_ca[0].contains("/nonexistent/ca.pem"),
            "{missing_ca:?}"
        );
        let no_service = problems_with("redis-sentinel://h:26379", None, "chat:");
        assert!(no_service[0].contains("?service=NAME"), "{no_service:?}");
        let braces = problems_with("redis-cluster://h:1,h:2", None, "a}b:");
        assert!(braces[0].starts_with("redis.key_prefix"), "{braces:?}");
        for url in [
            "rediss://h:6380",
            "redis-sentinel://h:26379,i:26379/?service=main",
            "redis-cluster://h:7000,i:7001",
        ] {
            assert_eq!(
                problems_with(url, None, "chat:"),
                Vec::<String>::new(),
                "{url}"
            );
        }
    }
}

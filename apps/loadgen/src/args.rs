//! Hand-parsed command line: `chat-loadgen SCENARIO [--key value]...`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};

use anyhow::{Context, bail};

/// The usage text.
pub const HELP: &str = "\
chat-loadgen: load generator for chat-server (REST + Socket.IO over WebSocket)

USAGE:
    chat-loadgen SCENARIO [OPTIONS]
    chat-loadgen report --out FILE [--machine FILE] [--notes FILE] RESULT.json...

SCENARIOS:
    connect    hold N idle authenticated sockets      --clients N --hold SECS
    relay      P pairs exchange chat:message with full receipts
                 fixed rate: --pairs P --rate MSG_PER_SEC --duration SECS
                 ramp:       --pairs P --ramp --start-rate R --step R --step-secs S
                             --max-rate R --p99-bound-ms MS
    match      N clients search at once, R rounds     --clients N --rounds R
                 --pair-filters: clients 2p, 2p+1 have a language and search with a
                 filter on it only they match (filtered matching); with several --url
                 every pair is then split across two nodes (old name --cross-node-pairs)
    sessions   POST /api/guest as fast as possible    --concurrency C --duration SECS
    broadcast  time for one realtime:stats to reach every socket
                                                      --clients N --rounds R
    churn      create, connect, match, chat, upload, leave, disconnect, delete in a loop
                                                      --concurrency C --duration SECS
                                                      --messages M --warmup SECS

COMMON OPTIONS:
    --url URL[,URL...]  server base URL [http://127.0.0.1:8080]; only 127.0.0.0/8. Several
                        (comma-separated or repeated): nodes of one service; client i uses
                        node i mod N (relay pairs and churn partners sit on different nodes)
    --server-pid PID[,PID...]   sample the servers' RSS and CPU from /proc/PID (summed)
    --sources K         spread client sockets over 127.0.0.1 .. 127.0.0.K [1]
    --procs M           worker processes sharing the load [1]
    --setup-concurrency C   guest creations / connects in flight per worker [64]
    --label TEXT        free label stored in the results (e.g. memory, redis)
    --json FILE         also write the results as JSON
    --redis HOST:PORT[,HOST:PORT...]   (match, relay) the Redis servers the service uses
                        (every master of a cluster; loopback only): INFO commandstats is
                        read around each round / step, for Redis commands per search or
                        per delivered message
";

const COMMON: &[&str] = &[
    "url",
    "server-pid",
    "sources",
    "procs",
    "setup-concurrency",
    "label",
    "json",
];

/// The scenarios and the options each accepts besides the common ones.
const SCENARIOS: &[(&str, &[&str])] = &[
    ("connect", &["clients", "hold"]),
    (
        "relay",
        &[
            "pairs",
            "rate",
            "duration",
            "ramp",
            "start-rate",
            "step",
            "step-secs",
            "max-rate",
            "p99-bound-ms",
            "message-bytes",
            "redis",
        ],
    ),
    (
        "match",
        &[
            "clients",
            "rounds",
            "pair-filters",
            "cross-node-pairs",
            "redis",
        ],
    ),
    ("sessions", &["concurrency", "duration"]),
    ("broadcast", &["clients", "rounds"]),
    ("churn", &["concurrency", "duration", "messages", "warmup"]),
];

/// Options that take no value.
const FLAGS: &[&str] = &["ramp", "pair-filters", "cross-node-pairs"];

/// Options that take a list: given several times, the values are joined with commas.
const LISTS: &[&str] = &["url", "server-pid", "redis"];

/// `--url` when none is given.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// A parsed command line of a scenario.
#[derive(Debug, Clone)]
pub struct Args {
    /// The scenario's name.
    pub scenario: String,
    /// `--key value` pairs (flags map to `"true"`).
    options: BTreeMap<String, String>,
    /// The arguments as given, forwarded to worker processes.
    pub raw: Vec<String>,
}

impl Args {
    /// Parses `SCENARIO [--key value]...`.
    pub fn parse(raw: &[String]) -> anyhow::Result<Self> {
        let Some(scenario) = raw.first() else {
            bail!("no scenario given")
        };
        let Some((_, allowed)) = SCENARIOS.iter().find(|(name, _)| name == scenario) else {
            bail!("unknown scenario {scenario}");
        };
        let mut options = BTreeMap::new();
        let mut index = 1;
        while let Some(argument) = raw.get(index) {
            let Some(key) = argument.strip_prefix("--") else {
                bail!("unexpected argument {argument}")
            };
            if !COMMON.contains(&key) && !allowed.contains(&key) {
                bail!("option --{key} does not apply to {scenario}");
            }
            if FLAGS.contains(&key) {
                options.insert(key.to_owned(), "true".to_owned());
            } else {
                let Some(value) = raw.get(index + 1) else {
                    bail!("--{key} needs a value")
                };
                match options.get_mut(key) {
                    Some(list) if LISTS.contains(&key) => {
                        list.push(',');
                        list.push_str(value);
                    }
                    _ => {
                        options.insert(key.to_owned(), value.clone());
                    }
                }
                index += 1;
            }
            index += 1;
        }
        Ok(Self {
            scenario: scenario.clone(),
            options,
            raw: raw.to_vec(),
        })
    }

    /// A string option.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// Whether a flag is set.
    pub fn flag(&self, key: &str) -> bool {
        self.options.contains_key(key)
    }

    /// A whole-number option, or its default.
    pub fn number(&self, key: &str, default: u64) -> anyhow::Result<u64> {
        match self.options.get(key) {
            None => Ok(default),
            Some(value) => value
                .replace('_', "")
                .parse()
                .with_context(|| format!("--{key} must be a whole number, not {value}")),
        }
    }

    /// A decimal option, or its default.
    pub fn decimal(&self, key: &str, default: f64) -> anyhow::Result<f64> {
        match self.options.get(key) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .with_context(|| format!("--{key} must be a number, not {value}")),
        }
    }

    /// The options as `(key, value)` pairs, for the results.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The servers' addresses from `--url` (one or more, comma-separated or repeated), in
    /// order; refuses anything outside 127.0.0.0/8.
    pub fn servers(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let list = self.text("url").unwrap_or(DEFAULT_URL);
        let servers = list
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(loopback_server)
            .collect::<anyhow::Result<Vec<_>>>()?;
        if servers.is_empty() {
            bail!("--url names no server");
        }
        Ok(servers)
    }

    /// The server processes to sample, from `--server-pid` (one or more); empty when none.
    pub fn server_pids(&self) -> anyhow::Result<Vec<u32>> {
        self.items("server-pid")
            .map(|pid| {
                pid.parse()
                    .with_context(|| format!("--server-pid must list process ids, not {pid}"))
            })
            .collect()
    }

    /// The Redis servers of `--redis` (`HOST:PORT`, one or more); empty when none. Refuses
    /// anything outside 127.0.0.0/8.
    pub fn redis_servers(&self) -> anyhow::Result<Vec<SocketAddr>> {
        self.items("redis")
            .map(|server| loopback(server.trim_start_matches("redis://").trim_end_matches('/')))
            .collect()
    }

    /// The non-empty comma-separated items of a list option (none when it is not given).
    fn items(&self, key: &str) -> impl Iterator<Item = &str> {
        self.text(key)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
    }

    /// `match --pair-filters` (or its old name `--cross-node-pairs`).
    pub fn pair_filters(&self) -> bool {
        self.flag("pair-filters") || self.flag("cross-node-pairs")
    }

    /// Worker processes.
    pub fn procs(&self) -> anyhow::Result<u64> {
        Ok(self.number("procs", 1)?.max(1))
    }

    /// The source address of client socket number `index`: 127.0.0.(1 + index % K).
    pub fn source(&self, index: u64) -> anyhow::Result<Option<Ipv4Addr>> {
        let sources = self.number("sources", 1)?.clamp(1, 254);
        if sources == 1 {
            return Ok(None);
        }
        let last = u8::try_from(1 + index % sources).unwrap_or(1);
        Ok(Some(Ipv4Addr::new(127, 0, 0, last)))
    }
}

/// The address of one `http://HOST:PORT` URL; refuses anything outside 127.0.0.0/8.
fn loopback_server(url: &str) -> anyhow::Result<SocketAddr> {
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("--url must start with http://, not {url}"))?;
    loopback(authority.trim_end_matches('/'))
}

/// The IPv4 address of `HOST:PORT`; refuses anything outside 127.0.0.0/8.
fn loopback(authority: &str) -> anyhow::Result<SocketAddr> {
    let address = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("{authority} has no IPv4 address"))?;
    if !address.ip().is_loopback() {
        bail!("refusing to load {address}: only loopback addresses (127.0.0.0/8) are allowed");
    }
    Ok(address)
}

/// The share of `total` items that worker `index` of `count` takes: a contiguous range.
pub fn share(total: u64, index: u64, count: u64) -> std::ops::Range<u64> {
    let start = total * index / count;
    let end = total * (index + 1) / count;
    start..end
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn parses_options_and_flags() {
        let args = Args::parse(&strings(&[
            "relay",
            "--pairs",
            "10",
            "--ramp",
            "--url",
            "http://127.0.0.1:9",
        ]))
        .unwrap();
        assert_eq!(args.number("pairs", 0).unwrap(), 10);
        assert!(args.flag("ramp"));
        assert_eq!(args.servers().unwrap()[0].port(), 9);
    }

    #[test]
    fn refuses_unknown_options_and_remote_hosts() {
        assert!(Args::parse(&strings(&["connect", "--pairs", "3"])).is_err());
        assert!(Args::parse(&strings(&["nothing"])).is_err());
        let args = Args::parse(&strings(&["connect", "--url", "http://10.0.0.1:80"])).unwrap();
        assert!(args.servers().is_err());
        // One remote node in a list is refused too.
        let args = Args::parse(&strings(&[
            "connect",
            "--url",
            "http://127.0.0.1:1,http://10.0.0.1:80",
        ]))
        .unwrap();
        assert!(args.servers().is_err());
    }

    fn ports(addresses: &[SocketAddr]) -> Vec<u16> {
        addresses.iter().map(SocketAddr::port).collect()
    }

    #[test]
    fn takes_several_servers_listed_or_repeated() {
        let args = Args::parse(&strings(&[
            "match",
            "--url",
            "http://127.0.0.1:1,http://127.0.0.2:2/",
            "--url",
            "http://127.0.0.3:3",
            "--server-pid",
            "10,11",
            "--server-pid",
            "12",
        ]))
        .unwrap();
        assert_eq!(ports(&args.servers().unwrap()), [1, 2, 3]);
        assert_eq!(args.server_pids().unwrap(), [10, 11, 12]);
        let single = Args::parse(&strings(&["match"])).unwrap();
        assert_eq!(single.servers().unwrap().len(), 1);
        assert!(single.server_pids().unwrap().is_empty());
        let bad = Args::parse(&strings(&["match", "--server-pid", "1,x"])).unwrap();
        assert!(bad.server_pids().is_err());
        assert!(single.redis_servers().unwrap().is_empty());
    }

    #[test]
    fn takes_redis_servers_on_loopback_only() {
        let args = Args::parse(&strings(&[
            "relay",
            "--redis",
            "127.0.0.1:7001,redis://127.0.0.1:7002/",
            "--redis",
            "127.0.0.1:7003",
        ]))
        .unwrap();
        assert_eq!(ports(&args.redis_servers().unwrap()), [7001, 7002, 7003]);
        let remote = Args::parse(&strings(&["match", "--redis", "10.0.0.1:6379"])).unwrap();
        assert!(remote.redis_servers().is_err());
        assert!(Args::parse(&strings(&["sessions", "--redis", "127.0.0.1:1"])).is_err());
        let filtered = Args::parse(&strings(&["match", "--cross-node-pairs"])).unwrap();
        assert!(filtered.pair_filters());
    }

    #[test]
    fn shares_cover_everything_once() {
        let ranges: Vec<_> = (0..3).map(|index| share(10, index, 3)).collect();
        assert_eq!(
            ranges
                .iter()
                .map(|range| range.end - range.start)
                .sum::<u64>(),
            10
        );
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[2].end, 10);
    }

    #[test]
    fn sources_cycle_over_loopback() {
        let args = Args::parse(&strings(&["connect", "--sources", "4"])).unwrap();
        assert_eq!(args.source(0).unwrap(), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(args.source(5).unwrap(), Some(Ipv4Addr::new(127, 0, 0, 2)));
    }
}

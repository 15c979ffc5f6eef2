//! Real Redis topologies on 127.0.0.1 for tests of TLS, Sentinel and Cluster clients.
//!
//! - [`TlsRedis`]: one `redis-server` that speaks TLS only, with a throwaway CA and server
//!   certificate made by `openssl` at run time.
//! - [`SentinelRedis`]: a primary, one replica and one Sentinel watching them as
//!   [`SENTINEL_SERVICE`], which fails over a second or two after
//!   [`kill_primary`](SentinelRedis::kill_primary).
//! - [`RedisClusterSet`]: a Redis Cluster of masters (no replicas) created by
//!   `redis-cli --cluster create`, ready once every node says `cluster_state:ok` and all agree
//!   on who serves each of the 16384 slots.
//!
//! Every server runs under the guard of [`crate::redis`], so it dies with the test process
//! however that ends, and each topology keeps its files (certificates, configuration, logs) in
//! a temporary directory removed on drop. The `require_…` functions skip a test (with a notice)
//! where the tools are missing, but fail it under `CI=true`.
//!
//! # Example
//!
//! ```
//! let Some(cluster) = chat_testkit::require_redis_cluster(3) else { return };
//! assert!(cluster.url().starts_with("redis-cluster://127.0.0.1:"));
//! let port = cluster.node_for_key("room:1").expect("a slot owner");
//! assert_eq!(cluster.dbsize(port).expect("DBSIZE"), 0);
//! ```

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::process::{
    Guarded, TempDir, free_cluster_ports, free_port, free_ports, in_ci, on_path, poll, run,
};
use crate::redis::{server_arguments, start_redis};
use crate::resp::{self, Reply, info_field};

/// The name under which the Sentinel of [`SentinelRedis`] monitors its primary.
pub const SENTINEL_SERVICE: &str = "mymaster";

/// The number of hash slots of a Redis Cluster.
pub const CLUSTER_SLOTS: u32 = 16384;

/// The tools the topologies need; CI must have all of them.
const TOOLS: [&str; 3] = ["redis-server", "redis-cli", "openssl"];

/// How many times a topology is started afresh when a port was taken under it.
const START_ATTEMPTS: usize = 5;

/// How often a topology's state is polled while it settles.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// How long a topology may take to settle once its processes answer.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one command to one server may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `openssl` or `redis-cli` may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `redis-server`, `redis-cli` and `openssl` are all on `PATH`.
pub fn topology_tools_available() -> bool {
    TOOLS.iter().all(|tool| on_path(tool))
}

/// A started [`TlsRedis`], or `None` (with a notice on stderr) when `redis-server`,
/// `redis-cli` or `openssl` is not installed.
///
/// # Panics
///
/// When `CI=true` and any of `redis-server`, `redis-cli`, `openssl` is missing, and whenever
/// the installed tools fail to start the server (e.g. a `redis-server` built without TLS).
pub fn require_tls_redis() -> Option<TlsRedis> {
    require(&TOOLS, "a TLS Redis", TlsRedis::start)
}

/// A started [`SentinelRedis`], or `None` (with a notice on stderr) when `redis-server` is not
/// installed.
///
/// # Panics
///
/// When `CI=true` and any of `redis-server`, `redis-cli`, `openssl` is missing, and whenever
/// the installed `redis-server` fails to start the primary, replica or Sentinel.
pub fn require_sentinel_redis() -> Option<SentinelRedis> {
    require(&["redis-server"], "Redis Sentinel", SentinelRedis::start)
}

/// A started [`RedisClusterSet`] of `masters` masters, or `None` (with a notice on stderr) when
/// `redis-server` or `redis-cli` is not installed.
///
/// # Panics
///
/// When `CI=true` and any of `redis-server`, `redis-cli`, `openssl` is missing, and whenever
/// the installed tools fail to start the cluster (including `masters < 3`).
pub fn require_redis_cluster(masters: usize) -> Option<RedisClusterSet> {
    require(&["redis-server", "redis-cli"], "a Redis Cluster", || {
        RedisClusterSet::start(masters)
    })
}

fn require<T>(needed: &[&str], what: &str, start: impl FnOnce() -> io::Result<T>) -> Option<T> {
    if in_ci() {
        let missing: Vec<&str> = TOOLS.into_iter().filter(|tool| !on_path(tool)).collect();
        assert!(
            missing.is_empty(),
            "{} not on PATH, and CI=true: the Redis topology tests must run in CI",
            missing.join(", ")
        );
    }
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|tool| !on_path(tool))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "notice: {} not on PATH; skipping a test that needs {what}",
            missing.join(", ")
        );
        return None;
    }
    match start() {
        Ok(topology) => Some(topology),
        Err(error) => panic!("the tools for {what} are installed but it did not start: {error}"),
    }
}

/// Runs `attempt` again (up to 5 times in all) while it fails because a port it picked was
/// taken meanwhile by another process.
fn retrying<T>(mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && tries < START_ATTEMPTS => {
                tries += 1;
            }
            result => return result,
        }
    }
}

/// Starts a plain `redis-server` on `port` with its data in `<directory>/<name>`, its log in
/// `<directory>/<name>.log` and `extra` options, and waits until it answers `PING`.
fn start_node(directory: &Path, name: &str, port: u16, extra: &[&str]) -> io::Result<Guarded> {
    let data = directory.join(name);
    std::fs::create_dir_all(&data)?;
    let log = directory.join(format!("{name}.log"));
    let mut arguments = server_arguments(port, &data, &log.display().to_string());
    arguments.extend(extra.iter().map(|&argument| argument.to_owned()));
    start_redis(&arguments, Some(&log), || {
        resp::ping(port, Duration::from_millis(200))
    })
    .map_err(|error| io::Error::new(error.kind(), format!("{name} on port {port}: {error}")))
}

/// Sends one command to `127.0.0.1:<port>` and returns its reply as text.
fn command_text<S: AsRef<str>>(port: u16, arguments: &[S]) -> io::Result<String> {
    resp::call(port, arguments, COMMAND_TIMEOUT)?.into_text()
}

/// A `redis-server` that accepts TLS only, on a random port of 127.0.0.1 (`--port 0`, so no
/// plain-text listener at all), with certificates made for this one server.
///
/// The server certificate is for `IP:127.0.0.1` and `DNS:localhost`, signed by a throwaway CA
/// ([`ca_file`](Self::ca_file)) that a client must trust; clients need no certificate of their
/// own (`--tls-auth-clients no`). Dropping it kills the server and removes the certificates.
#[derive(Debug)]
pub struct TlsRedis {
    port: u16,
    ca_file: PathBuf,
    _process: Guarded,
    _directory: TempDir,
}

impl TlsRedis {
    /// Makes a CA and a server certificate with `openssl`, starts the server on a free port and
    /// waits until `redis-cli --tls` gets `PONG` from it (in about 0.1 s).
    pub fn start() -> io::Result<Self> {
        retrying(Self::try_start)
    }

    fn try_start() -> io::Result<Self> {
        let directory = TempDir::new("tls")?;
        let files = make_certificates(directory.path())?;
        let port = free_port()?;
        let log = directory.path().join("redis.log");
        let mut arguments = server_arguments(0, directory.path(), &log.display().to_string());
        let tls_port = port.to_string();
        let tls = [
            ("--tls-port", tls_port.as_str()),
            ("--tls-cert-file", &files.cert.display().to_string()),
            ("--tls-key-file", &files.key.display().to_string()),
            ("--tls-ca-cert-file", &files.ca.display().to_string()),
            ("--tls-auth-clients", "no"),
        ]
        .map(|(flag, value)| [flag.to_owned(), value.to_owned()]);
        arguments.extend(tls.into_iter().flatten());
        let process = start_redis(&arguments, Some(&log), || tls_ping(&files.ca, port).is_ok())
            .map_err(|error| io::Error::new(error.kind(), format!("TLS port {port}: {error}")))?;
        Ok(Self {
            port,
            ca_file: files.ca,
            _process: process,
            _directory: directory,
        })
    }

    /// `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`: the same port without TLS, which must not connect (for tests
    /// proving that a client does not fall back to plain text).
    pub fn plain_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `PING` over TLS with `redis-cli`, trusting `ca`.
fn tls_ping(ca: &Path, port: u16) -> io::Result<()> {
    let port = port.to_string();
    let mut cli = Command::new("redis-cli");
    cli.arg("--tls")
        .arg("--cacert")
        .arg(ca)
        .args(["-h", "127.0.0.1", "-p", port.as_str(), "PING"]);
    let reply = run(&mut cli, TOOL_TIMEOUT)?;
    if reply.trim() == "PONG" {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "PING answered {:?}",
            reply.trim()
        )))
    }
}

/// The files [`make_certificates`] writes.
struct CertificateFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// The `openssl` configuration: the extensions of the CA and of the server certificate.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = chat-testkit

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Writes a CA (`ca.crt`) and a server key and certificate it signed (`server.key`,
/// `server.crt`), all P-256 and valid for a week, into `directory`.
fn make_certificates(directory: &Path) -> io::Result<CertificateFiles> {
    let config = directory.join("openssl.cnf");
    std::fs::write(&config, OPENSSL_CONFIG)?;
    let file = |name: &str| directory.join(name);
    let (ca, ca_key) = (file("ca.crt"), file("ca.key"));
    let (cert, key, request) = (file("server.crt"), file("server.key"), file("server.csr"));
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut make_ca = Command::new("openssl");
    make_ca
        .args(["req", "-x509", "-config"])
        .arg(&config)
        .args([
            "-extensions",
            "ca_ext",
            "-days",
            "7",
            "-subj",
            "/CN=chat-testkit CA",
        ])
        .args(new_key)
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca);
    run(&mut make_ca, TOOL_TIMEOUT)?;
    let mut make_request = Command::new("openssl");
    make_request
        .args(["req", "-new", "-config"])
        .arg(&config)
        .args(["-subj", "/CN=localhost"])
        .args(new_key)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&request);
    run(&mut make_request, TOOL_TIMEOUT)?;
    let serial = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(1);
    let mut sign = Command::new("openssl");
    sign.args(["x509", "-req", "-in"])
        .arg(&request)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .args(["-set_serial", &serial.to_string(), "-days", "7"])
        .arg("-extfile")
        .arg(&config)
        .args(["-extensions", "server_ext", "-out"])
        .arg(&cert);
    run(&mut sign, TOOL_TIMEOUT)?;
    Ok(CertificateFiles { ca, cert, key })
}

/// A primary, one replica of it and one Sentinel monitoring it as [`SENTINEL_SERVICE`] (quorum
/// 1, `down-after-milliseconds 1000`, `failover-timeout 5000`), each on a random port of
/// 127.0.0.1.
///
/// Once [`start`](Self::start) returns, the replica is in sync and the Sentinel knows both, so
/// [`kill_primary`](Self::kill_primary) is followed by a failover to the replica, which
/// [`wait_for_failover`](Self::wait_for_failover) waits for. Dropping it kills all three and
/// removes their directory.
#[derive(Debug)]
pub struct SentinelRedis {
    primary_port: u16,
    replica_port: u16,
    sentinel_port: u16,
    // The Sentinel dies first, so it does not react to the others going.
    _sentinel: Guarded,
    _replica: Guarded,
    primary: Option<Guarded>,
    directory: TempDir,
}

impl SentinelRedis {
    /// Starts the primary, then the replica, waits until the replica reports
    /// `master_link_status:up`, then starts the Sentinel and waits until it sees the primary up
    /// with the replica in sync (about 0.1–0.3 s in all).
    pub fn start() -> io::Result<Self> {
        retrying(Self::try_start)
    }

    fn try_start() -> io::Result<Self> {
        let directory = TempDir::new("sentinel")?;
        let ports = free_ports(3)?;
        let &[primary_port, replica_port, sentinel_port] = ports.as_slice() else {
            return Err(io::Error::other("free_ports(3) returned another count"));
        };
        // A primary waits 5 s by default before a diskless sync, in case more replicas come.
        let no_sync_delay = ["--repl-diskless-sync-delay", "0"];
        let primary = start_node(directory.path(), "primary", primary_port, &no_sync_delay)?;
        let primary_text = primary_port.to_string();
        let replica_options = [
            &no_sync_delay[..],
            &["--replicaof", "127.0.0.1", &primary_text],
        ];
        let replica = start_node(
            directory.path(),
            "replica",
            replica_port,
            &replica_options.concat(),
        )?;
        poll(
            "the replica's link to the primary",
            SETTLE_TIMEOUT,
            POLL_EVERY,
            || {
                let info = command_text(replica_port, &["INFO", "replication"]);
                Ok(
                    match info
                        .as_deref()
                        .map(|info| info_field(info, "master_link_status"))
                    {
                        Ok(Some("up")) => Ok(()),
                        other => Err(format!("master_link_status: {other:?}")),
                    },
                )
            },
        )?;
        let sentinel = start_sentinel(directory.path(), sentinel_port, primary_port)?;
        let sentinel_redis = Self {
            primary_port,
            replica_port,
            sentinel_port,
            _sentinel: sentinel,
            _replica: replica,
            primary: Some(primary),
            directory,
        };
        poll(
            "the Sentinel seeing the primary and its replica",
            SETTLE_TIMEOUT,
            POLL_EVERY,
            || Ok(sentinel_redis.sentinel_ready()),
        )?;
        Ok(sentinel_redis)
    }

    /// Whether the Sentinel sees the primary up and the replica up and in sync, or why not.
    fn sentinel_ready(&self) -> Result<(), String> {
        let ask = |subcommand: &str| {
            resp::call(
                self.sentinel_port,
                &["SENTINEL", subcommand, SENTINEL_SERVICE],
                COMMAND_TIMEOUT,
            )
            .and_then(Reply::into_elements)
            .map_err(|error| format!("SENTINEL {subcommand}: {error}"))
        };
        let primary = fields(ask("MASTER")?);
        if primary.get("flags").map(String::as_str) != Some("master") {
            return Err(format!("primary flags {:?}", primary.get("flags")));
        }
        let replica_port = self.replica_port.to_string();
        let replicas: Vec<HashMap<String, String>> = ask("REPLICAS")?
            .into_iter()
            .map(|replica| fields(replica.into_elements().unwrap_or_default()))
            .collect();
        let in_sync = replicas.iter().any(|replica| {
            replica.get("port") == Some(&replica_port)
                && replica.get("flags").map(String::as_str) == Some("slave")
                && replica.get("master-link-status").map(String::as_str) == Some("ok")
        });
        if in_sync {
            Ok(())
        } else {
            Err(format!("replicas as the Sentinel sees them: {replicas:?}"))
        }
    }

    /// `redis-sentinel://127.0.0.1:<sentinel port>/?service=mymaster`.
    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}/?service={SENTINEL_SERVICE}",
            self.sentinel_port
        )
    }

    /// The port the primary was started on (the server [`kill_primary`](Self::kill_primary)
    /// kills; it stays the same after a failover).
    pub fn primary_port(&self) -> u16 {
        self.primary_port
    }

    /// The port of the replica (the primary after a failover).
    pub fn replica_port(&self) -> u16 {
        self.replica_port
    }

    /// The port of the Sentinel.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinel_port
    }

    /// The port the Sentinel names as the primary right now
    /// (`SENTINEL get-master-addr-by-name mymaster`).
    pub fn current_primary_port(&self) -> io::Result<u16> {
        let address = resp::call(
            self.sentinel_port,
            &["SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE],
            COMMAND_TIMEOUT,
        )?
        .into_elements()?;
        address
            .get(1)
            .and_then(Reply::as_text)
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| io::Error::other(format!("the Sentinel answered {address:?}")))
    }

    /// Kills the primary with `SIGKILL` and waits until its process is gone. Does nothing the
    /// second time.
    pub fn kill_primary(&mut self) {
        drop(self.primary.take());
    }

    /// Polls the Sentinel every 50 ms until it names the former replica as the primary, and
    /// returns that port; fails with [`io::ErrorKind::TimedOut`] after `timeout`. After
    /// [`kill_primary`](Self::kill_primary) this takes about 2–3 s (1 s until the primary is
    /// deemed down, up to 1 s of Sentinel's random delay, then the promotion).
    pub fn wait_for_failover(&self, timeout: Duration) -> io::Result<u16> {
        poll("the failover to the replica", timeout, POLL_EVERY, || {
            Ok(match self.current_primary_port() {
                Ok(port) if port == self.replica_port => Ok(port),
                Ok(port) => Err(format!("the Sentinel still names port {port}")),
                Err(error) => Err(error.to_string()),
            })
        })
        .map_err(|error| {
            let log = crate::process::log_tail(&self.directory.path().join("sentinel.log"));
            io::Error::new(error.kind(), format!("{error}; Sentinel log: {log}"))
        })
    }

    /// Sends one command to `127.0.0.1:<port>` (the primary, the replica or the Sentinel) and
    /// returns the reply as text, as [`RedisClusterSet::command`] does.
    pub fn command<S: AsRef<str>>(&self, port: u16, arguments: &[S]) -> io::Result<String> {
        command_text(port, arguments)
    }
}

/// Writes `sentinel.conf` and starts `redis-server sentinel.conf --sentinel` on `port`,
/// monitoring the primary on `primary_port`.
fn start_sentinel(directory: &Path, port: u16, primary_port: u16) -> io::Result<Guarded> {
    let config = directory.join("sentinel.conf");
    let log = directory.join("sentinel.log");
    let text = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir \"{directory}\"\n\
         logfile \"{log}\"\n\
         sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} 1\n\
         sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
         sentinel failover-timeout {SENTINEL_SERVICE} 5000\n",
        directory = directory.display(),
        log = log.display(),
    );
    std::fs::write(&config, text)?;
    let arguments = [config.display().to_string(), "--sentinel".to_owned()];
    start_redis(&arguments, Some(&log), || {
        resp::ping(port, Duration::from_millis(200))
    })
    .map_err(|error| io::Error::new(error.kind(), format!("Sentinel on port {port}: {error}")))
}

/// The name → value pairs of a flat array reply (`SENTINEL MASTER`).
fn fields(elements: Vec<Reply>) -> HashMap<String, String> {
    let texts: Vec<String> = elements
        .iter()
        .map(|element| element.as_text().unwrap_or_default())
        .collect();
    texts
        .chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// One range of slots and the port of the master that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SlotRange {
    first: u32,
    last: u32,
    port: u16,
}

/// A Redis Cluster of masters without replicas, each on a random port `p` of 127.0.0.1 (its
/// cluster bus on `p + 10000`), with `--cluster-node-timeout 2000` and no persistence.
///
/// Once [`start`](Self::start) returns, every node is in `cluster_state:ok` and all agree on
/// which master serves each of the 16384 slots. Dropping it kills the nodes and removes their
/// directory (with the `nodes-<p>.conf` files).
#[derive(Debug)]
pub struct RedisClusterSet {
    ports: Vec<u16>,
    _nodes: Vec<Guarded>,
    _directory: TempDir,
}

impl RedisClusterSet {
    /// Starts `masters` cluster-enabled servers, joins them with
    /// `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes` (which splits the
    /// slots evenly), and waits until the cluster is ok on every node (about 2 s: a master
    /// does not turn ok in its first 2 s, and `redis-cli` waits in 1 s steps).
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] when `masters < 3`, which `redis-cli` refuses.
    pub fn start(masters: usize) -> io::Result<Self> {
        if masters < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a Redis Cluster needs at least 3 masters, not {masters}"),
            ));
        }
        retrying(|| Self::try_start(masters))
    }

    fn try_start(masters: usize) -> io::Result<Self> {
        let directory = TempDir::new("cluster")?;
        let ports = free_cluster_ports(masters)?;
        let mut nodes = Vec::with_capacity(masters);
        for &port in &ports {
            let config = directory.path().join(format!("nodes-{port}.conf"));
            let config = config.display().to_string();
            let options = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config,
                "--cluster-node-timeout",
                "2000",
            ];
            let name = format!("node-{port}");
            nodes.push(start_node(directory.path(), &name, port, &options)?);
        }
        let mut create = Command::new("redis-cli");
        create
            .args(["--cluster", "create"])
            .args(ports.iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"]);
        run(&mut create, TOOL_TIMEOUT)?;
        let cluster = Self {
            ports,
            _nodes: nodes,
            _directory: directory,
        };
        poll(
            "every node in cluster_state:ok and agreeing on the slots",
            SETTLE_TIMEOUT,
            POLL_EVERY,
            || Ok(cluster.agreed_slots()),
        )?;
        Ok(cluster)
    }

    /// The slot map all nodes agree on, covering every slot, or why there is none yet.
    fn agreed_slots(&self) -> Result<Vec<SlotRange>, String> {
        let masters = self.ports.len().to_string();
        let slots = CLUSTER_SLOTS.to_string();
        let expected = [
            ("cluster_state", "ok"),
            ("cluster_slots_assigned", slots.as_str()),
            ("cluster_slots_ok", slots.as_str()),
            ("cluster_known_nodes", masters.as_str()),
            ("cluster_size", masters.as_str()),
        ];
        let mut agreed: Option<Vec<SlotRange>> = None;
        for &port in &self.ports {
            let info = command_text(port, &["CLUSTER", "INFO"])
                .map_err(|error| format!("port {port}: CLUSTER INFO: {error}"))?;
            for (field, value) in expected {
                let actual = info_field(&info, field);
                if actual != Some(value) {
                    return Err(format!("port {port}: {field} is {actual:?}"));
                }
            }
            let map = slot_map(port).map_err(|error| format!("port {port}: {error}"))?;
            match &agreed {
                Some(first) if *first != map => {
                    return Err(format!("port {port} sees other slot owners"));
                }
                Some(_) => {}
                None => agreed = Some(map),
            }
        }
        let map = agreed.unwrap_or_default();
        let mut next = 0;
        for range in &map {
            if range.first != next {
                return Err(format!("slot {next} is not covered"));
            }
            next = range.last + 1;
        }
        if next == CLUSTER_SLOTS {
            Ok(map)
        } else {
            Err(format!("slot {next} is not covered"))
        }
    }

    /// `redis-cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…`, every master.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// The masters' ports, in the order they were started.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The number of keys the master on `port` holds (`DBSIZE`).
    pub fn dbsize(&self, port: u16) -> io::Result<u64> {
        match resp::call(port, &["DBSIZE"], COMMAND_TIMEOUT)? {
            Reply::Integer(count) => u64::try_from(count).map_err(io::Error::other),
            Reply::Error(message) => Err(io::Error::other(message)),
            other => Err(io::Error::other(format!("DBSIZE answered {other:?}"))),
        }
    }

    /// The port of the master that serves `key`'s slot (`CLUSTER KEYSLOT`, then
    /// `CLUSTER SLOTS`).
    pub fn node_for_key(&self, key: &str) -> io::Result<u16> {
        let port = self
            .ports
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("a cluster without nodes"))?;
        let slot: u32 = command_text(port, &["CLUSTER", "KEYSLOT", key])?
            .parse()
            .map_err(io::Error::other)?;
        slot_map(port)?
            .into_iter()
            .find(|range| (range.first..=range.last).contains(&slot))
            .map(|range| range.port)
            .ok_or_else(|| io::Error::other(format!("nobody serves slot {slot}")))
    }

    /// Sends one command to the node on `port` over a tiny RESP client and returns the reply
    /// as text: a string as it is, an integer in decimal, nil as `""`, an array as its
    /// elements one a line (nested arrays flattened), like `redis-cli` prints them. An error
    /// reply (`MOVED …` too: the command goes to that node only) is an [`io::Error`] with its
    /// message. For `PUBSUB CHANNELS`, `PUBSUB SHARDCHANNELS`, `CLUSTER KEYSLOT`,
    /// `INFO commandstats` and the like.
    pub fn command<S: AsRef<str>>(&self, port: u16, arguments: &[S]) -> io::Result<String> {
        command_text(port, arguments)
    }
}

/// `CLUSTER SLOTS` of the node on `port`, as ranges sorted by their first slot.
fn slot_map(port: u16) -> io::Result<Vec<SlotRange>> {
    let ranges = resp::call(port, &["CLUSTER", "SLOTS"], COMMAND_TIMEOUT)?.into_elements()?;
    let mut map = Vec::with_capacity(ranges.len());
    for range in ranges {
        let elements = range.into_elements()?;
        let number = |index: usize| {
            elements
                .get(index)
                .and_then(Reply::as_text)
                .and_then(|text| text.parse::<u32>().ok())
        };
        let master_port = elements
            .get(2)
            .cloned()
            .map(Reply::into_elements)
            .transpose()?
            .and_then(|master| master.get(1).and_then(Reply::as_text))
            .and_then(|text| text.parse::<u16>().ok());
        match (number(0), number(1), master_port) {
            (Some(first), Some(last), Some(port)) => map.push(SlotRange { first, last, port }),
            _ => {
                return Err(io::Error::other(format!(
                    "a bad CLUSTER SLOTS entry: {elements:?}"
                )));
            }
        }
    }
    map.sort_unstable();
    Ok(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Instant;

    #[test]
    fn tls_redis_speaks_tls_only_with_a_certificate_for_127_0_0_1() {
        let started = Instant::now();
        let Some(redis) = require_tls_redis() else {
            return;
        };
        eprintln!("TLS Redis started in {:?}", started.elapsed());
        let port = redis.port();
        assert_eq!(redis.url(), format!("rediss://127.0.0.1:{port}"));
        assert_eq!(redis.plain_url(), format!("redis://127.0.0.1:{port}"));
        assert!(tls_ping(redis.ca_file(), port).is_ok());
        assert!(
            !resp::ping(port, Duration::from_millis(500)),
            "plain text must not get an answer"
        );
        // The certificate verifies against the CA for the IP and for the name.
        let mut client = Command::new("openssl");
        client
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .arg("-CAfile")
            .arg(redis.ca_file())
            .args([
                "-verify_ip",
                "127.0.0.1",
                "-verify_hostname",
                "localhost",
                "-verify_return_error",
                "-brief",
            ]);
        run(&mut client, Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn sentinel_fails_over_to_the_replica_after_kill_primary() {
        let started = Instant::now();
        let Some(mut sentinel) = require_sentinel_redis() else {
            return;
        };
        eprintln!("Sentinel topology started in {:?}", started.elapsed());
        let (primary, replica) = (sentinel.primary_port(), sentinel.replica_port());
        assert_eq!(
            sentinel.url(),
            format!(
                "redis-sentinel://127.0.0.1:{}/?service=mymaster",
                sentinel.sentinel_port()
            )
        );
        assert_eq!(sentinel.current_primary_port().unwrap(), primary);
        assert_eq!(sentinel.command(primary, &["SET", "k", "v"]).unwrap(), "OK");
        poll("replication", Duration::from_secs(5), POLL_EVERY, || {
            let value = sentinel.command(replica, &["GET", "k"])?;
            Ok(if value == "v" { Ok(()) } else { Err(value) })
        })
        .unwrap();

        let killed = Instant::now();
        sentinel.kill_primary();
        assert!(!resp::ping(primary, Duration::from_millis(200)));
        let new_primary = sentinel.wait_for_failover(Duration::from_secs(20)).unwrap();
        eprintln!("Sentinel failed over in {:?}", killed.elapsed());
        assert_eq!(new_primary, replica);
        assert_eq!(sentinel.primary_port(), primary);
        let role = sentinel.command(replica, &["ROLE"]).unwrap();
        assert!(role.starts_with("master"), "{role}");
        assert_eq!(sentinel.command(replica, &["GET", "k"]).unwrap(), "v");
        assert_eq!(sentinel.command(replica, &["SET", "k", "w"]).unwrap(), "OK");
    }

    #[test]
    fn dropping_a_topology_kills_its_servers_and_removes_its_directory() {
        let Some(sentinel) = require_sentinel_redis() else {
            return;
        };
        let ports = [
            sentinel.primary_port(),
            sentinel.replica_port(),
            sentinel.sentinel_port(),
        ];
        let directory = sentinel.directory.path().to_owned();
        assert!(directory.join("sentinel.conf").is_file());
        drop(sentinel);
        for port in ports {
            assert!(!resp::ping(port, Duration::from_millis(200)), "port {port}");
        }
        assert!(!directory.exists());
    }

    #[test]
    fn cluster_serves_all_16384_slots_on_every_master() {
        let started = Instant::now();
        let Some(cluster) = require_redis_cluster(3) else {
            return;
        };
        eprintln!("Redis Cluster started in {:?}", started.elapsed());
        let ports = cluster.ports().to_vec();
        assert_eq!(ports.len(), 3);
        let nodes: Vec<String> = ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        assert_eq!(
            cluster.url(),
            format!("redis-cluster://{}", nodes.join(","))
        );
        for &port in &ports {
            let info = cluster.command(port, &["CLUSTER", "INFO"]).unwrap();
            assert_eq!(info_field(&info, "cluster_state"), Some("ok"));
            assert_eq!(info_field(&info, "cluster_slots_ok"), Some("16384"));
        }
        let map = slot_map(ports[0]).unwrap();
        let covered: u32 = map.iter().map(|range| range.last - range.first + 1).sum();
        assert_eq!(covered, CLUSTER_SLOTS);
        let mut owners: Vec<u16> = map.iter().map(|range| range.port).collect();
        owners.sort_unstable();
        owners.dedup();
        assert_eq!(owners, {
            let mut sorted = ports.clone();
            sorted.sort_unstable();
            sorted
        });

        // Keys land on the master of their slot, and only there.
        for index in 0..30 {
            let key = format!("key:{index}");
            let port = cluster.node_for_key(&key).unwrap();
            assert_eq!(
                cluster.command(port, &["SET", key.as_str(), "1"]).unwrap(),
                "OK"
            );
        }
        let total: u64 = ports
            .iter()
            .map(|&port| cluster.dbsize(port).unwrap())
            .sum();
        assert_eq!(total, 30);
        let elsewhere = ports
            .iter()
            .find(|&&port| port != cluster.node_for_key("key:0").unwrap())
            .copied()
            .unwrap();
        let moved = cluster.command(elsewhere, &["GET", "key:0"]).unwrap_err();
        assert!(moved.to_string().starts_with("MOVED "), "{moved}");
        assert_eq!(
            cluster
                .command(ports[0], &["CLUSTER", "KEYSLOT", "foo"])
                .unwrap(),
            "12182"
        );
        assert_eq!(
            cluster
                .command(ports[0], &["PUBSUB", "SHARDCHANNELS"])
                .unwrap(),
            ""
        );
        let stats = cluster
            .command(ports[0], &["INFO", "commandstats"])
            .unwrap();
        assert!(stats.contains("cmdstat_cluster"), "{stats}");
    }

    #[test]
    fn a_cluster_needs_three_masters() {
        let error = RedisClusterSet::start(2).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}

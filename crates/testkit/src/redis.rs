//! A private `redis-server` for tests: random port, no persistence, killed with the test.
//!
//! The server runs under a tiny `sh` guard whose standard input is a pipe held by this process:
//! when the pipe closes (on [`RedisServer::kill`], on drop, or when the test process dies in any
//! way, even by `SIGKILL`), the guard sends `SIGKILL` to `redis-server` and waits for it. So no
//! server outlives its test binary, and a killed server has really stopped once `kill` returns.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer `PING` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many fresh ports [`RedisServer::start`] tries before giving up (another process may grab
/// the port between our probe and the server's bind).
const START_ATTEMPTS: usize = 5;

/// Kills `redis-server` when our end of its standard input closes.
const GUARD_SCRIPT: &str =
    r#"redis-server "$@" & pid=$!; read _ignored; kill -9 "$pid" 2>/dev/null; wait "$pid""#;

/// Whether `redis-server` is on `PATH` (looked up once per process).
pub fn redis_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let Some(path) = std::env::var_os("PATH") else {
            return false;
        };
        std::env::split_paths(&path).any(|directory| directory.join("redis-server").is_file())
    })
}

/// A started server for a test that needs one, or `None` (with a notice on stderr) when
/// `redis-server` is not installed, so the test can skip itself.
///
/// # Panics
///
/// When `CI=true` and `redis-server` is missing (CI must never skip these tests silently), and
/// whenever an installed `redis-server` fails to start.
pub fn require_redis() -> Option<RedisServer> {
    if !redis_available() {
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!("redis-server is not on PATH, and CI=true: Redis tests must run in CI");
        }
        eprintln!("notice: redis-server is not on PATH; skipping a test that needs Redis");
        return None;
    }
    match RedisServer::start() {
        Ok(server) => Some(server),
        Err(error) => panic!("redis-server is installed but did not start: {error}"),
    }
}

/// A `redis-server` child process listening on 127.0.0.1 at a random port.
///
/// It saves nothing (`--save ""`, `--appendonly no`), so a [`restart`](Self::restart) comes back
/// empty. Dropping it kills the process and removes its working directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    directory: PathBuf,
    process: Option<Guarded>,
}

/// The guard shell and the pipe that keeps its `redis-server` alive.
#[derive(Debug)]
struct Guarded {
    guard: Child,
    lifeline: ChildStdin,
}

impl RedisServer {
    /// Spawns a server on a free port and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        let mut last_error = io::Error::other("no attempt made");
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let directory = private_directory(port)?;
            let mut server = Self {
                port,
                directory,
                process: None,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port the server listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server answers `PING` right now.
    pub fn is_up(&self) -> bool {
        ping(self.port, Duration::from_millis(500))
    }

    /// Kills the server with `SIGKILL` and waits until the process is gone. Does nothing if it
    /// is not running.
    pub fn kill(&mut self) {
        if let Some(Guarded {
            mut guard,
            lifeline,
        }) = self.process.take()
        {
            // Closing the pipe makes the guard kill redis-server and wait for it.
            drop(lifeline);
            if guard.wait().is_err() {
                let _ = guard.kill();
            }
        }
    }

    /// Kills the server if it runs, then starts a new one on the same port (with no data) and
    /// waits until it answers `PING`.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(GUARD_SCRIPT)
            .arg("chat-testkit-redis")
            .args(server_arguments(self.port, &self.directory))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let lifeline = guard
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin pipe to the guard"))?;
        self.process = Some(Guarded { guard, lifeline });
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if ping(self.port, Duration::from_millis(200)) {
                return Ok(());
            }
            if let Some(Guarded { guard, .. }) = self.process.as_mut()
                && let Ok(Some(status)) = guard.try_wait()
            {
                self.process = None;
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited: {status}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("redis-server on port {} did not answer PING", self.port),
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

fn server_arguments(port: u16, directory: &Path) -> Vec<String> {
    let port = port.to_string();
    let directory = directory.display().to_string();
    let pairs: [(&str, &str); 10] = [
        ("--port", &port),
        ("--bind", "127.0.0.1"),
        ("--protected-mode", "yes"),
        ("--save", ""),
        ("--appendonly", "no"),
        ("--daemonize", "no"),
        ("--dir", &directory),
        ("--loglevel", "warning"),
        ("--logfile", ""),
        ("--databases", "1"),
    ];
    pairs
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()])
        .collect()
}

/// A port nobody listens on right now (the kernel's pick for port 0).
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

/// A fresh, empty working directory for one server.
fn private_directory(port: u16) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("chat-testkit-redis-{}-{port}-{serial}", std::process::id());
    let directory = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&directory)?;
    Ok(directory)
}

/// Sends a raw `PING` and expects `+PONG`.
fn ping(port: u16, timeout: Duration) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err() || stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0_u8; 7];
    stream.read_exact(&mut reply).is_ok() && reply.starts_with(b"+PONG")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let Some(mut server) = require_redis() else {
            return;
        };
        let port = server.port();
        assert!(server.is_up());
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        server.kill();
        assert!(!server.is_up(), "a killed server must not answer");
        assert!(server.restart().is_ok());
        assert_eq!(server.port(), port);
        assert!(server.is_up());
    }

    #[test]
    fn drop_kills_the_server() {
        let Some(server) = require_redis() else {
            return;
        };
        let port = server.port();
        drop(server);
        assert!(!ping(port, Duration::from_millis(200)));
    }
}

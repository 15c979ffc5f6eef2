//! A private `redis-server` for tests: random port, no persistence, killed with the test.
//!
//! The server runs under a tiny `sh` guard whose standard input is a pipe held by this process:
//! when the pipe closes (on [`RedisServer::kill`], on drop, or when the test process dies in any
//! way, even by `SIGKILL`), the guard sends `SIGKILL` to `redis-server` and waits for it. So no
//! server outlives its test binary, and a killed server has really stopped once `kill` returns.
//! The same guard runs the servers of [`crate::topology`].

use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{Guarded, TempDir, free_port, in_ci, on_path, poll};
use crate::resp::ping;

/// How long a server may take to answer `PING` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many fresh ports [`RedisServer::start`] tries before giving up (another process may grab
/// the port between our probe and the server's bind).
const START_ATTEMPTS: usize = 5;

/// How often a starting server is pinged.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Whether `redis-server` is on `PATH` (looked up once per process).
pub fn redis_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| on_path("redis-server"))
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
        if in_ci() {
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
    // Declared before the directory: the process dies before its directory is removed.
    process: Option<Guarded>,
    directory: TempDir,
}

impl RedisServer {
    /// Spawns a server on a free port and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        let mut last_error = io::Error::other("no attempt made");
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let directory = TempDir::new(&format!("redis-{port}"))?;
            let mut server = Self {
                port,
                process: None,
                directory,
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
        // Dropping the guard kills redis-server and waits for it.
        drop(self.process.take());
    }

    /// Kills the server if it runs, then starts a new one on the same port (with no data) and
    /// waits until it answers `PING`.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let process = start_redis(
            &server_arguments(self.port, self.directory.path(), ""),
            None,
            || ping(self.port, Duration::from_millis(200)),
        )
        .map_err(|error| io::Error::new(error.kind(), format!("port {}: {error}", self.port)))?;
        self.process = Some(process);
        Ok(())
    }
}

/// Starts `redis-server` with `arguments` and waits until `ready`, polling every 20 ms for up
/// to 10 s; its output goes to `log` (or nowhere). Fails when the server exits first (the error
/// carries the tail of `log`, and is
/// [`io::ErrorKind::AddrInUse`] when it says so) or does not get ready in time (it is killed).
pub(crate) fn start_redis(
    arguments: &[String],
    log: Option<&Path>,
    mut ready: impl FnMut() -> bool,
) -> io::Result<Guarded> {
    let mut process = Guarded::spawn("redis-server", arguments, log)?;
    poll("redis-server answering", START_TIMEOUT, POLL_EVERY, || {
        if ready() {
            return Ok(Ok(()));
        }
        match process.exited() {
            None => Ok(Err("no answer yet".to_owned())),
            Some(status) => {
                let tail = log.map(crate::process::log_tail).unwrap_or_default();
                let kind = if tail.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                Err(io::Error::new(
                    kind,
                    format!("redis-server exited ({status}) before it answered; log: {tail}"),
                ))
            }
        }
    })?;
    Ok(process)
}

/// The options every private `redis-server` starts with: `port` on 127.0.0.1 (0: no plain TCP),
/// no persistence, `directory` as its working directory, its log in `logfile` (`""`: standard
/// output, which the guard discards).
pub(crate) fn server_arguments(port: u16, directory: &Path, logfile: &str) -> Vec<String> {
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
        ("--logfile", logfile),
        ("--databases", "1"),
    ];
    pairs
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()])
        .collect()
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

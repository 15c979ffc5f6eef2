//! Server configuration: path, heartbeat timings, size limits and CORS.

use std::time::Duration;

/// Settings of one Socket.IO server. Build it with struct update syntax over
/// [`Config::default`], which matches the reference server's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path the Engine.IO endpoint is mounted at, with a trailing slash (default `/socket.io/`).
    /// The same path without the trailing slash is served too.
    pub path: String,
    /// How often the server sends a ping (default 25 s).
    pub ping_interval: Duration,
    /// How long the server waits for the client's pong before closing (default 20 s).
    pub ping_timeout: Duration,
    /// Largest WebSocket message and HTTP long-polling body accepted, in bytes (default 1 MiB).
    pub max_payload: usize,
    /// How long a new Engine.IO connection may go without a Socket.IO CONNECT (default 45 s).
    pub connect_timeout: Duration,
    /// Bound of the per-connection queue of outgoing frames (default 128). A socket whose queue
    /// is full is not reading: its connection is closed rather than buffering without bound.
    pub outbound_queue: usize,
    /// Origins allowed by CORS on the polling transport: `None` sends no CORS headers,
    /// `Some(vec!["*".into()])` allows any origin.
    pub cors_origins: Option<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: "/socket.io/".to_owned(),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_048_576,
            connect_timeout: Duration::from_secs(45),
            outbound_queue: 128,
            cors_origins: None,
        }
    }
}

impl Config {
    /// The mount path with exactly one leading and one trailing slash.
    pub(crate) fn normalized_path(&self) -> String {
        let trimmed = self.path.trim_matches('/');
        if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    fn check(path: &str, expected: &str) {
        let config = Config {
            path: path.to_owned(),
            ..Config::default()
        };
        assert_eq!(config.normalized_path(), expected);
    }

    #[test]
    fn paths_are_normalized() {
        check("/socket.io/", "/socket.io/");
        check("socket.io", "/socket.io/");
        check("/a/b", "/a/b/");
        check("/", "/");
    }
}

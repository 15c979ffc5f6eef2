//! The `chat-server` binary as another team's CI runs it: help, version, `check-config`
//! (every problem named at once, exit 2, before any port is bound), and a start on port 0
//! stopped with SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use chat_testkit::ChatServer;

const BINARY: &str = env!("CARGO_BIN_EXE_chat-server");

/// Variables that would change what the binary reads, removed so the developer's own
/// environment cannot change a test's outcome.
const READ_BY_THE_SERVER: &[&str] = &[
    "CHAT_CONFIG",
    "PORT",
    "HOST",
    "REDIS_URL",
    "JWT_SECRET",
    "RUST_LOG",
];

fn chat_server(arguments: &[&str], variables: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("CHAT__") || READ_BY_THE_SERVER.contains(&name.as_str()) {
            command.env_remove(name);
        }
    }
    command
        .args(arguments)
        .envs(variables.iter().copied())
        .output()
        .expect("chat-server runs")
}

/// A configuration file with `contents`, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(contents: &str) -> Self {
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "chat-server-cli-{}-{serial}.toml",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `check-config` on a file with `contents` fails with exit code 2, and its report names
/// `key` (the report's lines start with the key's name).
fn check_refused(contents: &str, key: &str) {
    let file = ConfigFile::new(contents);
    let output = chat_server(&["check-config", file.path()], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{contents}\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with(&format!("config error: {key}: "))),
        "{contents}: no line names {key}:\n{stderr}"
    );
}

#[test]
fn help_and_version() {
    let help = chat_server(&["--help"], &[]);
    assert!(help.status.success());
    let help = text(&help.stdout);
    for expected in [
        "USAGE",
        "--port",
        "--host",
        "check-config",
        "--version",
        "listening on",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
    let version = chat_server(&["--version"], &[]);
    assert!(version.status.success());
    assert_eq!(
        text(&version.stdout),
        format!("chat-server {}\n", env!("CARGO_PKG_VERSION"))
    );
    let unknown = chat_server(&["--frobnicate"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("unknown argument --frobnicate"));
}

#[test]
fn check_config_names_each_problem_by_its_key() {
    // Unknown keys and sections.
    check_refused("[server]\ncolour = \"blue\"\n", "server.colour");
    check_refused("[bogus]\nx = 1\n", "bogus");
    // Wrong types.
    check_refused("[server]\nport = \"eighty\"\n", "server.port");
    check_refused("[webrtc]\nstun_urls = 5\n", "webrtc.stun_urls");
    // Numbers out of range, of their type or of their rules.
    check_refused("[server]\nport = 99999\n", "server.port");
    check_refused(
        "[rate]\nsessions_per_minute = -1\n",
        "rate.sessions_per_minute",
    );
    check_refused("[session]\nttl_secs = 0\n", "session.ttl_secs");
    // A malformed Redis URL, with another scheme or one the Redis client cannot read.
    check_refused("[redis]\nurl = \"http://localhost:6379\"\n", "redis.url");
    check_refused(
        "[redis]\nurl = \"redis://localhost:notaport\"\n",
        "redis.url",
    );
    // A JWT secret shorter than 32 bytes.
    check_refused("[auth]\njwt_secret = \"short\"\n", "auth.jwt_secret");
}

#[test]
fn check_config_reports_every_problem_at_once() {
    let file = ConfigFile::new(
        "[server]\nport = \"eighty\"\ncolour = \"blue\"\n[session]\nttl_secs = 0\n[redis]\nurl = \"redis://:hunter2@localhost:notaport\"\n\
         [auth]\njwt_secret = \"short\"\n",
    );
    let output = chat_server(&["check-config", file.path()], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let named: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("config error: ")?.split(':').next())
        .collect();
    assert_eq!(
        named,
        [
            "server.colour",
            "server.port",
            "session.ttl_secs",
            "auth.jwt_secret",
            "redis.url"
        ],
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "a password was printed:\n{stderr}"
    );
}

#[test]
fn check_config_reads_the_environment_too() {
    let output = chat_server(
        &["check-config"],
        &[("CHAT__SERVER__PORT", "abc"), ("JWT_SECRET", "short")],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config error: server.port: "), "{stderr}");
    assert!(
        stderr.contains("config error: auth.jwt_secret: "),
        "{stderr}"
    );

    let valid = ConfigFile::new(
        "[server]\nport = 0\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
    );
    let output = chat_server(&["check-config", valid.path()], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "configuration is valid\n");

    let missing = chat_server(&["check-config", "/nonexistent/chat.toml"], &[]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_bad_configuration_stops_the_server_before_it_binds() {
    // The port is taken: a server that got as far as binding would fail with "could not bind".
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = chat_server(
        &["--port", &port],
        &[("JWT_SECRET", "short"), ("CHAT__SESSION__TTL_SECS", "0")],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config error: auth.jwt_secret: ")
            && stderr.contains("config error: session.ttl_secs: "),
        "{stderr}"
    );
    assert!(!stderr.contains("could not bind"), "{stderr}");
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
}

#[test]
fn starts_on_port_zero_and_stops_cleanly_on_sigterm() {
    // `--port 0` wins over PORT (which would need privileges).
    let server = ChatServer::start(
        BINARY,
        &["--port", "0"],
        &[
            ("PORT", "1"),
            ("REDIS_URL", ""),
            ("JWT_SECRET", "cli-test-secret-cli-test-secret-0123"),
        ],
    )
    .expect("chat-server starts");
    assert!(
        server.url().starts_with("http://127.0.0.1:") && server.port() > 1,
        "{}",
        server.url()
    );
    assert_eq!(server.storage(), "memory");
    let (status, body) = server.get("/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let log = server.stderr();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal:\n{log}"
    );
    let exit = server.terminate().unwrap();
    assert_eq!(exit.code(), Some(0), "SIGTERM must end in a clean exit");
}

#[test]
fn json_logs_carry_the_request_id_on_every_line_of_a_request() {
    let server = ChatServer::start(
        BINARY,
        &["--port", "0"],
        &[
            ("REDIS_URL", ""),
            ("JWT_SECRET", "cli-test-secret-cli-test-secret-0123"),
            ("CHAT__LOG__FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
    )
    .expect("chat-server starts");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"POST /api/guest HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    let request_id = answer
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no X-Request-Id in {answer}"))
        .trim()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let line = loop {
        let log = server.stderr();
        if let Some(line) = log
            .lines()
            .find(|line| line.contains("guest session created"))
        {
            break line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line for the request:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let entry: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    let spans = entry["spans"].as_array().cloned().unwrap_or_default();
    let request = spans
        .iter()
        .find(|span| span["name"] == "request")
        .unwrap_or_else(|| panic!("no request span: {line}"));
    assert_eq!(request["request_id"], request_id.as_str(), "{line}");
    assert_eq!(request["method"], "POST", "{line}");
    server.terminate().unwrap();
}

#[test]
fn an_admin_port_without_a_long_enough_token_stops_the_server_before_it_binds() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let short = "x".repeat(31);
    for token in [None, Some(""), Some(short.as_str())] {
        let mut variables = vec![
            ("JWT_SECRET", "cli-test-secret-cli-test-secret-0123"),
            ("CHAT__ADMIN__PORT", "0"),
        ];
        variables.extend(token.map(|token| ("CHAT__ADMIN__TOKEN", token)));
        let output = chat_server(&["--port", &port], &variables);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{token:?}: {stderr}");
        assert!(
            stderr.contains("config error: admin.token: "),
            "{token:?}: {stderr}"
        );
        assert!(!stderr.contains("could not bind"), "{stderr}");
        assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
        let checked = chat_server(&["check-config"], &variables);
        assert_eq!(checked.status.code(), Some(2), "{token:?}");
    }
}

#[test]
fn the_admin_api_prints_its_own_line_and_answers_its_token_only() {
    use std::io::{BufRead, BufReader, Read, Write};

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("CHAT__") || READ_BY_THE_SERVER.contains(&name.as_str()) {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["--port", "0"])
        .envs([
            ("JWT_SECRET", "cli-test-secret-cli-test-secret-0123"),
            ("CHAT__ADMIN__PORT", "0"),
            ("CHAT__ADMIN__TOKEN", TOKEN),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let timeout = std::time::Duration::from_secs(20);
    let main = lines.recv_timeout(timeout).unwrap();
    let admin = lines.recv_timeout(timeout).unwrap();
    assert!(main.starts_with("listening on http://127.0.0.1:"), "{main}");
    let address = admin
        .strip_prefix("admin listening on http://")
        .unwrap_or_else(|| panic!("not the admin line: {admin}"))
        .to_owned();
    let port: u16 = address
        .strip_prefix("127.0.0.1:")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("{admin}"));
    assert!(port > 0 && !main.contains(&address), "{main} / {admin}");
    let get = |authorization: Option<&str>| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let header = authorization
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /admin/bans HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(get(None).starts_with("HTTP/1.1 401"));
    assert!(get(Some("Bearer 0123456789abcdef0123456789abcdeF")).starts_with("HTTP/1.1 401"));
    let answer = get(Some(&format!("Bearer {TOKEN}")));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"bans":[]}"#), "{answer}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "SIGTERM must end in a clean exit");
}

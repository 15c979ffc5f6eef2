//! `spawn_app` and a raw HTTP/1.1 client: bad-input tests need byte-level control of
//! headers and bodies that higher-level clients normalize away.

use std::net::SocketAddr;

use chat_http_gateway::settings::Secret;
use chat_http_gateway::{Application, Settings};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub address: SocketAddr,
    /// The admin API's address, when it is on.
    pub admin: Option<SocketAddr>,
}

/// Starts the application in memory mode on a random port, with `adjust` applied to the
/// default settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.auth.jwt_secret = Some(Secret::new(SECRET));
    settings.rate.sessions_per_minute = 1000;
    adjust(&mut settings);
    let application = Application::build(settings)
        .await
        .expect("application builds");
    let address = application.address();
    let admin = application.admin_address();
    tokio::spawn(application.run_until_stopped(std::future::pending()));
    TestApp { address, admin }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts `count` applications on the Redis at `redis_url` (nodes of one service), each with
/// `adjust` applied to the default settings.
pub async fn spawn_nodes_with(
    redis_url: &str,
    count: usize,
    adjust: impl Fn(&mut Settings),
) -> Vec<TestApp> {
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        nodes.push(
            spawn_app_with(|settings| {
                settings.redis.url = Some(Secret::new(redis_url));
                adjust(settings);
            })
            .await,
        );
    }
    nodes
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Asserts the contract's error shape and returns the code.
    pub fn error_code(&self) -> String {
        let body = self.json();
        assert!(
            body["error"]["message"].is_string(),
            "error without message: {body}"
        );
        body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {body}"))
            .to_owned()
    }
}

impl TestApp {
    /// The admin listener, as a client of its own (panics when the admin API is off).
    pub fn admin(&self) -> TestApp {
        TestApp {
            address: self.admin.expect("the admin API is on"),
            admin: None,
        }
    }

    /// Sends one request with `Connection: close` and reads the whole answer.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut stream = TcpStream::connect(self.address).await.unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PATCH" | "PUT") {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        parse_response(&raw)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        self.raw("GET", path, &headers, b"").await
    }

    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(value) = &bearer {
            headers.push(("Authorization", value.as_str()));
        }
        self.raw(method, path, &headers, body.to_string().as_bytes())
            .await
    }

    /// Creates a guest; returns (token, user).
    pub async fn guest(&self, body: Value) -> (String, Value) {
        let response = self.send_json("POST", "/api/guest", None, &body).await;
        assert_eq!(
            response.status,
            201,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let json = response.json();
        (
            json["token"].as_str().unwrap().to_owned(),
            json["user"].clone(),
        )
    }
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("complete head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|window| window == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

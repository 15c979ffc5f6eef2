//! The real `chat-server` binary as a child process on a free port of 127.0.0.1, for tests
//! of a client (of any language) against it.
//!
//! [`ChatServer::start`] runs the binary with `PORT=0 HOST=127.0.0.1` (plus the caller's
//! arguments and variables) and waits for the line it prints once bound,
//! `listening on http://127.0.0.1:PORT storage=memory|redis`. [`ChatServer::terminate`]
//! stops it as an orchestrator does, with `SIGTERM` (sent by the `kill` command), and
//! returns its exit status; dropping a running server kills it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`ChatServer::terminate`] waits for the process to exit after `SIGTERM`.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The most of the server's standard error kept for error messages.
const STDERR_KEPT: usize = 64 * 1024;

/// A running `chat-server` process.
#[derive(Debug)]
pub struct ChatServer {
    child: Option<Child>,
    url: String,
    storage: String,
    stderr: Arc<Mutex<String>>,
}

impl ChatServer {
    /// Starts `binary` with `PORT=0 HOST=127.0.0.1`, then `arguments` and `variables` (which
    /// win), and waits until it is listening. The rest of the environment is inherited.
    ///
    /// Fails when the binary cannot be run, exits before listening (the error carries its
    /// standard error, e.g. the configuration problems), or stays silent for 20 s.
    pub fn start(
        binary: impl AsRef<Path>,
        arguments: &[&str],
        variables: &[(&str, &str)],
    ) -> io::Result<Self> {
        let mut child = Command::new(binary.as_ref())
            .args(arguments)
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .envs(variables.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            keep_tail(pipe, stderr.clone());
        }
        let (line_sender, lines) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            // Reads every line so the pipe never fills; the first `listening on` goes back.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.starts_with("listening on ") {
                        let _ = line_sender.send(line);
                    }
                }
            });
        }
        let mut server = Self {
            child: Some(child),
            url: String::new(),
            storage: String::new(),
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let (url, storage) = parse_listening(&line).ok_or_else(|| {
                        io::Error::other(format!("unexpected listening line: {line}"))
                    })?;
                    server.url = url;
                    server.storage = storage;
                    return Ok(server);
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Some(status) = server
                        .child
                        .as_mut()
                        .map(Child::try_wait)
                        .transpose()?
                        .flatten()
                    {
                        // Give the reader of standard error a moment to collect the last lines.
                        std::thread::sleep(Duration::from_millis(100));
                        return Err(io::Error::other(format!(
                            "chat-server exited ({status}) before listening:\n{}",
                            server.stderr()
                        )));
                    }
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "chat-server printed no listening line within {START_TIMEOUT:?}:\n{}",
                            server.stderr()
                        ),
                    ));
                }
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or(0)
    }

    /// `memory` or `redis`, as the listening line said.
    pub fn storage(&self) -> &str {
        &self.storage
    }

    /// What the server wrote on standard error so far (its last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// A plain `GET path` with `Connection: close`; returns the status code and the body.
    pub fn get(&self, path: &str) -> io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port()))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other("not an HTTP answer"))?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Sends `SIGTERM` and waits for the process to exit; returns its status (success after
    /// a clean shutdown). Kills it when it has not exited after 20 s.
    pub fn terminate(mut self) -> io::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(io::Error::other("already stopped"));
        };
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !signalled.success() {
            return Err(io::Error::other("kill -TERM failed"));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill()?;
        child.wait()?;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("chat-server did not exit within {STOP_TIMEOUT:?} of SIGTERM"),
        ))
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `listening on http://ADDRESS storage=MODE` → (`http://ADDRESS`, `MODE`).
fn parse_listening(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("listening on ")?;
    let (url, storage) = rest.split_once(" storage=")?;
    url.starts_with("http://")
        .then(|| (url.to_owned(), storage.trim().to_owned()))
}

/// Collects the last [`STDERR_KEPT`] bytes of `pipe` into `kept`.
fn keep_tail(mut pipe: impl Read + Send + 'static, kept: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 4096];
        while let Ok(read) = pipe.read(&mut buffer) {
            if read == 0 {
                break;
            }
            if let Ok(mut text) = kept.lock() {
                text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                if text.len() > STDERR_KEPT {
                    let cut = text.len() - STDERR_KEPT;
                    let cut = (cut..text.len())
                        .find(|index| text.is_char_boundary(*index))
                        .unwrap_or(0);
                    text.drain(..cut);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            parse_listening("listening on http://127.0.0.1:4321 storage=memory"),
            Some(("http://127.0.0.1:4321".into(), "memory".into()))
        );
        assert_eq!(
            parse_listening("listening on 127.0.0.1:4321 storage=memory"),
            None
        );
        assert_eq!(parse_listening("something else"), None);
    }
}

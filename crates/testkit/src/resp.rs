//! A tiny RESP2 client over a fresh `TcpStream` per command: enough for the harness to ask a
//! plain-text Redis (`PING`, `INFO`, `CLUSTER …`, `SENTINEL …`) what state it is in.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The largest bulk string or array this client accepts (a reply to a test's command).
const MAX_LENGTH: usize = 64 * 1024 * 1024;

/// How deep arrays may nest (`CLUSTER SLOTS` needs 3).
const MAX_DEPTH: usize = 8;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`; `None` for `$-1`.
    Bulk(Option<String>),
    /// `*2 …`; `None` for `*-1`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text: strings as they are, integers in decimal, nil as the empty string,
    /// arrays as their elements' text one a line (nested arrays flattened), like `redis-cli`
    /// prints them when its output is not a terminal. An error reply is an error.
    pub(crate) fn into_text(self) -> io::Result<String> {
        let mut lines = Vec::new();
        self.flatten(&mut lines)?;
        Ok(lines.join("\n"))
    }

    fn flatten(self, lines: &mut Vec<String>) -> io::Result<()> {
        match self {
            Self::Simple(text) | Self::Bulk(Some(text)) => lines.push(text),
            Self::Error(message) => return Err(io::Error::other(message)),
            Self::Integer(number) => lines.push(number.to_string()),
            Self::Bulk(None) | Self::Array(None) => lines.push(String::new()),
            Self::Array(Some(elements)) => {
                for element in elements {
                    element.flatten(lines)?;
                }
            }
        }
        Ok(())
    }

    /// The elements of an array reply (an error reply is an error, other replies are none).
    pub(crate) fn into_elements(self) -> io::Result<Vec<Reply>> {
        match self {
            Self::Array(Some(elements)) => Ok(elements),
            Self::Error(message) => Err(io::Error::other(message)),
            _ => Ok(Vec::new()),
        }
    }

    /// The text of a string or integer reply.
    pub(crate) fn as_text(&self) -> Option<String> {
        match self {
            Self::Simple(text) | Self::Bulk(Some(text)) => Some(text.clone()),
            Self::Integer(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

/// Sends one command to `127.0.0.1:<port>` and reads its reply, each step within `timeout`.
pub(crate) fn call<S: AsRef<str>>(
    port: u16,
    arguments: &[S],
    timeout: Duration,
) -> io::Result<Reply> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!("*{}\r\n", arguments.len()).into_bytes();
    for argument in arguments {
        let argument = argument.as_ref();
        request.extend_from_slice(format!("${}\r\n", argument.len()).as_bytes());
        request.extend_from_slice(argument.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&request)?;
    read_reply(&mut BufReader::new(stream), 0)
}

/// Whether the server at `port` answers `PING` with `PONG` within `timeout`.
pub(crate) fn ping(port: u16, timeout: Duration) -> bool {
    matches!(call(port, &["PING"], timeout), Ok(Reply::Simple(text)) if text == "PONG")
}

/// The value of `field` in an `INFO` reply (`field:value` lines).
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

fn read_reply(reader: &mut impl BufRead, depth: usize) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| invalid("an empty line"))?;
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => rest
            .parse()
            .map(Reply::Integer)
            .map_err(|_| invalid("a bad integer")),
        "$" => {
            let Some(length) = length(rest)? else {
                return Ok(Reply::Bulk(None));
            };
            let mut bytes = vec![0; length + 2];
            reader.read_exact(&mut bytes)?;
            if !bytes.ends_with(b"\r\n") {
                return Err(invalid("a bulk string without CRLF"));
            }
            bytes.truncate(length);
            Ok(Reply::Bulk(Some(
                String::from_utf8_lossy(&bytes).into_owned(),
            )))
        }
        "*" => {
            let Some(count) = length(rest)? else {
                return Ok(Reply::Array(None));
            };
            if depth >= MAX_DEPTH {
                return Err(invalid("arrays nested too deep"));
            }
            let elements = (0..count)
                .map(|_| read_reply(reader, depth + 1))
                .collect::<io::Result<Vec<_>>>()?;
            Ok(Reply::Array(Some(elements)))
        }
        _ => Err(invalid("an unknown reply type")),
    }
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    line.strip_suffix("\r\n")
        .map(str::to_owned)
        .ok_or_else(|| invalid("a line without CRLF"))
}

/// A length, or `None` for `-1` (nil).
fn length(text: &str) -> io::Result<Option<usize>> {
    if text == "-1" {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(length) if length <= MAX_LENGTH => Ok(Some(length)),
        _ => Err(invalid("a bad length")),
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RESP: {what}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut &bytes[..], 0)
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse(b"+PONG\r\n").unwrap(), Reply::Simple("PONG".into()));
        assert_eq!(parse(b":-7\r\n").unwrap(), Reply::Integer(-7));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        let nested = parse(b"*3\r\n$2\r\nab\r\n*2\r\n:1\r\n+x\r\n$0\r\n\r\n").unwrap();
        assert_eq!(nested.clone().into_text().unwrap(), "ab\n1\nx\n");
        assert_eq!(nested.into_elements().unwrap().len(), 3);
        let error = parse(b"-MOVED 1 127.0.0.1:7000\r\n").unwrap();
        assert_eq!(
            error.into_text().unwrap_err().to_string(),
            "MOVED 1 127.0.0.1:7000"
        );
        assert!(parse(b"$5\r\nab\r\n").is_err());
        assert!(parse(b"?\r\n").is_err());
    }

    #[test]
    fn reads_info_fields() {
        let info = "# Cluster\r\ncluster_state:ok\r\ncluster_slots_ok:16384\r\n";
        assert_eq!(info_field(info, "cluster_state"), Some("ok"));
        assert_eq!(info_field(info, "cluster_slots"), None);
    }
}

//! Redis's own count of the commands it ran (`INFO commandstats`), read from each server of
//! `--redis` (one, or every master of a cluster) around a measured phase, so a scenario can
//! report commands per search or per relayed message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::http::tcp_connect;

/// How long one `INFO commandstats` may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Calls per command (`get`, `evalsha`, `cluster|slots`, …), one map per server, in the order
/// of `--redis`. Commands run inside Lua scripts count as calls of their own (Redis counts
/// them so); this reader's own `info` calls are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    servers: Vec<BTreeMap<String, u64>>,
}

impl Counts {
    /// Reads every server; `None` when there are none or one does not answer (the figures
    /// are then left out, the scenario goes on).
    pub async fn read(servers: &[SocketAddr]) -> Option<Self> {
        if servers.is_empty() {
            return None;
        }
        let mut counts = Self::default();
        for server in servers {
            match tokio::time::timeout(TIMEOUT, commandstats(*server)).await {
                Ok(Ok(calls)) => counts.servers.push(calls),
                Ok(Err(error)) => {
                    eprintln!("INFO commandstats from {server}: {error:#}");
                    return None;
                }
                Err(_) => {
                    eprintln!("INFO commandstats from {server}: no answer");
                    return None;
                }
            }
        }
        Some(counts)
    }

    /// What ran between `before` and `self`, per server.
    pub fn since(&self, before: &Self) -> Self {
        self.zip_with(before, |after, before| {
            after
                .iter()
                .map(|(name, calls)| {
                    let earlier = before.get(name).copied().unwrap_or(0);
                    (name.clone(), calls.saturating_sub(earlier))
                })
                .filter(|(_, calls)| *calls > 0)
                .collect()
        })
    }

    /// These calls and `other`'s, server by server.
    pub fn plus(&self, other: &Self) -> Self {
        self.zip_with(other, |mine, theirs| {
            let mut sum = mine.clone();
            for (name, calls) in theirs {
                *sum.entry(name.clone()).or_default() += calls;
            }
            sum
        })
    }

    /// Server by server, `combine` of this reading and `other`'s.
    fn zip_with(
        &self,
        other: &Self,
        combine: impl Fn(&BTreeMap<String, u64>, &BTreeMap<String, u64>) -> BTreeMap<String, u64>,
    ) -> Self {
        let servers = self
            .servers
            .iter()
            .zip(&other.servers)
            .map(|(mine, theirs)| combine(mine, theirs))
            .collect();
        Self { servers }
    }

    /// Every call on every server.
    pub fn total(&self) -> u64 {
        self.servers.iter().flat_map(BTreeMap::values).sum()
    }

    /// Calls per command, summed over the servers, most called first.
    pub fn by_command(&self) -> Vec<(String, u64)> {
        let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
        for (name, calls) in self.servers.iter().flatten() {
            *sums.entry(name).or_default() += calls;
        }
        let mut list: Vec<(String, u64)> = sums
            .into_iter()
            .map(|(name, calls)| (name.to_owned(), calls))
            .collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list
    }

    /// The `count` most called commands, each as calls per `unit` (e.g. per search):
    /// `evalsha 2.00, get 1.50, …`.
    pub fn top_per(&self, unit: u64, count: usize) -> String {
        let unit = unit.max(1) as f64;
        self.by_command()
            .into_iter()
            .take(count)
            .map(|(name, calls)| format!("{name} {:.2}", calls as f64 / unit))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Each server's share of the calls, in `--redis` order: `34% / 33% / 33%`.
    pub fn shares(&self) -> String {
        let total = self.total().max(1) as f64;
        self.servers
            .iter()
            .map(|calls| {
                let sum: u64 = calls.values().sum();
                format!("{:.0}%", sum as f64 / total * 100.0)
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// How many servers were read.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }
}

/// One `INFO commandstats` over a fresh connection.
async fn commandstats(server: SocketAddr) -> anyhow::Result<BTreeMap<String, u64>> {
    let stream = tcp_connect(server, None).await?;
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        .await?;
    let mut header = String::new();
    stream.read_line(&mut header).await?;
    let length: usize = match header.trim_end().strip_prefix('$') {
        Some(length) => length
            .parse()
            .with_context(|| format!("bad reply header {header:?}"))?,
        None => bail!("unexpected reply {:?}", header.trim_end()),
    };
    let mut body = vec![0; length + 2];
    stream.read_exact(&mut body).await?;
    body.truncate(length);
    Ok(parse(&String::from_utf8_lossy(&body)))
}

/// `cmdstat_<name>:calls=<n>,usec=…` lines → calls per name, without `info`.
fn parse(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim_end().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| name != "info")
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Commandstats\r\n\
        cmdstat_get:calls=10,usec=2,usec_per_call=0.20,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_evalsha:calls=4,usec=81,usec_per_call=20.25,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_cluster|slots:calls=1,usec=9,usec_per_call=9.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=7,usec=9,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n";

    #[test]
    fn parses_calls_without_its_own_info() {
        let calls = parse(SAMPLE);
        assert_eq!(calls.len(), 3);
        assert_eq!(calls["get"], 10);
        assert_eq!(calls["cluster|slots"], 1);
        assert!(!calls.contains_key("info"));
    }

    #[test]
    fn differences_sum_over_servers() {
        let before = Counts {
            servers: vec![parse(SAMPLE), BTreeMap::new()],
        };
        let mut first = parse(SAMPLE);
        *first.get_mut("get").unwrap() += 6;
        let second = BTreeMap::from([("spublish".to_owned(), 2), ("get".to_owned(), 2)]);
        let after = Counts {
            servers: vec![first, second],
        };
        let ran = after.since(&before);
        assert_eq!(ran.total(), 10);
        assert_eq!(ran.plus(&ran).total(), 20);
        assert_eq!(
            ran.by_command(),
            [("get".to_owned(), 8), ("spublish".to_owned(), 2)]
        );
        assert_eq!(ran.top_per(2, 1), "get 4.00");
        assert_eq!(ran.shares(), "60% / 40%");
    }
}

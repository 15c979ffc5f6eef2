//! The line protocol between the coordinator and its worker processes.
//!
//! A worker prints `stage NAME JSON` on its standard output when it reaches a checkpoint,
//! then waits for one line on its standard input: `continue`, `go AT_US PARAM` (start a
//! timed phase at wall-clock microsecond `AT_US` with a scenario-specific number) or
//! `exit`. A failing worker prints `error MESSAGE`. Logs go to standard error.

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::args::Args;

/// Microseconds since the Unix epoch (shared by all processes of the machine).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The tokio instant at wall-clock microsecond `at_us` (now when it has passed).
pub fn instant_at(at_us: u64) -> tokio::time::Instant {
    let now = now_us();
    tokio::time::Instant::now() + Duration::from_micros(at_us.saturating_sub(now))
}

/// What the coordinator tells a worker at a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// Go on to the next stage.
    Continue,
    /// Start a timed phase at `at_us` with a scenario-specific parameter.
    Go {
        /// Wall-clock start, microseconds since the epoch.
        at_us: u64,
        /// Scenario-specific (relay: messages per second).
        param: f64,
    },
    /// Close everything and exit.
    Exit,
}

/// The worker's side: stdin lines arrive through a thread.
#[derive(Debug)]
pub struct Control {
    lines: mpsc::UnboundedReceiver<String>,
}

impl Control {
    /// Starts reading standard input.
    pub fn start() -> Self {
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { lines }
    }

    /// Reports reaching `name` with `data` and waits for the coordinator's word.
    /// The data gets `selfCpu`: this worker's CPU seconds so far.
    pub async fn stage(&mut self, name: &str, data: &Value) -> anyhow::Result<Order> {
        let mut data = data.clone();
        if let (Some(object), Ok(own)) = (
            data.as_object_mut(),
            crate::procfs::sample(std::process::id()),
        ) {
            object.insert("selfCpu".to_owned(), Value::from(own.cpu_secs));
        }
        say(&format!("stage {name} {data}"));
        let line = self.lines.recv().await.unwrap_or_else(|| "exit".to_owned());
        parse_command(&line)
    }
}

/// Prints one protocol line on standard output.
pub fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn parse_command(line: &str) -> anyhow::Result<Order> {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("continue") => Ok(Order::Continue),
        Some("exit") | None => Ok(Order::Exit),
        Some("go") => {
            let at_us = words
                .next()
                .and_then(|word| word.parse().ok())
                .context("go needs a time")?;
            let param = words
                .next()
                .and_then(|word| word.parse().ok())
                .unwrap_or(0.0);
            Ok(Order::Go { at_us, param })
        }
        Some(other) => bail!("unknown command {other}"),
    }
}

/// The coordinator's side: the worker processes.
#[derive(Debug)]
pub struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    lines: mpsc::UnboundedReceiver<(usize, Option<String>)>,
}

impl Workers {
    /// Starts `--procs` copies of this program in worker mode.
    pub fn spawn(args: &Args) -> anyhow::Result<Self> {
        let count = args.procs()?;
        let program = std::env::current_exe().context("own executable")?;
        let (sender, lines) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for index in 0..count {
            let mut child = Command::new(&program)
                .arg("__worker")
                .arg(index.to_string())
                .arg(count.to_string())
                .args(&args.raw)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("start a worker process")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            stdins.push(child.stdin.take().context("worker stdin")?);
            children.push(child);
            let sender = sender.clone();
            let worker = usize::try_from(index).unwrap_or(usize::MAX);
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if sender.send((worker, Some(line))).is_err() {
                        return;
                    }
                }
                let _ = sender.send((worker, None));
            });
        }
        Ok(Self {
            children,
            stdins,
            lines,
        })
    }

    /// Waits until every worker reached stage `name` (at most `limit`); returns their data.
    pub async fn stage(&mut self, name: &str, limit: Duration) -> anyhow::Result<Vec<Value>> {
        let mut results = vec![Value::Null; self.children.len()];
        let mut pending = self.children.len();
        let deadline = tokio::time::Instant::now() + limit;
        while pending > 0 {
            let Ok(message) = tokio::time::timeout_at(deadline, self.lines.recv()).await else {
                bail!("workers did not reach stage {name} within {limit:?}");
            };
            let Some((worker, line)) = message else {
                bail!("workers gone")
            };
            let Some(line) = line else {
                bail!("worker {worker} exited before stage {name}")
            };
            if let Some(message) = line.strip_prefix("error ") {
                bail!("worker {worker}: {message}");
            }
            let Some(rest) = line.strip_prefix("stage ") else {
                continue;
            };
            let (stage, data) = rest.split_once(' ').unwrap_or((rest, "null"));
            if stage != name {
                bail!("worker {worker} reached stage {stage}, expected {name}");
            }
            let slot = results.get_mut(worker).context("worker index")?;
            if slot.is_null() {
                pending -= 1;
            }
            *slot = serde_json::from_str(data).with_context(|| format!("worker {worker} data"))?;
        }
        Ok(results)
    }

    /// Sends one line to every worker.
    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        for stdin in &mut self.stdins {
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .context("write to a worker")?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// Tells the workers to exit and waits for them (killing the ones that hang).
    pub async fn finish(mut self) {
        let _ = self.send("exit").await;
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse_command("continue").unwrap(), Order::Continue);
        assert_eq!(parse_command("exit").unwrap(), Order::Exit);
        assert_eq!(
            parse_command("go 123 4.5").unwrap(),
            Order::Go {
                at_us: 123,
                param: 4.5
            }
        );
        assert!(parse_command("dance").is_err());
    }
}

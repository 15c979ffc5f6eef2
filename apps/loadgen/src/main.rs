//! `chat-loadgen`: a load generator for `chat-server` that behaves like the web client
//! (guest creation over REST, Socket.IO over WebSocket with pings, acks and receipts), with
//! HDR latency histograms and results as a table and as JSON. See `chat-loadgen --help`.

mod args;
mod control;
mod coord;
mod hist;
mod http;
mod procfs;
mod redis;
mod report;
mod sio;
mod worker;

use std::process::ExitCode;

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match raw.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{}", args::HELP);
            ExitCode::SUCCESS
        }
        Some("__worker") => {
            let index = raw.get(1).and_then(|value| value.parse().ok()).unwrap_or(0);
            let count = raw.get(2).and_then(|value| value.parse().ok()).unwrap_or(1);
            match worker::main(index, count, raw.get(3..).unwrap_or_default()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("worker {index}: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("report") => match report::write_markdown(raw.get(1..).unwrap_or_default()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Some(_) => match coordinate(&raw) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs a scenario: workers do the load, this process paces and reports.
fn coordinate(raw: &[String]) -> anyhow::Result<()> {
    let args = args::Args::parse(raw)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(coord::run(&args))?;
    print!("{}", report.table());
    if let Some(path) = args.text("json") {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        if path == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n")?;
        }
    }
    Ok(())
}

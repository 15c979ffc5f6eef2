//! `chat-server`: loads the configuration, installs tracing, builds the application and
//! serves until SIGTERM or SIGINT.

mod settings_loader;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use chat_http_gateway::{Application, Settings};
use tracing_subscriber::EnvFilter;

const HELP: &str = "\
chat-server: anonymous random-chat backend (REST + Socket.IO)

USAGE:
    chat-server [--port PORT] [--host HOST]
    chat-server check-config [FILE]
    chat-server --help | --version

Configuration: config/default.toml (embedded), then the file named by CHAT_CONFIG,
then CHAT__SECTION__KEY environment variables, then PORT, HOST, REDIS_URL, JWT_SECRET.
On start it prints `listening on http://ADDRESS storage=MODE` on standard output, then
`admin listening on http://ADDRESS` when the admin API is on (CHAT__ADMIN__PORT).
";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let mut overrides = settings_loader::Overrides::default();
    let mut index = 0;
    while let Some(argument) = arguments.get(index) {
        match argument.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("chat-server {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "check-config" => return check_config(arguments.get(index + 1).map(String::as_str)),
            "--port" | "--host" => {
                let Some(value) = arguments.get(index + 1) else {
                    eprintln!("error: {argument} needs a value\n\n{HELP}");
                    return ExitCode::from(2);
                };
                if argument == "--port" {
                    overrides.port = Some(value.clone());
                } else {
                    overrides.host = Some(value.clone());
                }
                index += 1;
            }
            other => {
                eprintln!("error: unknown argument {other}\n\n{HELP}");
                return ExitCode::from(2);
            }
        }
        index += 1;
    }
    let settings = match settings_loader::load(None, &overrides) {
        Ok(settings) => settings,
        Err(problems) => {
            for problem in problems {
                eprintln!("config error: {problem}");
            }
            return ExitCode::from(2);
        }
    };
    match serve(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: Option<&str>) -> ExitCode {
    match settings_loader::load(file, &settings_loader::Overrides::default()) {
        Ok(_) => {
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("config error: {problem}");
            }
            ExitCode::from(2)
        }
    }
}

fn install_tracing(settings: &Settings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.level));
    // Colours only on a terminal: logs redirected to a file (as CI does) stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if settings.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn serve(settings: Settings) -> anyhow::Result<()> {
    install_tracing(&settings);
    let application = Application::build(settings)
        .await
        .context("could not start")?;
    let address = application.address();
    let mode = application.storage_mode().as_str();
    tracing::info!(%address, storage = mode, "listening");
    println!("listening on http://{address} storage={mode}");
    if let Some(admin) = application.admin_address() {
        tracing::info!(%admin, "admin API listening");
        println!("admin listening on http://{admin}");
    }
    application
        .run_until_stopped(shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

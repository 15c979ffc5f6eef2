//! Loads [`Settings`]: embedded defaults, the `CHAT_CONFIG` file, `CHAT__…` variables, then
//! the shorthands `PORT`, `HOST`, `REDIS_URL`, `JWT_SECRET` and command-line overrides.

use chat_http_gateway::Settings;
use config::{Config, Environment, File, FileFormat};

const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--port`.
    pub port: Option<String>,
    /// `--host`.
    pub host: Option<String>,
}

/// Loads and validates the settings; every problem is returned at once, each naming its key.
pub fn load(file: Option<&str>, overrides: &Overrides) -> Result<Settings, Vec<String>> {
    let file = file.map(str::to_owned).or_else(|| std::env::var("CHAT_CONFIG").ok().filter(|path| !path.is_empty()));
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(path) = &file {
        builder = builder.add_source(File::with_name(path).required(true));
    }
    builder = builder.add_source(
        Environment::with_prefix("CHAT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("server.trusted_proxies")
            .with_list_parse_key("webrtc.stun_urls")
            .with_list_parse_key("webrtc.turn_urls"),
    );
    let shorthand = |name: &str| std::env::var(name).ok();
    let overrides_list = [
        ("server.port", overrides.port.clone().or_else(|| shorthand("PORT"))),
        ("server.host", overrides.host.clone().or_else(|| shorthand("HOST"))),
        ("redis.url", shorthand("REDIS_URL")),
        ("auth.jwt_secret", shorthand("JWT_SECRET").filter(|secret| !secret.is_empty())),
    ];
    for (key, value) in overrides_list {
        builder = builder.set_override_option(key, value).map_err(|error| vec![error.to_string()])?;
    }
    let settings: Settings = builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|error| vec![error.to_string()])?;
    settings.validate()?;
    Ok(settings)
}

//! Loads [`Settings`]: embedded defaults, the `CHAT_CONFIG` file, `CHAT__…` variables, then
//! the shorthands `PORT`, `HOST`, `REDIS_URL`, `JWT_SECRET` and command-line overrides.

use chat_http_gateway::Settings;
use config::{Config, Environment, File, FileFormat, Map, Value, ValueKind};

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
    let file = file.map(str::to_owned).or_else(|| {
        std::env::var("CHAT_CONFIG")
            .ok()
            .filter(|path| !path.is_empty())
    });
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
        (
            "server.port",
            overrides.port.clone().or_else(|| shorthand("PORT")),
        ),
        (
            "server.host",
            overrides.host.clone().or_else(|| shorthand("HOST")),
        ),
        ("redis.url", shorthand("REDIS_URL")),
        (
            "auth.jwt_secret",
            shorthand("JWT_SECRET").filter(|secret| !secret.is_empty()),
        ),
    ];
    for (key, value) in overrides_list {
        builder = builder
            .set_override_option(key, value)
            .map_err(|error| vec![error.to_string()])?;
    }
    let mut tree: Map<String, Value> = builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|error| vec![error.to_string()])?;
    // Bad keys are reported and dropped, so the checks of the other values still run.
    let mut problems = take_bad_keys(&mut tree);
    match Value::new(None, ValueKind::Table(tree)).try_deserialize::<Settings>() {
        Ok(settings) => match settings.validate() {
            Ok(()) if problems.is_empty() => return Ok(settings),
            Ok(()) => {}
            Err(more) => problems.extend(more),
        },
        Err(error) => problems.push(error.to_string()),
    }
    Err(problems)
}

/// Removes from `tree` every unknown section or key, and every value of the wrong type or
/// out of its type's range, and names each: every key is read alone over the defaults, so one
/// bad key hides no other.
fn take_bad_keys(tree: &mut Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    tree.retain(|section, value| {
        let check = |name: &str, alone: Value, problems: &mut Vec<String>| match alone
            .try_deserialize::<Settings>()
        {
            Ok(_) => true,
            Err(error) => {
                problems.push(format!("{name}: {}", without_key(&error.to_string())));
                false
            }
        };
        let ValueKind::Table(table) = &mut value.kind else {
            return check(section, table_of(section, value.clone()), &mut problems);
        };
        if !check(
            section,
            table_of(section, Value::new(None, ValueKind::Table(Map::new()))),
            &mut problems,
        ) {
            return false;
        }
        table.retain(|key, value| {
            check(
                &format!("{section}.{key}"),
                table_of(section, table_of(key, value.clone())),
                &mut problems,
            )
        });
        true
    });
    // Tables iterate in no fixed order; the report does not change between runs.
    problems.sort();
    problems
}

/// `{key: value}`.
fn table_of(key: &str, value: Value) -> Value {
    Value::new(None, ValueKind::Table(Map::from([(key.to_owned(), value)])))
}

/// A message without the `for key …` that the config crate appends (the caller names it).
fn without_key(message: &str) -> &str {
    message.split(" for key `").next().unwrap_or(message)
}

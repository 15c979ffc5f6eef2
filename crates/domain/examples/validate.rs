//! The domain's validation on input you give, as a client would send it: prints the parsed
//! value, or the error with the contract code a client would receive.
//!
//! ```text
//! cargo run -p chat-domain --example validate -- profile '{"username": "Neo_1", "language": "en"}'
//! cargo run -p chat-domain --example validate -- update '{"gender": null}'
//! cargo run -p chat-domain --example validate -- message '{"type": "text", "content": "  hi  "}'
//! cargo run -p chat-domain --example validate -- filters '{"filters": {"language": "any"}}'
//! cargo run -p chat-domain --example validate -- username 'not valid'
//! ```

use chat_domain::{
    ChatPayload, DomainError, GuestUser, Profile, ProfileUpdate, SearchFilters, Timestamp, Username,
};
use serde_json::Value;

const USAGE: &str =
    "usage: validate profile|update|message|filters JSON  or  validate username TEXT";

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let (Some(kind), Some(input)) = (arguments.first(), arguments.get(1)) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    match check(kind, input) {
        Ok(shown) => println!("valid: {shown}"),
        Err(error) => {
            println!("refused ({}): {error}", error.code());
            std::process::exit(1);
        }
    }
}

fn check(kind: &str, input: &str) -> Result<String, DomainError> {
    if kind == "username" {
        return Username::parse(input).map(|name| name.to_string());
    }
    let json: Value = serde_json::from_str(input)
        .map_err(|error| DomainError::invalid(format!("malformed JSON: {error}")))?;
    match kind {
        "profile" => {
            // What `POST /api/guest` does with the body: a new session's owner view.
            let user = GuestUser::new(Profile::from_json(&json)?, Timestamp::now());
            Ok(serde_json::to_string_pretty(&user).unwrap_or_default())
        }
        "update" => ProfileUpdate::from_json(&json).map(|update| format!("{update:?}")),
        "message" => ChatPayload::from_json(&json).map(|payload| format!("{payload:?}")),
        "filters" => SearchFilters::from_payload(Some(&json)).map(|filters| format!("{filters:?}")),
        other => Err(DomainError::invalid(format!(
            "unknown kind {other}; {USAGE}"
        ))),
    }
}

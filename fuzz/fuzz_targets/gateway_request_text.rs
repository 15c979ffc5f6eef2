//! Text a client controls outside bodies: bearer tokens (JWT), signed download queries and
//! `X-Forwarded-For`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        chat_http_gateway::fuzzing::request_text(text);
    }
});

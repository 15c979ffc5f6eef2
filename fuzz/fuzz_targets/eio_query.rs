//! The Engine.IO query string and method checks of every request to the endpoint.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&method, query)) = data.split_first() else {
        return;
    };
    // actix hands the handler the raw query string, which need not be UTF-8 after decoding.
    let query = String::from_utf8_lossy(query);
    let _ = actix_socketio::fuzzing::query(&query, method & 1 == 1);
});

//! A long-polling POST body: the payload decoder, Engine.IO packets, Socket.IO packets (with
//! base64 binary attachments), their dispatch to a connected socket and the acks encoded back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a small maxPayload now and then, so the limit path runs too.
    let Some((&limit, body)) = data.split_first() else {
        return;
    };
    let max_payload = if limit < 16 {
        usize::from(limit) * 8
    } else {
        1_000_000
    };
    let _ = actix_socketio::fuzzing::polling_payload(body, max_payload);
});

//! `POST /api/files`: the multipart form (fields, limits, file name) and the type sniffed from
//! the bytes. The input is the `Content-Type` header, a newline, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|byte| *byte == b'\n') {
        Some(newline) => (&data[..newline], &data[newline + 1..]),
        None => (&b"multipart/form-data; boundary=X"[..], data),
    };
    let _ = chat_http_gateway::fuzzing::upload(content_type, body, 4096);
});

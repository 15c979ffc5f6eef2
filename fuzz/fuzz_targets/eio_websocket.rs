//! A sequence of WebSocket messages on one connection: Engine.IO text packets, Socket.IO
//! packets and the binary frames of their attachments. Messages are separated by 0xFE (never
//! part of UTF-8 text); a segment starting with 0xFD is a binary frame, any other a text frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let messages = data
        .split(|byte| *byte == 0xFE)
        .map(|segment| match segment {
            [0xFD, rest @ ..] => (false, rest),
            text => (true, text),
        });
    let _ = actix_socketio::fuzzing::websocket_messages(messages);
});

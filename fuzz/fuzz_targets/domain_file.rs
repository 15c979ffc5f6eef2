//! Uploaded bytes and names: `file::sniff` (as a file and as a voice note) and
//! `sanitize_filename`.
#![no_main]

use chat_domain::FileType;
use chat_domain::file::{sanitize_filename, sniff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = sniff(data, false);
    if let Ok(voice) = sniff(data, true) {
        assert_eq!(voice.file_type, FileType::Voice);
        assert!(voice.mime.starts_with("audio/"), "{}", voice.mime);
        // Audio, or a WebM container whose tracks the sniffer could not see (MediaRecorder).
        let file = file.as_ref().expect("a voice note is a file too");
        assert!(
            file.file_type == FileType::Audio
                || (file.file_type == FileType::Video && file.mime == "video/webm"),
            "{:?} {}",
            file.file_type,
            file.mime
        );
    }
    let name = String::from_utf8_lossy(data);
    let clean = sanitize_filename(&name);
    assert!(
        !clean.is_empty() && clean.chars().count() <= 128,
        "{clean:?}"
    );
    assert!(
        !clean
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\\' | '/' | ';')),
        "{clean:?}"
    );
    assert!(!clean.starts_with('.'), "{clean:?}");
    assert_eq!(sanitize_filename(&clean), clean, "sanitizing is idempotent");
});

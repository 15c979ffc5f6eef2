//! Uploaded files: their public description and the type judged from their bytes.

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::FileId;
use crate::time::Timestamp;

/// The kind of an uploaded file, judged from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// PNG, JPEG, GIF, WebP, BMP.
    Image,
    /// MP4/QuickTime or WebM/Matroska with a video track.
    Video,
    /// MP3, Ogg, WAV, FLAC, M4A, audio-only WebM.
    Audio,
    /// Audio uploaded as a voice note (with a duration).
    Voice,
    /// PDF, ZIP-based office documents, plain UTF-8 text.
    Document,
}

impl FileType {
    /// The contract's name of the type.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Voice => "voice",
            Self::Document => "document",
        }
    }
}

/// What the server learnt from a file's first bytes: its type and the content type to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// The contract's file type.
    pub file_type: FileType,
    /// The MIME type the file is served with.
    pub mime: &'static str,
}

/// Judges a file from its content (never its name). `head` should hold at least the first
/// 4 KiB when the file is that long. `as_voice` asks for a voice note: the content must then
/// be audio. Unknown or executable content is [`DomainError::UnsupportedType`].
pub fn sniff(head: &[u8], as_voice: bool) -> Result<Sniffed, DomainError> {
    let sniffed = sniff_content(head)
        .ok_or_else(|| DomainError::UnsupportedType("unsupported file type".into()))?;
    if !as_voice {
        return Ok(sniffed);
    }
    match sniffed.file_type {
        FileType::Audio => Ok(Sniffed {
            file_type: FileType::Voice,
            mime: sniffed.mime,
        }),
        // A MediaRecorder WebM without a recognisable track table is still a voice note.
        FileType::Video if sniffed.mime == "video/webm" => Ok(Sniffed {
            file_type: FileType::Voice,
            mime: "audio/webm",
        }),
        _ => Err(DomainError::UnsupportedType(
            "a voice note must be audio".into(),
        )),
    }
}

fn sniff_content(head: &[u8]) -> Option<Sniffed> {
    let found = |file_type, mime| Some(Sniffed { file_type, mime });
    let starts = |prefix: &[u8]| head.starts_with(prefix);
    if starts(b"\x89PNG\r\n\x1a\n") {
        return found(FileType::Image, "image/png");
    }
    if starts(b"\xff\xd8\xff") {
        return found(FileType::Image, "image/jpeg");
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return found(FileType::Image, "image/gif");
    }
    if starts(b"BM") && head.len() > 14 {
        return found(FileType::Image, "image/bmp");
    }
    if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        return found(FileType::Image, "image/webp");
    }
    if starts(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        return found(FileType::Audio, "audio/wav");
    }
    if starts(b"OggS") {
        return found(FileType::Audio, "audio/ogg");
    }
    if starts(b"fLaC") {
        return found(FileType::Audio, "audio/flac");
    }
    if starts(b"ID3") || (head.len() > 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0) {
        return found(FileType::Audio, "audio/mpeg");
    }
    if head.get(4..8) == Some(b"ftyp") {
        let brand = head.get(8..12).unwrap_or_default();
        return match brand {
            b"M4A " | b"M4B " | b"F4A " => found(FileType::Audio, "audio/mp4"),
            b"qt  " => found(FileType::Video, "video/quicktime"),
            _ => found(FileType::Video, "video/mp4"),
        };
    }
    if starts(b"\x1a\x45\xdf\xa3") {
        // EBML (WebM/Matroska): video if any video codec id appears in the header.
        let has = |needle: &[u8]| head.windows(needle.len()).any(|window| window == needle);
        let video = has(b"V_VP8") || has(b"V_VP9") || has(b"V_AV1") || has(b"V_MPEG4");
        let audio = has(b"A_OPUS") || has(b"A_VORBIS");
        return if video || !audio {
            found(FileType::Video, "video/webm")
        } else {
            found(FileType::Audio, "audio/webm")
        };
    }
    if starts(b"%PDF-") {
        return found(FileType::Document, "application/pdf");
    }
    if starts(b"PK\x03\x04") {
        return found(FileType::Document, "application/zip");
    }
    if !head.is_empty() && looks_like_text(head) {
        return found(FileType::Document, "text/plain; charset=utf-8");
    }
    None
}

fn looks_like_text(head: &[u8]) -> bool {
    // The head may cut a multi-byte character in two: only the last three bytes may be partial.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() && head.len() - error.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !text.chars().any(|character| {
        character.is_control() && !matches!(character, '\n' | '\r' | '\t' | '\u{c}')
    })
}

/// Makes a client's file name safe to show and to put in a header: the last path component,
/// without control characters, quotes or backslashes, at most 128 characters; `file` if
/// nothing is left.
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|character| !character.is_control() && !matches!(character, '"' | '\\' | '/' | ';'))
        .take(128)
        .collect();
    // Dots and spaces alternating at the start (`. .name`) all go, or a hidden name survives.
    let trimmed = cleaned
        .trim_start_matches(|character: char| character == '.' || character.is_whitespace())
        .trim_end();
    if trimmed.is_empty() {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A file's public description, as `POST /api/files` returns it and messages carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// `file_<uuid>`.
    pub file_id: FileId,
    /// The sanitized original name.
    pub filename: String,
    /// The type judged from the bytes.
    pub file_type: FileType,
    /// Size in bytes.
    pub file_size: u64,
    /// A signed, short-lived URL to download it.
    pub file_url: String,
    /// Voice notes: length in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// When the file is deleted at the latest.
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &[u8], voice: bool, expected: Option<(FileType, &str)>) {
        let result = sniff(head, voice)
            .ok()
            .map(|sniffed| (sniffed.file_type, sniffed.mime));
        assert_eq!(
            result,
            expected,
            "{:?}",
            String::from_utf8_lossy(&head[..head.len().min(16)])
        );
    }

    #[test]
    fn judges_types_from_bytes() {
        check(
            b"\x89PNG\r\n\x1a\n....",
            false,
            Some((FileType::Image, "image/png")),
        );
        check(
            b"\xff\xd8\xff\xe0",
            false,
            Some((FileType::Image, "image/jpeg")),
        );
        check(b"GIF89a..", false, Some((FileType::Image, "image/gif")));
        check(
            b"RIFF\0\0\0\0WEBPVP8 ",
            false,
            Some((FileType::Image, "image/webp")),
        );
        check(
            b"RIFF\0\0\0\0WAVEfmt ",
            false,
            Some((FileType::Audio, "audio/wav")),
        );
        check(b"OggS\0\x02", true, Some((FileType::Voice, "audio/ogg")));
        check(
            b"\0\0\0\x20ftypisom",
            false,
            Some((FileType::Video, "video/mp4")),
        );
        check(
            b"\0\0\0\x20ftypM4A ",
            false,
            Some((FileType::Audio, "audio/mp4")),
        );
        check(
            b"\x1a\x45\xdf\xa3....A_OPUS....",
            false,
            Some((FileType::Audio, "audio/webm")),
        );
        check(
            b"\x1a\x45\xdf\xa3....V_VP8..A_OPUS",
            false,
            Some((FileType::Video, "video/webm")),
        );
        check(
            b"\x1a\x45\xdf\xa3....A_OPUS....",
            true,
            Some((FileType::Voice, "audio/webm")),
        );
        check(
            b"%PDF-1.7",
            false,
            Some((FileType::Document, "application/pdf")),
        );
        check(
            "hello, wörld\n".as_bytes(),
            false,
            Some((FileType::Document, "text/plain; charset=utf-8")),
        );
    }

    #[test]
    fn rejects_unknown_and_lying_content() {
        check(b"MZ\x90\0\x03\0\0\0", false, None);
        check(b"\x7fELF\x02\x01", false, None);
        check(b"", false, None);
        check(b"\x89PNG\r\n\x1a\n", true, None);
        check(b"%PDF-1.7", true, None);
    }

    #[test]
    fn text_cut_inside_a_character_is_still_text() {
        let text = "é".repeat(10);
        check(
            &text.as_bytes()[..5],
            false,
            Some((FileType::Document, "text/plain; charset=utf-8")),
        );
    }

    #[test]
    fn filenames_lose_paths_and_tricks() {
        for (input, expected) in [
            ("photo.png", "photo.png"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\x\\evil.exe", "evil.exe"),
            ("a\"b;c\r\n.txt", "abc.txt"),
            ("..", "file"),
            (".hidden", "hidden"),
            ("", "file"),
        ] {
            assert_eq!(sanitize_filename(input), expected, "{input:?}");
        }
        assert_eq!(sanitize_filename(&"x".repeat(300)).len(), 128);
    }

    /// Found by the `domain_file` fuzz target: a dot then spaces left the spaces in front, so
    /// sanitizing the result again changed it.
    #[test]
    fn filenames_lose_leading_dots_and_spaces_together() {
        for input in [".           BM", " . . BM", "..\t BM", "\u{3000}.BM  "] {
            let clean = sanitize_filename(input);
            assert_eq!(clean, "BM", "{input:?}");
            assert_eq!(sanitize_filename(&clean), clean);
        }
        assert_eq!(sanitize_filename(". . ."), "file");
    }
}

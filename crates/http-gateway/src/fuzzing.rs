//! Entry points for the fuzz targets (`fuzz/` at the repository root): client bytes through the
//! gateway's own parsing, without a server or a runtime. Not part of the API.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use bytes::Bytes;
use chat_domain::file::sniff;
use chat_domain::{FileId, FileType, Timestamp};
use futures_util::FutureExt;

use crate::auth::TokenService;
use crate::client_ip::client_ip;
use crate::files::{FileSigner, ReceivedUpload, read_upload};
use crate::settings::IpNet;

/// An upload body with its `Content-Type`, read as `POST /api/files` reads it (fields, size
/// limit, file name), then judged by its bytes. Returns the file type it would be stored as.
pub fn upload(content_type: &[u8], body: &[u8], limit: u64) -> Option<FileType> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_bytes(content_type).ok()?,
    );
    // Split in two chunks, so boundaries that straddle reads are covered too.
    let middle = body.len() / 2;
    let chunks = [
        Ok(Bytes::copy_from_slice(&body[..middle])),
        Ok(Bytes::copy_from_slice(&body[middle..])),
    ];
    let payload = futures_util::stream::iter(chunks);
    let ReceivedUpload {
        bytes,
        filename,
        duration,
    } = read_upload(&headers, payload, limit).now_or_never()?.ok()?;
    assert!(!bytes.is_empty() && bytes.len() as u64 <= limit);
    assert!(!filename.is_empty() && HeaderValue::from_str(&filename).is_ok());
    sniff(&bytes[..bytes.len().min(4096)], duration.is_some())
        .ok()
        .map(|sniffed| sniffed.file_type)
}

/// Text a client controls in requests other than bodies: a bearer token, a signed download
/// query and an `X-Forwarded-For` header (read behind a trusted proxy).
pub fn request_text(text: &str) {
    let tokens = TokenService::new(&[7; 32], Duration::from_secs(60));
    let _ = tokens.verify(text);
    let signer = FileSigner::new(&[7; 32], Duration::from_secs(60));
    let _ = signer.verify(&FileId::generate(), text, Timestamp::now());
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(text) {
        headers.insert(header::HeaderName::from_static("x-forwarded-for"), value);
    }
    let proxy: IpNet = match "127.0.0.0/8".parse() {
        Ok(network) => network,
        Err(_) => return,
    };
    let peer = IpAddr::from([127, 0, 0, 1]);
    let _ = client_ip(Some(peer), &headers, &[proxy]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_body_is_read_and_judged() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../a\\\"b.txt\"\r\n\r\nhello\r\n--XX--\r\n";
        assert_eq!(
            upload(b"multipart/form-data; boundary=XX", body, 100),
            Some(FileType::Document)
        );
        assert_eq!(upload(b"multipart/form-data; boundary=XX", body, 2), None);
        assert_eq!(upload(b"text/plain", body, 100), None);
        request_text("1.2.3.4, 127.0.0.1");
    }
}

//! Files and voice notes: upload into the current chat, download through short-lived URLs
//! signed for one viewer.
//!
//! A download URL is `/api/files/{fileId}?u={viewer}&e={expiry}&s={signature}`, where the
//! signature is an HMAC-SHA256 of `fileId:viewer:expiry` with the server's secret. The server
//! checks it, then that the viewer is still a member of the file's open room.

use std::time::Duration;

use actix_multipart::Multipart;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Bytes, BytesMut};
use chat_domain::file::{sanitize_filename, sniff};
use chat_domain::{ErrorCode, FileId, FileInfo, FileType, Timestamp, UserId};
use chat_storage::{FileMeta, FileRefusal, StorageError, StoredFile};
use futures_util::{Stream, StreamExt};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openapi::{AUTH_FAILED, SESSION_GONE, UNAVAILABLE, schemas};
use crate::state::AppState;

/// The longest voice note accepted, in seconds.
const MAX_VOICE_SECS: f64 = 3600.0;

/// Signs and checks download URLs.
#[derive(Clone)]
pub struct FileSigner {
    key: Vec<u8>,
    ttl: Duration,
    /// Where the gateway is mounted (`""` at the root), put before `/api/files`.
    path_prefix: String,
}

impl FileSigner {
    /// A signer with its own key derived from `secret`; URLs live `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        // A key separate from the token key, so a file signature is never a token signature.
        let key = hmac_sha256(secret, b"chat-file-urls").to_vec();
        Self {
            key,
            ttl,
            path_prefix: String::new(),
        }
    }

    /// The same signer, for a gateway mounted under `path_prefix` (e.g. `/chat`): its URLs
    /// start with the prefix.
    pub fn under(mut self, path_prefix: &str) -> Self {
        path_prefix.clone_into(&mut self.path_prefix);
        self
    }

    fn signature(&self, file: &FileId, viewer: &UserId, expiry: i64) -> String {
        URL_SAFE_NO_PAD.encode(hmac_sha256(
            &self.key,
            format!("{file}:{viewer}:{expiry}").as_bytes(),
        ))
    }

    /// The URL `viewer` may download `file` with, valid from `now` for the signer's TTL.
    pub fn url(&self, file: &FileId, viewer: &UserId, now: Timestamp) -> String {
        let expiry = now.plus(self.ttl).as_secs();
        format!(
            "{}/api/files/{file}?u={viewer}&e={expiry}&s={}",
            self.path_prefix,
            self.signature(file, viewer, expiry)
        )
    }

    /// Checks a download query for `file` at `now`; returns the viewer it was signed for.
    pub fn verify(&self, file: &FileId, query: &str, now: Timestamp) -> Option<UserId> {
        let (mut viewer, mut expiry, mut signature) = (None, None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("u", value)) => viewer = UserId::parse(value),
                Some(("e", value)) => expiry = value.parse::<i64>().ok(),
                Some(("s", value)) => signature = Some(value),
                _ => {}
            }
        }
        let (viewer, expiry, signature) = (viewer?, expiry?, signature?);
        if expiry < now.as_secs() {
            return None;
        }
        let expected = self.signature(file, &viewer, expiry);
        constant_time_eq(expected.as_bytes(), signature.as_bytes()).then_some(viewer)
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        // HMAC accepts keys of any length; this arm is never taken.
        Err(_) => [0; 32],
    }
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// The multipart form of `POST /api/files`: only these two fields, once each.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadForm {
    /// The file, at most `FILES__MAX_BYTES`; its type is judged from the bytes (PNG, JPEG, GIF,
    /// WebP, BMP, MP4/QuickTime, WebM, MP3, Ogg, WAV, FLAC, M4A, PDF, ZIP-based documents,
    /// UTF-8 text), never from its name or declared type.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// Makes the upload a voice note of this many seconds; the file must then be audio.
    #[schema(value_type = f64, required = false, exclusive_minimum = 0.0, maximum = 3600.0)]
    pub duration: Option<f64>,
}

/// `201` of `POST /api/files`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUploaded {
    /// The stored file, with a download URL signed for the uploader.
    #[schema(value_type = schemas::FileInfo)]
    pub file: FileInfo,
}

/// The signed query of a download URL, exactly as `fileUrl` carries it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// The viewer the URL was signed for.
    #[param(value_type = schemas::UserId)]
    pub u: String,
    /// Expiry, unix seconds.
    pub e: i64,
    /// The signature: base64url (no padding) of an HMAC-SHA256.
    pub s: String,
}

/// Mounts `/api/files`.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/api/files")
                .route(web::post().to(upload))
                .default_service(web::to(crate::routes::method_not_allowed)),
        )
        .service(
            web::resource("/api/files/{file_id}")
                .route(web::get().to(download))
                .default_service(web::to(crate::routes::method_not_allowed)),
        );
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::TooLarge,
        format!("file must be at most {limit} bytes"),
    )
}

/// Uploads a file or voice note into the caller's current chat.
#[utoipa::path(
    post,
    path = "/api/files",
    tag = "files",
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored until the room closes or `FILES__TTL_SECS` pass.", body = FileUploaded),
        (status = 400, description = "`not_in_chat` (the caller is in no chat), or `invalid_input`: a malformed form, a field other than `file` and `duration`, no or an empty `file`, or a `duration` out of range.", body = schemas::Error),
        (status = 401, description = AUTH_FAILED, body = schemas::Error),
        (status = 404, description = SESSION_GONE, body = schemas::Error),
        (status = 413, description = "`too_large`: the file is over `FILES__MAX_BYTES`, or the room's live files (unexpired, not deleted; counted across every node) would pass `FILES__MAX_ROOM_BYTES`. Nothing is stored.", body = schemas::Error),
        (status = 415, description = "`unsupported_type`: the body is not `multipart/form-data`, or the bytes are of no accepted type (a voice note must be audio).", body = schemas::Error),
        (status = 429, description = "`rate_limited`: over `RATE__UPLOADS_PER_MINUTE` uploads by this user (every attempt counts, counted across every node).", body = schemas::Error,
            headers(("Retry-After" = u64, description = "Seconds until the window resets (at least 1)."))),
        (status = 503, description = "`unavailable`: storage is unreachable, or this node holds `FILES__MAX_TOTAL_BYTES` of files in memory already (until files expire or their rooms close). Nothing is stored.", body = schemas::Error),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub(crate) async fn upload(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let room_id = state
        .hub
        .chat
        .room_of(&user.id)
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::NotInChat, "Not in a chat"))?;
    // Per user, counted in the store (so across every node on Redis); every attempt counts,
    // before its body is read.
    let decision = state
        .store
        .hit_rate_limit(
            &format!("uploads:{}", user.id),
            state.settings.rate.uploads_per_minute,
            Duration::from_secs(60),
        )
        .await?;
    if !decision.allowed {
        state.metrics.rate_limited("uploads");
        state.metrics.http_refused(ErrorCode::RateLimited);
        return Err(ApiError::rate_limited(
            decision.retry_after.as_secs_f64().ceil() as u64,
        ));
    }
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_multipart {
        return Err(ApiError::new(
            ErrorCode::UnsupportedType,
            "Content-Type must be multipart/form-data",
        ));
    }
    let ReceivedUpload {
        bytes,
        filename,
        duration,
    } = read_upload(request.headers(), payload, state.settings.files.max_bytes).await?;
    let sniffed = sniff(&bytes[..bytes.len().min(4096)], duration.is_some())?;
    let now = Timestamp::now();
    let file_id = FileId::generate();
    let expires_at = now.plus(Duration::from_secs(state.settings.files.ttl_secs));
    let meta = FileMeta {
        file_id: file_id.clone(),
        room_id,
        uploader: user.id.clone(),
        filename,
        file_type: sniffed.file_type,
        mime: sniffed.mime.to_owned(),
        size: bytes.len() as u64,
        duration: duration.filter(|_| sniffed.file_type == FileType::Voice),
        expires_at,
    };
    let stored = StoredFile {
        meta: meta.clone(),
        bytes,
    };
    match state.store.put_file(stored).await {
        Ok(()) => {}
        Err(StorageError::FileRefused(FileRefusal::RoomFull { limit })) => {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "this chat's files would pass {limit} bytes: clear the chat or wait until files expire"
                ),
            ));
        }
        Err(StorageError::FileRefused(FileRefusal::MemoryFull { .. })) => {
            tracing::warn!("upload refused: this node's files in memory are at their bound");
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "The server holds too many files right now, please retry later",
            ));
        }
        Err(error) => return Err(error.into()),
    }
    Metrics::bump(&state.metrics.files_uploaded);
    let info = FileInfo {
        file_url: state.signer.url(&file_id, &user.id, now),
        file_id,
        filename: meta.filename,
        file_type: meta.file_type,
        file_size: meta.size,
        duration: meta.duration,
        expires_at,
    };
    Ok(HttpResponse::Created().json(FileUploaded { file: info }))
}

/// The fields of an upload form, as read from the body.
pub(crate) struct ReceivedUpload {
    /// The file's bytes, not empty.
    pub(crate) bytes: Bytes,
    /// The sanitized file name (`file` when none was given).
    pub(crate) filename: String,
    /// The voice note's duration in seconds, for a voice note.
    pub(crate) duration: Option<f64>,
}

/// Reads a `multipart/form-data` body: the fields `file` (at most `limit` bytes) and
/// `duration`, once each, nothing else.
pub(crate) async fn read_upload(
    headers: &HeaderMap,
    payload: impl Stream<Item = Result<Bytes, PayloadError>> + 'static,
    limit: u64,
) -> Result<ReceivedUpload, ApiError> {
    let mut multipart = Multipart::new(headers, payload);
    let (mut file, mut filename, mut duration) = (None::<BytesMut>, String::new(), None::<f64>);
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|_| ApiError::invalid("malformed multipart body"))?;
        let name = field
            .content_disposition()
            .and_then(|disposition| disposition.get_name())
            .unwrap_or_default()
            .to_owned();
        match name.as_str() {
            "file" if file.is_none() => {
                filename = field
                    .content_disposition()
                    .and_then(|disposition| disposition.get_filename())
                    .map(sanitize_filename)
                    .unwrap_or_else(|| "file".into());
                let mut bytes = BytesMut::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(|_| ApiError::invalid("malformed multipart body"))?;
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(too_large(limit));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some(bytes);
            }
            "duration" if duration.is_none() => {
                let mut text = BytesMut::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(|_| ApiError::invalid("malformed multipart body"))?;
                    if text.len() + chunk.len() > 32 {
                        return Err(ApiError::invalid("duration must be a number of seconds"));
                    }
                    text.extend_from_slice(&chunk);
                }
                let seconds = std::str::from_utf8(&text)
                    .ok()
                    .and_then(|text| text.trim().parse::<f64>().ok());
                match seconds {
                    Some(seconds)
                        if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_VOICE_SECS =>
                    {
                        duration = Some(seconds)
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "duration must be a number of seconds from 0 to 3600",
                        ));
                    }
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    "only the fields file and duration are accepted, once each",
                ));
            }
        }
    }
    let bytes = file
        .ok_or_else(|| ApiError::invalid("the field file is required"))?
        .freeze();
    if bytes.is_empty() {
        return Err(ApiError::invalid("the file is empty"));
    }
    Ok(ReceivedUpload {
        bytes,
        filename,
        duration,
    })
}

/// Downloads a file through the URL signed for one viewer, while that viewer is still in the
/// file's open room.
#[utoipa::path(
    get,
    path = "/api/files/{fileId}",
    tag = "files",
    params(("fileId" = String, Path, description = "The file's id, as `fileUrl` names it."), DownloadQuery),
    responses(
        (status = 200, description = "The bytes, with the sniffed content type, `X-Content-Type-Options: nosniff`, a sandboxing `Content-Security-Policy`, and `Content-Disposition` inline for media, attachment otherwise.",
            content(("image/*"), ("video/*"), ("audio/*"), ("application/pdf"), ("application/zip"), ("text/plain"))),
        (status = 403, description = "`forbidden`: the signature is missing or wrong, the URL has expired, or the viewer is no longer in the file's room.", body = schemas::Error),
        (status = 404, description = "`not_found`: no such file, or it has expired or its room has closed.", body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn download(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("File not found");
    let forbidden = || {
        ApiError::new(
            ErrorCode::Forbidden,
            "This link is not valid for you, or has expired",
        )
    };
    let file_id = FileId::parse(&path).ok_or_else(not_found)?;
    let viewer = state
        .signer
        .verify(&file_id, request.query_string(), Timestamp::now())
        .ok_or_else(forbidden)?;
    let file = state
        .store
        .get_file(&file_id)
        .await?
        .ok_or_else(not_found)?;
    if file.meta.expires_at <= Timestamp::now() {
        return Err(not_found());
    }
    if !state.hub.chat.is_member(&file.meta.room_id, &viewer).await {
        return Err(forbidden());
    }
    let inline = matches!(
        file.meta.file_type,
        FileType::Image | FileType::Audio | FileType::Voice | FileType::Video
    );
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        file.meta.filename
    );
    Ok(HttpResponse::Ok()
        .content_type(file.meta.mime.as_str())
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .body(file.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_verify_only_for_their_file_viewer_and_time() {
        let signer = FileSigner::new(b"secret", Duration::from_secs(60));
        let (file, viewer) = (FileId::generate(), UserId::generate());
        let now = Timestamp::now();
        let url = signer.url(&file, &viewer, now);
        let query = url
            .split_once('?')
            .map(|(_, query)| query)
            .unwrap_or_default();
        assert_eq!(signer.verify(&file, query, now), Some(viewer.clone()));
        assert_eq!(
            signer.verify(&FileId::generate(), query, now),
            None,
            "another file"
        );
        assert_eq!(
            signer.verify(&file, query, now.plus(Duration::from_secs(120))),
            None,
            "expired"
        );
        let other = UserId::generate();
        let forged = query.replace(viewer.as_str(), other.as_str());
        assert_eq!(signer.verify(&file, &forged, now), None, "another viewer");
        let resigned = FileSigner::new(b"other", Duration::from_secs(60));
        assert_eq!(resigned.verify(&file, query, now), None, "another key");
        assert_eq!(signer.verify(&file, "", now), None);
    }
}

//! How values are encoded in Redis: sessions and file metadata as JSON.

use chat_domain::{FileId, FileType, GuestUser, RoomId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

use crate::{FileMeta, StorageError, StoreResult};

/// A session as stored.
pub(super) fn encode_session(user: &GuestUser) -> StoreResult<String> {
    serde_json::to_string(user).map_err(|error| {
        StorageError::Corrupt(format!("session {} does not encode: {error}", user.id))
    })
}

/// A stored session.
pub(super) fn decode_session(json: &str) -> StoreResult<GuestUser> {
    serde_json::from_str(json).map_err(|error| StorageError::Corrupt(format!("session: {error}")))
}

/// File metadata as stored.
pub(super) fn encode_meta(meta: &FileMeta) -> StoreResult<String> {
    let record = FileRecord {
        file_id: meta.file_id.clone(),
        room_id: meta.room_id.clone(),
        uploader: meta.uploader.clone(),
        filename: meta.filename.clone(),
        file_type: meta.file_type,
        mime: meta.mime.clone(),
        size: meta.size,
        duration: meta.duration,
        expires_at: meta.expires_at,
    };
    serde_json::to_string(&record).map_err(|error| {
        StorageError::Corrupt(format!("file {} does not encode: {error}", meta.file_id))
    })
}

/// Stored file metadata.
pub(super) fn decode_meta(json: &[u8]) -> StoreResult<FileMeta> {
    let record: FileRecord = serde_json::from_slice(json)
        .map_err(|error| StorageError::Corrupt(format!("file metadata: {error}")))?;
    Ok(FileMeta {
        file_id: record.file_id,
        room_id: record.room_id,
        uploader: record.uploader,
        filename: record.filename,
        file_type: record.file_type,
        mime: record.mime,
        size: record.size,
        duration: record.duration,
        expires_at: record.expires_at,
    })
}

/// [`FileMeta`]'s stored form (the public type stays free of serde).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileRecord {
    file_id: FileId,
    room_id: RoomId,
    uploader: UserId,
    filename: String,
    file_type: FileType,
    mime: String,
    size: u64,
    duration: Option<f64>,
    expires_at: Timestamp,
}

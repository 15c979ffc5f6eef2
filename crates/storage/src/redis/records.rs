//! How values are encoded in Redis: sessions and file metadata as JSON.

use chat_domain::{FileId, FileType, GuestUser, RoomId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

use crate::{FileMeta, SessionPatch, StorageError, StoreResult};

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

/// The fields a patch sets, as a JSON object in the stored session's field names (`null` clears
/// an optional one): merged into the stored session by the patch script.
pub(super) fn encode_patch(patch: &SessionPatch) -> StoreResult<String> {
    fn json<T: Serialize>(value: &T) -> StoreResult<serde_json::Value> {
        serde_json::to_value(value)
            .map_err(|error| StorageError::Corrupt(format!("patch does not encode: {error}")))
    }
    let mut fields = serde_json::Map::new();
    let mut set = |name: &str, value: serde_json::Value| {
        fields.insert(name.to_owned(), value);
    };
    if let Some(now) = &patch.touch {
        set("lastSeen", json(now)?);
    }
    if let Some(username) = &patch.username {
        set("username", json(username)?);
    }
    if let Some(gender) = &patch.gender {
        set("gender", json(gender)?);
    }
    if let Some(language) = &patch.language {
        set("language", json(language)?);
    }
    if let Some(location) = &patch.location {
        set("location", json(location)?);
    }
    if let Some(online) = patch.is_online {
        set("isOnline", online.into());
    }
    if let Some(searching) = patch.is_searching {
        set("isSearching", searching.into());
    }
    if let Some(chat) = &patch.chat {
        set("inChat", chat.is_some().into());
        set("connectedUser", json(chat)?);
    }
    if let Some(socket) = &patch.socket {
        let (socket_id, connected_at) = socket.as_ref().map(|(id, at)| (id, at)).unzip();
        set("socketId", json(&socket_id)?);
        set("connectedAt", json(&connected_at)?);
    }
    if let Some(socket) = &patch.only_if_socket {
        // Not a session field: the patch script takes it out and checks it.
        set(ONLY_IF_SOCKET, json(socket)?);
    }
    if patch.unless_in_chat {
        set(UNLESS_IN_CHAT, true.into());
    }
    Ok(serde_json::Value::Object(fields).to_string())
}

/// The key of an encoded patch that makes it conditional on the session's socket id.
pub(super) const ONLY_IF_SOCKET: &str = "__onlyIfSocket";

/// The key of an encoded patch that makes it conditional on the session being in no chat.
pub(super) const UNLESS_IN_CHAT: &str = "__unlessInChat";

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

#[cfg(test)]
mod tests {
    use chat_domain::{Profile, ProfileField, Username};

    use super::*;

    /// Merging the encoded patch into the stored JSON (what the patch script does) gives what
    /// [`SessionPatch::apply`] gives.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn an_encoded_patch_merges_like_apply() {
        let start = Timestamp::now();
        let mut user = GuestUser::new(Profile::default(), start);
        user.gender = ProfileField::parse("gender", "x").ok();
        user.connected_user = Some(UserId::generate());
        user.in_chat = true;
        user.socket_id = Some("old".into());
        user.connected_at = Some(start);
        let later = start.plus(std::time::Duration::from_secs(3));
        let patches = [
            SessionPatch {
                touch: Some(later),
                username: Username::parse("Renamed").ok(),
                gender: Some(None),
                language: Some(ProfileField::parse("language", "fr").ok()),
                location: Some(ProfileField::parse("location", "Paris").ok()),
                is_online: Some(true),
                is_searching: Some(true),
                chat: Some(None),
                socket: Some(Some(("new".into(), later))),
                only_if_socket: None,
                unless_in_chat: false,
            },
            SessionPatch {
                chat: Some(Some(UserId::generate())),
                socket: Some(None),
                is_online: Some(false),
                ..SessionPatch::default()
            },
            SessionPatch::default(),
        ];
        for patch in patches {
            let mut merged = serde_json::to_value(&user).unwrap();
            let fields: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&encode_patch(&patch).unwrap()).unwrap();
            for (name, value) in fields {
                let object = merged.as_object_mut().unwrap();
                assert!(object.contains_key(&name), "{name} is a stored field");
                object.insert(name, value);
            }
            let mut applied = user.clone();
            patch.apply(&mut applied);
            assert_eq!(
                serde_json::from_value::<GuestUser>(merged).unwrap(),
                applied
            );
        }
    }
}

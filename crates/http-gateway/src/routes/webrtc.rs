//! `GET /api/webrtc/ice-servers`: STUN servers, and TURN servers with TURN REST API
//! credentials when a TURN secret is configured.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chat_domain::Timestamp;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::openapi::{AUTH_FAILED, SESSION_GONE, UNAVAILABLE, schemas};
use crate::state::AppState;

/// `200` of `GET /api/webrtc/ice-servers`, ready for `new RTCPeerConnection({iceServers})`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IceServers {
    /// STUN servers first, then TURN servers (with credentials when a TURN secret is set).
    pub ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid.
    pub ttl: u64,
}

/// One entry of `iceServers`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` or `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN REST username, `<expiry unix seconds>:<userId>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, pattern = "^[0-9]+:guest_[0-9a-f-]{36}$")]
    pub username: Option<String>,
    /// TURN REST credential: base64 of the HMAC-SHA1 of `username` with the shared secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub credential: Option<String>,
}

/// Mounts the route.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/api/webrtc/ice-servers")
            .route(web::get().to(ice_servers))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// TURN REST credentials: `username` = `<expiry>:<userId>`, `credential` = base64 of the
/// HMAC-SHA1 of the username with the shared secret.
pub fn turn_credentials(secret: &[u8], user_id: &str, expiry_secs: i64) -> (String, String) {
    let username = format!("{expiry_secs}:{user_id}");
    let credential = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, credential)
}

/// STUN and TURN servers for a call; TURN credentials in the TURN REST form when a TURN
/// secret is configured.
#[utoipa::path(
    get,
    path = "/api/webrtc/ice-servers",
    tag = "webrtc",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ICE servers.", body = IceServers),
        (status = 401, description = AUTH_FAILED, body = schemas::Error),
        (status = 404, description = SESSION_GONE, body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn ice_servers(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings.webrtc;
    let ttl = settings.turn_credential_ttl_secs;
    let mut servers = Vec::new();
    if !settings.stun_urls.is_empty() {
        servers.push(IceServer {
            urls: settings.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    if !settings.turn_urls.is_empty() {
        let (username, credential) = match &settings.turn_secret {
            Some(secret) => {
                let expiry =
                    Timestamp::now().as_secs() + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
                let (username, credential) =
                    turn_credentials(secret.expose().as_bytes(), user.id.as_str(), expiry);
                (Some(username), Some(credential))
            }
            None => (None, None),
        };
        servers.push(IceServer {
            urls: settings.turn_urls.clone(),
            username,
            credential,
        });
    }
    Ok(HttpResponse::Ok().json(IceServers {
        ice_servers: servers,
        ttl,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_form() {
        // The TURN REST API draft: credential = base64(HMAC-SHA1(secret, username)).
        let (username, credential) = turn_credentials(b"north", "guest_x", 1_700_000_000);
        assert_eq!(username, "1700000000:guest_x");
        let mut mac = Hmac::<Sha1>::new_from_slice(b"north").unwrap_or_else(|_| unreachable!());
        mac.update(b"1700000000:guest_x");
        assert_eq!(credential, STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(
            STANDARD.decode(&credential).map(|bytes| bytes.len()).ok(),
            Some(20)
        );
    }
}

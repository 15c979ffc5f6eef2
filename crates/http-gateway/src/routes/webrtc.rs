//! `GET /api/webrtc/ice-servers`: STUN servers, and TURN servers with TURN REST API
//! credentials when a TURN secret is configured.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chat_domain::Timestamp;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// Mounts the route.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/api/webrtc/ice-servers", web::get().to(ice_servers));
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

async fn ice_servers(state: web::Data<AppState>, AuthUser(user): AuthUser) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings.webrtc;
    let ttl = settings.turn_credential_ttl_secs;
    let mut servers: Vec<Value> = Vec::new();
    if !settings.stun_urls.is_empty() {
        servers.push(json!({ "urls": settings.stun_urls }));
    }
    if !settings.turn_urls.is_empty() {
        match &settings.turn_secret {
            Some(secret) => {
                let expiry = Timestamp::now().as_secs() + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
                let (username, credential) = turn_credentials(secret.expose().as_bytes(), user.id.as_str(), expiry);
                servers.push(json!({"urls": settings.turn_urls, "username": username, "credential": credential}));
            }
            None => servers.push(json!({ "urls": settings.turn_urls })),
        }
    }
    Ok(HttpResponse::Ok().json(json!({"iceServers": servers, "ttl": ttl})))
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
        assert_eq!(STANDARD.decode(&credential).map(|bytes| bytes.len()).ok(), Some(20));
    }
}

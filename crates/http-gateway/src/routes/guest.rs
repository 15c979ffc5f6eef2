//! Guest sessions: create, read, update, refresh, delete.

use actix_web::{HttpRequest, HttpResponse, web};
use chat_domain::{GuestUser, Profile, ProfileUpdate, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::body::read_json;
use crate::client_ip::request_ip;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openapi::{AUTH_FAILED, SESSION_GONE, UNAVAILABLE, schemas};
use crate::state::AppState;

/// The largest JSON body of these routes.
const BODY_LIMIT: usize = 16 * 1024;

/// The body of `POST /api/guest` (optional: no body, or no content type, is `{}`). Unknown
/// fields are refused; `null` means absent.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGuest {
    /// A chosen username; a generated one (`CoolPanda1234`) when absent.
    pub username: Option<schemas::UsernameInput>,
    /// Free-text gender.
    pub gender: Option<schemas::ProfileFieldInput>,
    /// Free-text language.
    pub language: Option<schemas::ProfileFieldInput>,
    /// Free-text location.
    pub location: Option<schemas::ProfileFieldInput>,
    /// The client's device id.
    pub device_id: Option<schemas::ProfileFieldInput>,
}

/// The body of `PATCH /api/guest/me`: the fields to change; `null` clears one (the username
/// cannot be cleared). Unknown fields are refused; no body, or `{}`, changes nothing.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateGuest {
    /// A new username.
    #[schema(required = false)]
    pub username: schemas::UsernameInput,
    /// A new gender, or `null` to clear it.
    pub gender: Option<schemas::ProfileFieldInput>,
    /// A new language, or `null` to clear it.
    pub language: Option<schemas::ProfileFieldInput>,
    /// A new location, or `null` to clear it.
    pub location: Option<schemas::ProfileFieldInput>,
}

/// `201` of `POST /api/guest`: the new session's token and user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionCreated {
    /// The bearer token: an HS256 JWT with `sub`, `sid`, `iat`, `exp`.
    pub token: String,
    /// When the token expires (`SESSION__TTL_SECS` after it was issued).
    #[schema(value_type = schemas::Timestamp)]
    pub expires_at: Timestamp,
    /// The new session's user.
    #[schema(value_type = schemas::GuestUser)]
    pub user: GuestUser,
}

/// `200` of `GET`/`PATCH /api/guest/me`: the caller's user.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEnvelope {
    /// The caller's user, as its owner sees it.
    #[schema(value_type = schemas::GuestUser)]
    pub user: GuestUser,
}

/// `200` of `POST /api/guest/refresh`: a new token for the same session.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRefreshed {
    /// The new bearer token.
    pub token: String,
    /// When it expires.
    #[schema(value_type = schemas::Timestamp)]
    pub expires_at: Timestamp,
}

/// Mounts `/api/guest` routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/api/guest")
                .route(web::post().to(create))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(
            web::resource("/api/guest/me")
                .route(web::get().to(me))
                .route(web::patch().to(update))
                .route(web::delete().to(delete))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(
            web::resource("/api/guest/refresh")
                .route(web::post().to(refresh))
                .default_service(web::to(super::method_not_allowed)),
        );
}

/// Creates a guest session: no sign-up, rate-limited per client address.
#[utoipa::path(
    post,
    path = "/api/guest",
    tag = "guest",
    request_body(content = ref("#/components/schemas/CreateGuest"), content_type = "application/json", description = "Optional: no body, or no `Content-Type`, is `{}`."),
    responses(
        (status = 201, description = "The session, its token and its user.", body = SessionCreated),
        (status = 400, description = "`invalid_input`: malformed JSON, not an object, an unknown field, or a field out of its rules.", body = schemas::Error),
        (status = 413, description = "`too_large`: the body is over 16 KiB.", body = schemas::Error),
        (status = 415, description = "`unsupported_type`: a body whose content type is not JSON.", body = schemas::Error),
        (status = 403, description = "`banned`: this address or `deviceId` is banned; `until` (RFC 3339) says when the ban ends.", body = schemas::Error),
        (status = 429, description = "`rate_limited`: over `RATE__SESSIONS_PER_MINUTE` from this address.", body = schemas::Error,
            headers(("Retry-After" = u64, description = "Seconds until the window resets (at least 1)."))),
        (status = 503, description = "`unavailable`: storage is unreachable; `draining`: this node takes no new sessions (retry on another).", body = schemas::Error),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn create(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        state.metrics.http_refused(chat_domain::ErrorCode::Draining);
        return Err(ApiError::draining());
    }
    let ip = request_ip(&request, &state.settings.server.trusted_proxies);
    // Counted like handshakes: rotating addresses within one IPv6 /64 is one client; the
    // counter is named by the address's mark, never the address.
    let key = format!(
        "guest:{}",
        ip.map(|ip| state.moderation.address_mark(ip))
            .unwrap_or_default()
    );
    let decision = state
        .store
        .hit_rate_limit(
            &key,
            state.settings.rate.sessions_per_minute,
            std::time::Duration::from_secs(60),
        )
        .await?;
    if !decision.allowed {
        state.metrics.rate_limited("sessions");
        state
            .metrics
            .http_refused(chat_domain::ErrorCode::RateLimited);
        return Err(ApiError::rate_limited(
            decision.retry_after.as_secs_f64().ceil() as u64,
        ));
    }
    let body = read_json(&request, payload, BODY_LIMIT).await?;
    let profile = Profile::from_json(&body)?;
    let device = profile.device_id.as_ref().map(|device| device.as_str());
    if let Some(ban) = state.moderation.ban_on_new_session(ip, device).await? {
        state.metrics.http_refused(chat_domain::ErrorCode::Banned);
        return Err(ApiError::banned(ban.until));
    }
    let now = Timestamp::now();
    let user = GuestUser::new(profile, now);
    state.hub.lifecycle.create(&user).await?;
    if let Some(ip) = ip {
        // A ban of this session will cover the address it was created from.
        state.moderation.note_address(&user.id, ip).await?;
    }
    let (token, expires_at) = state.tokens.issue(&user.id, user.session_id, now)?;
    Metrics::bump(&state.metrics.sessions_created);
    tracing::info!(user_id = %user.id, "guest session created");
    Ok(HttpResponse::Created().json(SessionCreated {
        token,
        expires_at,
        user,
    }))
}

/// The caller's user; counts as activity.
#[utoipa::path(
    get,
    path = "/api/guest/me",
    tag = "guest",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's user.", body = UserEnvelope),
        (status = 401, description = AUTH_FAILED, body = schemas::Error),
        (status = 404, description = SESSION_GONE, body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn me(AuthUser(user): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(UserEnvelope { user })
}

/// Changes profile fields; `null` clears one.
#[utoipa::path(
    patch,
    path = "/api/guest/me",
    tag = "guest",
    security(("bearer" = [])),
    request_body(content = ref("#/components/schemas/UpdateGuest"), content_type = "application/json", description = "Optional: no body, or no `Content-Type`, changes nothing."),
    responses(
        (status = 200, description = "The updated user.", body = UserEnvelope),
        (status = 400, description = "`invalid_input`: malformed JSON, not an object, an unknown field, a null username, or a field out of its rules.", body = schemas::Error),
        (status = 401, description = AUTH_FAILED, body = schemas::Error),
        (status = 404, description = SESSION_GONE, body = schemas::Error),
        (status = 413, description = "`too_large`: the body is over 16 KiB.", body = schemas::Error),
        (status = 415, description = "`unsupported_type`: a body whose content type is not JSON.", body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn update(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload, BODY_LIMIT).await?;
    let update = ProfileUpdate::from_json(&body)?;
    let user = state
        .hub
        .lifecycle
        .update_profile(&user.id, update)
        .await?
        .ok_or_else(ApiError::session_not_found)?;
    Ok(HttpResponse::Ok().json(UserEnvelope { user }))
}

/// A new token for the same session, before the current one expires.
#[utoipa::path(
    post,
    path = "/api/guest/refresh",
    tag = "guest",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new token; the old one stays valid until it expires.", body = TokenRefreshed),
        (status = 401, description = AUTH_FAILED, body = schemas::Error),
        (status = 404, description = SESSION_GONE, body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn refresh(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (token, expires_at) = state
        .tokens
        .issue(&user.id, user.session_id, Timestamp::now())?;
    Ok(HttpResponse::Ok().json(TokenRefreshed { token, expires_at }))
}

/// Ends the session: closes its room (the partner gets `room:closed`, `partner_left`),
/// disconnects its socket, deletes it.
#[utoipa::path(
    delete,
    path = "/api/guest/me",
    tag = "guest",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted; the token is useless from now on."),
        (status = 401, description = AUTH_FAILED, body = schemas::Error),
        (status = 404, description = SESSION_GONE, body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    end_session(&state, &user.id).await?;
    tracing::info!(user_id = %user.id, "guest session deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Ends `user`'s session as `DELETE /api/guest/me` does (and the admin API's
/// `POST /admin/users/{userId}/disconnect`): the room closes (the partner gets `room:closed`,
/// `partner_left`), the socket is disconnected wherever it is, the session is deleted.
pub(crate) async fn end_session(state: &AppState, user: &UserId) -> Result<(), ApiError> {
    state
        .hub
        .end_session(user, chat_signaling::SessionEnd::Deleted)
        .await;
    state.hub.lifecycle.delete(user).await?;
    Ok(())
}

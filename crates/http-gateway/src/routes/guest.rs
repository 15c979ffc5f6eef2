//! Guest sessions: create, read, update, refresh, delete.

use actix_web::{HttpRequest, HttpResponse, web};
use chat_domain::{GuestUser, Profile, ProfileUpdate, Timestamp};
use chat_storage::SessionPatch;
use serde_json::json;

use crate::auth::AuthUser;
use crate::body::read_json;
use crate::client_ip::request_ip;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// The largest JSON body of these routes.
const BODY_LIMIT: usize = 16 * 1024;

/// Mounts `/api/guest` routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/api/guest").route(web::post().to(create)).default_service(web::to(super::method_not_allowed)))
        .service(
            web::resource("/api/guest/me")
                .route(web::get().to(me))
                .route(web::patch().to(update))
                .route(web::delete().to(delete))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(web::resource("/api/guest/refresh").route(web::post().to(refresh)).default_service(web::to(super::method_not_allowed)));
}

#[tracing::instrument(skip_all)]
async fn create(request: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ip = request_ip(&request, &state.settings.server.trusted_proxies);
    let key = format!("guest:{}", ip.map(|ip| ip.to_string()).unwrap_or_default());
    let decision = state.store.hit_rate_limit(&key, state.settings.rate.sessions_per_minute, std::time::Duration::from_secs(60)).await?;
    if !decision.allowed {
        Metrics::bump(&state.metrics.rate_limited);
        return Err(ApiError::rate_limited(decision.retry_after.as_secs_f64().ceil() as u64));
    }
    let body = read_json(&request, payload, BODY_LIMIT).await?;
    let profile = Profile::from_json(&body)?;
    let now = Timestamp::now();
    let user = GuestUser::new(profile, now);
    state.store.create(&user).await?;
    let (token, expires_at) = state.tokens.issue(&user.id, user.session_id, now)?;
    Metrics::bump(&state.metrics.sessions_created);
    state.hub.stats.poke();
    tracing::info!(user_id = %user.id, "guest session created");
    Ok(HttpResponse::Created().json(json!({"token": token, "expiresAt": expires_at, "user": user})))
}

async fn me(AuthUser(user): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": user }))
}

async fn update(request: HttpRequest, payload: web::Payload, state: web::Data<AppState>, AuthUser(user): AuthUser) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload, BODY_LIMIT).await?;
    let update = ProfileUpdate::from_json(&body)?;
    let patch = SessionPatch {
        username: update.username,
        gender: update.gender,
        language: update.language,
        location: update.location,
        ..SessionPatch::default()
    };
    let user = state.store.update(&user.id, patch).await?.ok_or_else(ApiError::session_not_found)?;
    state.hub.stats.poke();
    Ok(HttpResponse::Ok().json(json!({ "user": user })))
}

async fn refresh(state: web::Data<AppState>, AuthUser(user): AuthUser) -> Result<HttpResponse, ApiError> {
    let (token, expires_at) = state.tokens.issue(&user.id, user.session_id, Timestamp::now())?;
    Ok(HttpResponse::Ok().json(json!({"token": token, "expiresAt": expires_at})))
}

async fn delete(state: web::Data<AppState>, AuthUser(user): AuthUser) -> Result<HttpResponse, ApiError> {
    state.hub.end_session(&user.id, chat_signaling::SessionEnd::Deleted).await;
    state.store.delete(&user.id).await?;
    state.hub.stats.poke();
    tracing::info!(user_id = %user.id, "guest session deleted");
    Ok(HttpResponse::NoContent().finish())
}

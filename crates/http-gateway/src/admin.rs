//! The operator's API, on a listener of its own: off unless `admin.port` is set, bound to
//! `admin.host` (127.0.0.1 by default), every request (its OpenAPI document included)
//! authenticated by `Authorization: Bearer <admin.token>`.
//!
//! | method path | success |
//! | --- | --- |
//! | `GET /admin/reports?limit=&cursor=` | 200 `{reports, nextCursor}`, newest first |
//! | `GET /admin/bans` | 200 `{bans}`, the bans in force |
//! | `POST /admin/bans` `{userId, secs?, reason?}` | 201 `{ban}`, applied at once ([`moderation::enforce`]) |
//! | `DELETE /admin/bans/{id}` | 204, lifted on every node |
//! | `POST /admin/users/{userId}/disconnect` | 204, the session ends as with `DELETE /api/guest/me` |
//! | `POST /admin/drain` | 202, this node takes no new sessions or sockets and `/readyz` says 503 |
//! | `GET /metrics` | the main port's Prometheus text |
//! | `GET /admin/openapi.json` | this API's OpenAPI 3.1 document ([`openapi`]) |
//!
//! Errors are the REST error shape: a missing token is 401 `auth_required`, a wrong one 401
//! `invalid_token` (checked before anything else, so an unauthenticated caller learns
//! nothing of the routes); unknown paths 404 `not_found`; a known path with another method
//! 405 `method_not_allowed` with `Allow`.

pub mod openapi;

use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use chat_domain::{Ban, BanId, BanSource, Report, ReportId, UserId};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::app::{StartError, bind};
use crate::auth::bearer_token;
use crate::body::read_json;
use crate::error::ApiError;
use crate::moderation;
use crate::openapi::{MethodTable, OpenApiJson, UNAVAILABLE, schemas};
use crate::routes::guest::end_session;
use crate::routes::public::page_query;
use crate::routes::{not_found, refuse_method};
use crate::settings::Settings;
use crate::state::AppState;

/// The reason of an operator's ban that gives none.
pub const DEFAULT_BAN_REASON: &str = "banned by an operator";
/// The longest ban an operator may give at once: 365 days.
pub const MAX_BAN_SECS: u64 = 365 * 24 * 3600;
/// The longest `reason` of an operator's ban, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// The largest body of `POST /admin/bans`.
const BODY_LIMIT: usize = 16 * 1024;
/// The shortest admin token the server accepts.
pub const MIN_TOKEN_BYTES: usize = 32;

/// The admin token, kept only as its HMAC under a key of this process: a presented token is
/// compared by its HMAC, in constant time (`verify_slice`), so neither its content nor its
/// length shows in how long the comparison takes.
#[derive(Clone)]
pub(crate) struct AdminToken {
    key: Vec<u8>,
    tag: Vec<u8>,
}

impl AdminToken {
    /// Keeps `token`.
    pub(crate) fn new(token: &str) -> Self {
        let key = [
            uuid::Uuid::new_v4().into_bytes(),
            uuid::Uuid::new_v4().into_bytes(),
        ]
        .concat();
        // HMAC takes keys of any length; were it to refuse one, no token would match.
        let tag = match Hmac::<Sha256>::new_from_slice(&key) {
            Ok(mut mac) => {
                mac.update(token.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        };
        Self { key, tag }
    }

    /// Whether `presented` is the token.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.tag).is_ok()
    }

    /// Ok for a request carrying the token; else the 401 to answer.
    fn check(&self, request: &HttpRequest) -> Result<(), ApiError> {
        match bearer_token(request)? {
            None => Err(ApiError::auth_required()),
            Some(presented) if self.matches(presented) => Ok(()),
            Some(_) => Err(ApiError::invalid_token()),
        }
    }
}

/// The admin listener, bound, not yet serving.
pub(crate) struct AdminListener {
    address: SocketAddr,
    listener: TcpListener,
    token: AdminToken,
}

impl AdminListener {
    /// Binds `admin.host:admin.port` when a port is set. The token must be set and at least
    /// [`MIN_TOKEN_BYTES`] long (`Settings::validate` says so first, for `chat-server`).
    pub(crate) async fn bind(settings: &Settings) -> Result<Option<Self>, StartError> {
        let Some(port) = settings.admin.port else {
            return Ok(None);
        };
        let token = match &settings.admin.token {
            Some(token) if token.expose().len() >= MIN_TOKEN_BYTES => token.expose(),
            _ => return Err(StartError::AdminToken),
        };
        let address = format!("{}:{port}", settings.admin.host);
        let listener = bind(&address).await.map_err(|source| StartError::Bind {
            address: address.clone(),
            source,
        })?;
        let address = listener
            .local_addr()
            .map_err(|source| StartError::Bind { address, source })?;
        Ok(Some(Self {
            address,
            listener,
            token: AdminToken::new(token),
        }))
    }

    /// The bound address.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// The server of the admin API over `state`, on one worker; it handles no signals (the
    /// application stops it).
    pub(crate) fn serve(self, state: AppState) -> std::io::Result<Server> {
        let settings = state.settings.clone();
        let token = self.token;
        let document = OpenApiJson::of(&openapi::document());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(web::Data::new(token.clone()))
                .app_data(web::Data::new(document.clone()))
                .configure(configure)
                .default_service(web::to(not_found))
                .wrap(from_fn(authenticate))
                .wrap_fn(crate::logging::request_span)
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_grace_secs)
        .client_request_timeout(Duration::from_millis(
            settings.server.client_request_timeout_ms,
        ))
        .client_disconnect_timeout(Duration::from_millis(
            settings.server.client_disconnect_timeout_ms,
        ))
        .listen(self.listener)?
        .run();
        Ok(server)
    }
}

/// Refuses every request without the admin token, before routing.
async fn authenticate(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match request.app_data::<web::Data<AdminToken>>() {
        Some(token) => token.check(request.request()),
        None => Err(ApiError::internal()),
    };
    match verdict {
        Ok(()) => Ok(next.call(request).await?.map_into_left_body()),
        Err(error) => {
            tracing::warn!(code = %error.code(), "admin request refused");
            Ok(request
                .into_response(error.error_response())
                .map_into_right_body())
        }
    }
}

/// Mounts the admin routes.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    config
        .service(resource("/admin/reports").route(web::get().to(reports)))
        .service(
            resource("/admin/bans")
                .route(web::get().to(bans))
                .route(web::post().to(ban)),
        )
        .service(resource("/admin/bans/{id}").route(web::delete().to(lift)))
        .service(resource("/admin/users/{user_id}/disconnect").route(web::post().to(disconnect)))
        .service(resource("/admin/drain").route(web::post().to(drain)))
        .service(resource("/admin/openapi.json").route(web::get().to(openapi_json)))
        .service(resource("/metrics").route(web::get().to(crate::routes::public::metrics)));
}

/// 405 with the methods the admin document gives the path.
async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    static ALLOWED: OnceLock<MethodTable> = OnceLock::new();
    let allowed = ALLOWED.get_or_init(|| MethodTable::of(&openapi::document()));
    let allow = request
        .match_pattern()
        .and_then(|pattern| allowed.allowed(&pattern))
        .unwrap_or("GET");
    refuse_method(allow)
}

/// `200` of `GET /admin/reports`: one page, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportsPage {
    /// Reports, at most `limit`.
    #[schema(value_type = Vec<openapi::Report>)]
    pub reports: Vec<Report>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(value_type = Option<openapi::ReportCursor>, required = true)]
    pub next_cursor: Option<String>,
}

/// `200` of `GET /admin/bans`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanList {
    /// The bans in force, newest first.
    #[schema(value_type = Vec<openapi::Ban>)]
    pub bans: Vec<Ban>,
}

/// `201` of `POST /admin/bans`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanCreated {
    /// The new ban.
    #[schema(value_type = openapi::Ban)]
    pub ban: Ban,
}

/// A report cursor as `GET /admin/reports` hands it out: `<created at, unix ms>_<report id>`.
fn report_cursor(value: &str) -> Option<String> {
    let (millis, id) = value.split_once('_')?;
    let digits =
        !millis.is_empty() && millis.len() <= 18 && millis.bytes().all(|b| b.is_ascii_digit());
    (digits && ReportId::parse(id).is_some()).then(|| value.to_owned())
}

/// Reports, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/admin/reports",
    tag = "moderation",
    params(openapi::ReportsQuery),
    responses(
        (status = 200, description = "One page of reports, newest first.", body = ReportsPage),
        (status = 400, description = "`invalid_input`: `limit` is not a whole number of at least 1, or `cursor` is not a `nextCursor` of this API.", body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn reports(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = page_query(request.query_string(), report_cursor)?;
    let page = state
        .moderation
        .store()
        .reports(limit, cursor.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(ReportsPage {
        reports: page.reports,
        next_cursor: page.next_cursor,
    }))
}

/// The bans in force.
#[utoipa::path(
    get,
    path = "/admin/bans",
    tag = "moderation",
    responses(
        (status = 200, description = "Every ban in force, newest first.", body = BanList),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn bans(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let bans = state
        .moderation
        .store()
        .bans(chat_domain::Timestamp::now())
        .await?;
    Ok(HttpResponse::Ok().json(BanList { bans }))
}

/// A checked `POST /admin/bans` body.
#[derive(Debug, PartialEq, Eq)]
struct BanRequest {
    user: UserId,
    secs: Option<u64>,
    reason: Option<String>,
}

impl BanRequest {
    /// Reads `{userId, secs?, reason?}`: `userId` a user id; `secs` a whole number from 1 to
    /// [`MAX_BAN_SECS`]; `reason` at most [`MAX_REASON_CHARS`] characters, its control
    /// characters dropped and trimmed (nothing left: the default). `null` is absent.
    fn from_json(body: &Value) -> Result<Self, ApiError> {
        let object = body.as_object().ok_or_else(|| {
            ApiError::invalid("the body must be an object {userId, secs?, reason?}")
        })?;
        if let Some(unknown) = object
            .keys()
            .find(|key| !["userId", "secs", "reason"].contains(&key.as_str()))
        {
            let shown = crate::logging::shown(unknown);
            return Err(ApiError::invalid(format!("unknown field {shown}")));
        }
        let user = object
            .get("userId")
            .and_then(Value::as_str)
            .and_then(UserId::parse)
            .ok_or_else(|| ApiError::invalid("userId must be a user id (guest_<uuid>)"))?;
        let secs = match object.get("secs") {
            None | Some(Value::Null) => None,
            Some(secs) => Some(
                secs.as_u64()
                    .or_else(|| {
                        // 60.0 is a whole number too.
                        secs.as_f64()
                            .filter(|secs| {
                                secs.fract() == 0.0 && *secs >= 1.0 && *secs <= MAX_BAN_SECS as f64
                            })
                            .map(|secs| secs as u64)
                    })
                    .filter(|secs| (1..=MAX_BAN_SECS).contains(secs))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "secs must be a whole number from 1 to {MAX_BAN_SECS}"
                        ))
                    })?,
            ),
        };
        let reason = match object.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.chars().count() <= MAX_REASON_CHARS => {
                let cleaned: String = text.chars().filter(|c| !c.is_control()).collect();
                let cleaned = cleaned.trim();
                (!cleaned.is_empty()).then(|| cleaned.to_owned())
            }
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "reason must be a string of at most {MAX_REASON_CHARS} characters"
                )));
            }
        };
        Ok(Self { user, secs, reason })
    }
}

/// Bans a user: their session ends at once (their socket gets `session:banned` and is
/// disconnected, their partner `room:closed` with `partner_banned`), and their id, device and
/// addresses stay banned until the ban ends or is lifted.
#[utoipa::path(
    post,
    path = "/admin/bans",
    tag = "moderation",
    request_body(content = openapi::CreateBan, content_type = "application/json"),
    responses(
        (status = 201, description = "The ban, in force now.", body = BanCreated),
        (status = 400, description = "`invalid_input`: malformed JSON, not an object, an unknown field, or a field out of its rules.", body = schemas::Error),
        (status = 404, description = "`session_not_found`: no live session has this user id.", body = schemas::Error),
        (status = 413, description = "`too_large`: the body is over 16 KiB.", body = schemas::Error),
        (status = 415, description = "`unsupported_type`: a body whose content type is not JSON.", body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn ban(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload, BODY_LIMIT).await?;
    let wanted = BanRequest::from_json(&body)?;
    let user = state
        .store
        .get(&wanted.user)
        .await?
        .ok_or_else(ApiError::session_not_found)?;
    let reason = wanted.reason.as_deref().unwrap_or(DEFAULT_BAN_REASON);
    let ban = state
        .moderation
        .ban(&user, BanSource::Admin, reason, wanted.secs)
        .await?;
    moderation::enforce(&state, &ban).await;
    Ok(HttpResponse::Created().json(BanCreated { ban }))
}

fn ban_not_found() -> ApiError {
    ApiError::not_found("Ban not found")
}

/// Lifts a ban at once, on every node.
#[utoipa::path(
    delete,
    path = "/admin/bans/{id}",
    tag = "moderation",
    params(("id" = openapi::BanId, Path, description = "The ban's `id`.")),
    responses(
        (status = 204, description = "Lifted: its user, device and addresses may come back."),
        (status = 404, description = "`not_found`: no ban in force has this id.", body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn lift(
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = BanId::parse(&id).ok_or_else(ban_not_found)?;
    let lifted = state
        .moderation
        .store()
        .lift(&id)
        .await?
        .ok_or_else(ban_not_found)?;
    tracing::info!(ban_id = %lifted.id, user_id = %lifted.user_id, "ban lifted by an operator");
    Ok(HttpResponse::NoContent().finish())
}

/// Ends a user's session as `DELETE /api/guest/me` does: their partner gets `room:closed`
/// (`partner_left`), their socket is disconnected, the session is deleted.
#[utoipa::path(
    post,
    path = "/admin/users/{userId}/disconnect",
    tag = "moderation",
    params(("userId" = schemas::UserId, Path, description = "The user's id.")),
    responses(
        (status = 204, description = "The session is over."),
        (status = 404, description = "`session_not_found`: no live session has this user id.", body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn disconnect(
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&user).ok_or_else(ApiError::session_not_found)?;
    if state.store.get(&user).await?.is_none() {
        return Err(ApiError::session_not_found());
    }
    end_session(&state, &user).await?;
    tracing::info!(user_id = %user, "session ended by an operator");
    Ok(HttpResponse::NoContent().finish())
}

/// Drains this node: from now on it takes no `POST /api/guest` (503 `draining`) and no new
/// Socket.IO connection, and `/readyz` answers 503 with `draining: true`, so that the proxy
/// sends new traffic elsewhere; chats already on it go on. Until the process restarts.
#[utoipa::path(
    post,
    path = "/admin/drain",
    tag = "operations",
    responses((status = 202, description = "Draining (again, if it already was)."))
)]
pub(crate) async fn drain(state: web::Data<AppState>) -> HttpResponse {
    if !state.draining.swap(true, Ordering::AcqRel) {
        tracing::warn!(
            sockets = state.hub.registry.len(),
            "draining: no new sessions or sockets from now on"
        );
    }
    HttpResponse::Accepted().finish()
}

/// This document.
#[utoipa::path(
    get,
    path = "/admin/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of the admin API.", body = Object, content_type = "application/json"))
)]
pub(crate) async fn openapi_json(document: web::Data<OpenApiJson>) -> HttpResponse {
    document.respond()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_token_matches_itself_only() {
        let token = AdminToken::new("an admin token of thirty-two bytes!");
        assert!(token.matches("an admin token of thirty-two bytes!"));
        for other in [
            "",
            "an admin token of thirty-two bytes",
            "an admin token of thirty-two bytes!!",
            "An admin token of thirty-two bytes!",
        ] {
            assert!(!token.matches(other), "{other:?}");
        }
    }

    #[test]
    fn report_cursors_are_checked() {
        let id = ReportId::generate();
        assert!(report_cursor(&format!("1700000000000_{id}")).is_some());
        for bad in [
            format!("_{id}"),
            format!("+1_{id}"),
            format!("-1_{id}"),
            format!("{}_{id}", "9".repeat(19)),
            "1700000000000_report_x".to_owned(),
            "1700000000000".to_owned(),
            id.to_string(),
        ] {
            assert!(report_cursor(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ban_requests_are_checked() {
        let user = UserId::generate();
        let read = |body: Value| BanRequest::from_json(&body).map_err(|error| error.to_string());
        assert_eq!(
            read(json!({"userId": user.as_str()})),
            Ok(BanRequest {
                user: user.clone(),
                secs: None,
                reason: None
            })
        );
        assert_eq!(
            read(json!({"userId": user.as_str(), "secs": 60.0, "reason": " spam\u{7} ", })),
            Ok(BanRequest {
                user: user.clone(),
                secs: Some(60),
                reason: Some("spam".into())
            })
        );
        assert_eq!(
            read(json!({"userId": user.as_str(), "secs": null, "reason": "  "})),
            Ok(BanRequest {
                user: user.clone(),
                secs: None,
                reason: None
            })
        );
        let long = "é".repeat(MAX_REASON_CHARS);
        assert!(read(json!({"userId": user.as_str(), "reason": long})).is_ok());
        for bad in [
            json!(null),
            json!([]),
            json!({}),
            json!({"userId": "guest_x"}),
            json!({"userId": user.as_str(), "secs": 0}),
            json!({"userId": user.as_str(), "secs": -5}),
            json!({"userId": user.as_str(), "secs": 1.5}),
            json!({"userId": user.as_str(), "secs": MAX_BAN_SECS + 1}),
            json!({"userId": user.as_str(), "secs": "60"}),
            json!({"userId": user.as_str(), "reason": 5}),
            json!({"userId": user.as_str(), "reason": "x".repeat(MAX_REASON_CHARS + 1)}),
            json!({"userId": user.as_str(), "until": "tomorrow"}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
    }
}

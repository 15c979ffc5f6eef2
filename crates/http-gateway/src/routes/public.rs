//! Routes anyone may call: stats, the online list, health, readiness and metrics.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use chat_domain::{PublicUser, Stats, Timestamp, UserId};
use chat_storage::StorageMode;
use serde::Serialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::metrics::{CONTENT_TYPE, Live};
use crate::openapi::{UNAVAILABLE, schemas};
use crate::state::AppState;

/// Default page size of `/api/users/online`.
const DEFAULT_PAGE: usize = 50;
/// Largest page size of `/api/users/online`; larger requests get this many.
const MAX_PAGE: usize = 100;

/// `200` of `GET /api/stats`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsResponse {
    /// The counters.
    #[schema(value_type = schemas::Stats)]
    pub stats: Stats,
    /// When they were read.
    #[schema(value_type = schemas::Timestamp)]
    pub timestamp: Timestamp,
}

/// `200` of `GET /api/users/online`: one page, ordered by user id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnlinePage {
    /// Online users, at most `limit`.
    #[schema(value_type = Vec<schemas::PublicUser>)]
    pub users: Vec<PublicUser>,
    /// Pass as `cursor` for the next page (the last id of this one); `null` on the last page.
    #[schema(value_type = Option<schemas::UserId>, required = true)]
    pub next_cursor: Option<String>,
}

/// The query of `GET /api/users/online`. Other parameters are ignored.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OnlineQuery {
    /// Page size; above 100 (however large) is served as 100; absent or empty means the
    /// default, 50.
    #[param(value_type = Option<Object>, schema_with = page_size, example = 50)]
    pub limit: Option<u64>,
    /// The `nextCursor` of the previous page; absent or empty means the first page.
    #[param(value_type = Option<Object>, schema_with = page_cursor)]
    pub cursor: Option<String>,
}

/// The schema of `limit`: a whole number of at least 1 with no upper bound, or empty.
pub(crate) fn page_size() -> Schema {
    let whole = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1));
    Schema::OneOf(
        OneOfBuilder::new()
            .item(whole)
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(0)),
            )
            .build(),
    )
}

/// The schema of `cursor`: a user id, or empty.
fn page_cursor() -> Object {
    let user_id = "^(?:guest_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$";
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(user_id))
        .build()
}

/// `200` of `GET /healthz`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$", example = "ok")]
    pub status: &'static str,
}

/// Where sessions are stored right now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageName {
    /// Redis is the source of truth.
    Redis,
    /// This process's memory is (no Redis configured, or Redis is away).
    Memory,
}

/// Whether a configured Redis answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    /// It answers.
    Up,
    /// It does not, or none is configured.
    Down,
}

/// This node's bus subscription (the messages other nodes send it), when it is down.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BusState {
    /// Messages published to this node do not arrive.
    Down,
}

/// `200` (or `503`) of `GET /readyz`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    /// Where data is served from now.
    pub storage: StorageName,
    /// Whether Redis answers.
    pub redis: RedisState,
    /// Present only with several nodes, while this node's bus subscription is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<BusState>,
    /// Present, and `true`, only once this node was told to drain (`POST /admin/drain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<bool>, required = false)]
    pub draining: Option<bool>,
}

/// Mounts the public routes.
pub fn configure(config: &mut web::ServiceConfig) {
    let get = |path: &str, route: actix_web::Route| {
        web::resource(path)
            .route(route)
            .default_service(web::to(super::method_not_allowed))
    };
    config
        .service(get("/api/stats", web::get().to(stats)))
        .service(get("/api/users/online", web::get().to(online_users)))
        .service(get("/healthz", web::get().to(healthz)))
        .service(get("/readyz", web::get().to(readyz)))
        .service(get("/metrics", web::get().to(metrics)));
}

/// The service-wide counters.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "public",
    responses(
        (status = 200, description = "The counters, now.", body = StatsResponse),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = Timestamp::now();
    let stats = state.store.stats(now).await?;
    Ok(HttpResponse::Ok().json(StatsResponse {
        stats,
        timestamp: now,
    }))
}

/// Parses `limit` and `cursor` of a paged list (the online list, the admin API's reports):
/// `limit` 1 or more (above [`MAX_PAGE`] served as [`MAX_PAGE`]; absent or empty:
/// [`DEFAULT_PAGE`]), `cursor` what `cursor_of` accepts (absent or empty: the first page).
pub(crate) fn page_query(
    query: &str,
    cursor_of: fn(&str) -> Option<String>,
) -> Result<(usize, Option<String>), ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" if !value.is_empty() => {
                let invalid = || ApiError::invalid("limit must be a whole number from 1 to 100");
                let parsed = match value.parse::<usize>() {
                    Ok(0) => return Err(invalid()),
                    Ok(parsed) => parsed,
                    // A whole number too large for a usize is still one above 100.
                    Err(_) if value.bytes().all(|byte| byte.is_ascii_digit()) => MAX_PAGE,
                    Err(_) => return Err(invalid()),
                };
                limit = parsed.min(MAX_PAGE);
            }
            "cursor" if !value.is_empty() => {
                cursor = Some(cursor_of(value).ok_or_else(|| {
                    ApiError::invalid("cursor is not one this server handed out")
                })?);
            }
            _ => {}
        }
    }
    Ok((limit, cursor))
}

/// A cursor of the online list: a user id.
fn user_cursor(value: &str) -> Option<String> {
    UserId::parse(value).map(|id| id.to_string())
}

/// Online users, a page at a time.
#[utoipa::path(
    get,
    path = "/api/users/online",
    tag = "public",
    params(OnlineQuery),
    responses(
        (status = 200, description = "One page of online users.", body = OnlinePage),
        (status = 400, description = "`invalid_input`: `limit` is not a whole number of at least 1, or `cursor` is not a user id.", body = schemas::Error),
        (status = 503, description = UNAVAILABLE, body = schemas::Error),
    )
)]
pub(crate) async fn online_users(
    request: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = page_query(request.query_string(), user_cursor)?;
    let page = state.store.online_users(limit, cursor.as_deref()).await?;
    Ok(HttpResponse::Ok().json(OnlinePage {
        users: page.users,
        next_cursor: page.next_cursor,
    }))
}

/// Liveness: 200 while the process lives.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process lives.", body = Health)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: where data is served from. With Redis away the node goes on from memory, and
/// says so with 200. Not ready (503), so that a proxy sends new traffic elsewhere, while this
/// node drains (`draining: true`), or while it is cut off from the others although Redis
/// answers (its bus subscription is down). During a Redis outage every node is alone and
/// says so with 200.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "The storage mode and Redis's state (with `bus: \"down\"` during a Redis outage on several nodes).", body = Readiness),
    (status = 503, description = "This node drains (`draining: true`: the admin API's `POST /admin/drain`), or Redis answers but this node's bus subscription is down (`bus: \"down\"`): other nodes cannot reach its users.", body = Readiness),
))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let health = state.store.health();
    let storage = match health.mode {
        StorageMode::Redis => StorageName::Redis,
        StorageMode::Memory => StorageName::Memory,
    };
    let redis = if health.redis_up {
        RedisState::Up
    } else {
        RedisState::Down
    };
    let bus_down = state.hub.chat.bus_health().is_some_and(|bus| !bus.up);
    let draining = state.draining.load(Ordering::Acquire);
    let readiness = Readiness {
        storage,
        redis,
        bus: bus_down.then_some(BusState::Down),
        draining: draining.then_some(true),
    };
    if draining || (bus_down && health.redis_up) {
        HttpResponse::ServiceUnavailable().json(readiness)
    } else {
        HttpResponse::Ok().json(readiness)
    }
}

/// Prometheus metrics of this process.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Counters, gauges and histograms in the Prometheus text format 0.0.4 (the list is in docs/operations.md).", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let live = Live {
        redis_up: state.store.health().redis_up,
        connected_sockets: state.hub.registry.len(),
        local_chats: state.hub.chat.local_chats(),
    };
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(state.metrics.render(live))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: Result<(usize, bool), ()>) {
        let result = page_query(query, user_cursor)
            .map(|(limit, cursor)| (limit, cursor.is_some()))
            .map_err(|_| ());
        assert_eq!(result, expected, "{query}");
    }

    #[test]
    fn page_queries() {
        check("", Ok((50, false)));
        check("limit=10", Ok((10, false)));
        check("limit=1000", Ok((100, false)));
        check("limit=99999999999999999999999999", Ok((100, false)));
        check("limit=0000", Err(()));
        check("limit=", Ok((50, false)));
        check("limit=0", Err(()));
        check("limit=-1", Err(()));
        check("limit=abc", Err(()));
        check(
            "cursor=guest_6f1e8e1a-4e3b-4bd4-9b7c-8f3f3f3f3f3f&limit=5",
            Ok((5, true)),
        );
        check("cursor=../../x", Err(()));
        check("other=1", Ok((50, false)));
    }
}

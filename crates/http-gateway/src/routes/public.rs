//! Routes anyone may call: stats, the online list, health, readiness and metrics.

use actix_web::{HttpResponse, web};
use chat_domain::{Timestamp, UserId};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Default page size of `/api/users/online`.
const DEFAULT_PAGE: usize = 50;
/// Largest page size of `/api/users/online`; larger requests get this many.
const MAX_PAGE: usize = 100;

/// Mounts the public routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/api/stats", web::get().to(stats))
        .route("/api/users/online", web::get().to(online_users))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = Timestamp::now();
    let stats = state.store.stats(now).await?;
    Ok(HttpResponse::Ok().json(json!({"stats": stats, "timestamp": now})))
}

/// Parses `limit` and `cursor` of the online list.
fn page_query(query: &str) -> Result<(usize, Option<String>), ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" if !value.is_empty() => {
                let parsed: usize = value.parse().map_err(|_| ApiError::invalid("limit must be a whole number from 1 to 100"))?;
                if parsed == 0 {
                    return Err(ApiError::invalid("limit must be a whole number from 1 to 100"));
                }
                limit = parsed.min(MAX_PAGE);
            }
            "cursor" if !value.is_empty() => {
                let id = UserId::parse(value).ok_or_else(|| ApiError::invalid("cursor is not one this server handed out"))?;
                cursor = Some(id.to_string());
            }
            _ => {}
        }
    }
    Ok((limit, cursor))
}

async fn online_users(request: actix_web::HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = page_query(request.query_string())?;
    let page = state.store.online_users(limit, cursor.as_deref()).await?;
    Ok(HttpResponse::Ok().json(json!({"users": page.users, "nextCursor": page.next_cursor})))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let health = state.store.health();
    let redis = if health.redis_up { "up" } else { "down" };
    HttpResponse::Ok().json(json!({"storage": health.mode.as_str(), "redis": redis}))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let health = state.store.health();
    let gauges = [("chat_redis_up", "1 when Redis answers.", u64::from(health.redis_up))];
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(&gauges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: Result<(usize, bool), ()>) {
        let result = page_query(query).map(|(limit, cursor)| (limit, cursor.is_some())).map_err(|_| ());
        assert_eq!(result, expected, "{query}");
    }

    #[test]
    fn page_queries() {
        check("", Ok((50, false)));
        check("limit=10", Ok((10, false)));
        check("limit=1000", Ok((100, false)));
        check("limit=", Ok((50, false)));
        check("limit=0", Err(()));
        check("limit=-1", Err(()));
        check("limit=abc", Err(()));
        check("cursor=guest_6f1e8e1a-4e3b-4bd4-9b7c-8f3f3f3f3f3f&limit=5", Ok((5, true)));
        check("cursor=../../x", Err(()));
        check("other=1", Ok((50, false)));
    }
}

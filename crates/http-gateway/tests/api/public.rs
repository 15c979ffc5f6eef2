//! Stats, the online list, health, metrics and unknown routes.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn stats_count_live_sessions() {
    let app = spawn_app().await;
    let before = app.get("/api/stats", None).await.json();
    assert_eq!(before["stats"]["totalUsers"], 0);
    for key in [
        "onlineUsers",
        "activeUsers",
        "availableUsers",
        "connectedUsers",
        "usersInChat",
    ] {
        assert_eq!(before["stats"][key], 0, "{key}");
    }
    assert!(before["timestamp"].as_str().unwrap().ends_with('Z'));
    app.guest(json!({})).await;
    app.guest(json!({})).await;
    let after = app.get("/api/stats", None).await.json();
    assert_eq!(after["stats"]["totalUsers"], 2);
    assert_eq!(after["stats"]["activeUsers"], 2);
}

#[tokio::test]
async fn online_list_validates_its_query() {
    let app = spawn_app().await;
    let page = app.get("/api/users/online?limit=10", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.json(), json!({"users": [], "nextCursor": null}));
    for bad in [
        "/api/users/online?limit=abc",
        "/api/users/online?limit=0",
        "/api/users/online?cursor=../../etc",
    ] {
        let response = app.get(bad, None).await;
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (400, "invalid_input"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status, 200);
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({"storage": "memory", "redis": "down"}))
    );
    app.guest(json!({})).await;
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(text.contains("chat_sessions_created_total 1"), "{text}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let missing = app.get("/api/nope", None).await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );
    for (method, path, allow) in [
        ("PUT", "/api/guest", "POST"),
        ("POST", "/api/guest/me", "GET, PATCH, DELETE"),
        ("POST", "/api/stats", "GET"),
        ("DELETE", "/api/users/online", "GET"),
        ("PUT", "/healthz", "GET"),
        ("POST", "/api/webrtc/ice-servers", "GET"),
        ("DELETE", "/api/files/file_x", "GET"),
        ("POST", "/api/openapi.json", "GET"),
    ] {
        let wrong_method = app.raw(method, path, &[], b"").await;
        assert_eq!(
            (wrong_method.status, wrong_method.error_code().as_str()),
            (405, "method_not_allowed"),
            "{method} {path}"
        );
        assert_eq!(wrong_method.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let app = spawn_app().await;
    let document = app.get("/api/openapi.json", None).await;
    assert_eq!(document.status, 200);
    assert_eq!(document.header("content-type"), Some("application/json"));
    let body = document.json();
    assert_eq!(body["openapi"], "3.1.0");
    assert!(
        body["paths"]["/api/guest/me"]["patch"]["security"].is_array(),
        "{body}"
    );
    assert_eq!(
        body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

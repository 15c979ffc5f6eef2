//! The admin API on its own listener: the token, every route's success and errors, and
//! draining.

use chat_http_gateway::settings::Secret;
use serde_json::{Value, json};

use crate::helpers::{Response, TestApp, spawn_app, spawn_app_with};
use crate::socket::{PollingSocket, pair};

const TOKEN: &str = "admin-token-admin-token-admin-token!";

/// The app with its admin API on a free port, and short Engine.IO pings (polls come back
/// quickly).
async fn spawn() -> TestApp {
    spawn_app_with(|settings| {
        settings.admin.port = Some(0);
        settings.admin.token = Some(Secret::new(TOKEN));
        settings.presence.ping_interval_ms = 300;
        settings.presence.ping_timeout_ms = 5000;
    })
    .await
}

/// An admin request with the right token.
async fn admin(app: &TestApp, method: &str, path: &str, body: Option<&Value>) -> Response {
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    let body = body.map(Value::to_string).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    app.admin()
        .raw(method, path, &headers, body.as_bytes())
        .await
}

fn expect_error(response: &Response, status: u16, code: &str) {
    assert_eq!(
        (response.status, response.error_code().as_str()),
        (status, code),
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

#[tokio::test]
async fn off_unless_a_port_is_set() {
    let app = spawn_app().await;
    assert!(app.admin.is_none());
    // Nor are its routes on the main port.
    let response = app.get("/admin/bans", Some(TOKEN)).await;
    expect_error(&response, 404, "not_found");
}

#[tokio::test]
async fn every_request_needs_the_token() {
    let app = spawn().await;
    assert_ne!(app.admin, Some(app.address));
    let admin_port = app.admin();
    let wrong = format!("Bearer {TOKEN}x");
    let short = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let guest = app.guest(json!({})).await.0;
    let guest = format!("Bearer {guest}");
    for (method, path) in [
        ("GET", "/admin/reports"),
        ("GET", "/admin/bans"),
        ("POST", "/admin/bans"),
        (
            "DELETE",
            "/admin/bans/ban_00000000-0000-4000-8000-000000000000",
        ),
        ("POST", "/admin/drain"),
        ("GET", "/metrics"),
        ("GET", "/admin/openapi.json"),
        ("GET", "/no/such/route"),
    ] {
        let missing = admin_port.raw(method, path, &[], b"").await;
        expect_error(&missing, 401, "auth_required");
        for header in [
            wrong.as_str(),
            short.as_str(),
            guest.as_str(),
            "Basic YWRtaW46YWRtaW4=",
            TOKEN,
            "Bearer",
        ] {
            let refused = admin_port
                .raw(method, path, &[("Authorization", header)], b"")
                .await;
            expect_error(&refused, 401, "invalid_token");
        }
    }
    // Nothing was drained by the refused requests.
    assert_eq!(app.get("/readyz", None).await.status, 200);
    // The right token, any case of the scheme.
    let lower = format!("bearer {TOKEN}");
    let right = admin_port
        .raw(
            "GET",
            "/admin/bans",
            &[("Authorization", lower.as_str())],
            b"",
        )
        .await;
    assert_eq!(right.status, 200);
    assert_eq!(right.json(), json!({"bans": []}));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn().await;
    expect_error(
        &admin(&app, "GET", "/admin/nope", None).await,
        404,
        "not_found",
    );
    // The main port's routes are not on the admin port.
    expect_error(
        &admin(&app, "GET", "/api/stats", None).await,
        404,
        "not_found",
    );
    for (method, path, allow) in [
        ("PUT", "/admin/bans", "GET, POST"),
        ("GET", "/admin/drain", "POST"),
        ("POST", "/admin/reports", "GET"),
        (
            "GET",
            "/admin/bans/ban_00000000-0000-4000-8000-000000000000",
            "DELETE",
        ),
        ("DELETE", "/metrics", "GET"),
    ] {
        let response = admin(&app, method, path, None).await;
        expect_error(&response, 405, "method_not_allowed");
        assert_eq!(response.header("Allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn the_document_and_metrics_are_served() {
    let app = spawn().await;
    let document = admin(&app, "GET", "/admin/openapi.json", None).await;
    assert_eq!(document.status, 200);
    let document = document.json();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/admin/bans"]["post"].is_object());
    app.guest(json!({})).await;
    let metrics = admin(&app, "GET", "/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("Content-Type")
            .is_some_and(|value| value.starts_with("text/plain")),
        "{metrics:?}"
    );
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(text.contains("chat_sessions_created_total 1"), "{text}");
}

#[tokio::test]
async fn reports_are_listed_newest_first_a_page_at_a_time() {
    let app = spawn().await;
    let empty = admin(&app, "GET", "/admin/reports", None).await;
    assert_eq!(
        (empty.status, empty.json()),
        (200, json!({"reports": [], "nextCursor": null}))
    );
    // Three chats, each with one report: nobody reaches the ban threshold.
    let mut reported = Vec::new();
    for details in ["first", "second", "third"] {
        let chat = pair(&app).await;
        chat.sockets[0]
            .emit("user:report", json!({"reason": "spam", "details": details}))
            .await;
        reported.push((chat.ids[0].clone(), chat.ids[1].clone(), details));
        // Its ack is not asked for; the report is visible once listed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let listed = admin(&app, "GET", "/admin/reports?limit=100", None)
                .await
                .json();
            if listed["reports"].as_array().unwrap().len() == reported.len() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{listed}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let first = admin(&app, "GET", "/admin/reports?limit=2", None).await;
    assert_eq!(first.status, 200);
    let first = first.json();
    let page: Vec<&Value> = first["reports"].as_array().unwrap().iter().collect();
    assert_eq!(page.len(), 2, "{first}");
    let (reporter, target, details) = &reported[2];
    assert_eq!(page[0]["reporterId"], reporter.as_str());
    assert_eq!(page[0]["reportedId"], target.as_str());
    assert_eq!(page[0]["details"], *details);
    assert_eq!(page[0]["reason"], "spam");
    assert!(page[0]["id"].as_str().unwrap().starts_with("report_"));
    assert!(page[0]["roomId"].as_str().unwrap().starts_with("room_"));
    assert!(page[0]["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(page[1]["details"], "second");
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = admin(
        &app,
        "GET",
        &format!("/admin/reports?limit=2&cursor={cursor}"),
        None,
    )
    .await
    .json();
    assert_eq!(second["reports"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["reports"][0]["details"], "first");
    assert_eq!(second["nextCursor"], Value::Null);
    // Above 100 is served as 100, as on the online list.
    assert_eq!(
        admin(&app, "GET", "/admin/reports?limit=1000", None)
            .await
            .status,
        200
    );
    for bad in [
        "/admin/reports?limit=0",
        "/admin/reports?limit=-1",
        "/admin/reports?limit=ten",
        "/admin/reports?cursor=nope",
        "/admin/reports?cursor=12_guest_6f1e8e1a-4e3b-4bd4-9b7c-8f3f3f3f3f3f",
    ] {
        expect_error(&admin(&app, "GET", bad, None).await, 400, "invalid_input");
    }
}

#[tokio::test]
async fn an_operators_ban_ends_the_session_holds_and_is_lifted() {
    let app = spawn().await;
    let mut chat = pair(&app).await;
    let (target, partner) = (chat.ids[0].clone(), chat.ids[1].clone());
    let created = admin(
        &app,
        "POST",
        "/admin/bans",
        Some(&json!({"userId": target, "secs": 600})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let ban = created.json()["ban"].clone();
    assert_eq!(ban["userId"], target.as_str());
    assert_eq!(ban["reason"], "banned by an operator");
    assert_eq!(ban["source"], "admin");
    assert!(ban["id"].as_str().unwrap().starts_with("ban_"));
    let created_at = chat_domain::Timestamp::parse_rfc3339(ban["createdAt"].as_str().unwrap());
    let until = chat_domain::Timestamp::parse_rfc3339(ban["until"].as_str().unwrap());
    assert_eq!(
        until.unwrap().as_millis() - created_at.unwrap().as_millis(),
        600_000
    );
    // Its effects: the banned socket is told and closed, the partner's room closes.
    let banned = chat.sockets[0].wait_for("session:banned").await;
    assert_eq!(banned["reason"], "banned by an operator");
    assert_eq!(banned["until"], ban["until"]);
    chat.sockets[0].wait_closed().await;
    let closed = chat.sockets[1].wait_for("room:closed").await;
    assert_eq!(closed["reason"], "partner_banned");
    expect_error(
        &app.get("/api/guest/me", Some(&chat.tokens[0])).await,
        404,
        "session_not_found",
    );
    assert_eq!(
        app.get("/api/guest/me", Some(&chat.tokens[1])).await.status,
        200,
        "{partner} is not banned"
    );
    // It holds: listed, and a new session from the same address is refused.
    let listed = admin(&app, "GET", "/admin/bans", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), json!({ "bans": [ban.clone()] }));
    let refused = app.send_json("POST", "/api/guest", None, &json!({})).await;
    expect_error(&refused, 403, "banned");
    // Lifted: gone from the list, and sessions may be created again.
    let path = format!("/admin/bans/{}", ban["id"].as_str().unwrap());
    let lifted = admin(&app, "DELETE", &path, None).await;
    assert_eq!((lifted.status, lifted.body.len()), (204, 0));
    assert_eq!(
        admin(&app, "GET", "/admin/bans", None).await.json(),
        json!({"bans": []})
    );
    app.guest(json!({})).await;
    // A second lift, and ids that are no ban's, are 404.
    expect_error(&admin(&app, "DELETE", &path, None).await, 404, "not_found");
    for id in [
        "ban_00000000-0000-4000-8000-000000000000",
        "nope",
        "guest_x",
    ] {
        let path = format!("/admin/bans/{id}");
        expect_error(&admin(&app, "DELETE", &path, None).await, 404, "not_found");
    }
}

#[tokio::test]
async fn a_ban_takes_a_reason_and_checks_its_body() {
    let app = spawn().await;
    let (_, user) = app.guest(json!({})).await;
    let user = user["id"].as_str().unwrap().to_owned();
    let unknown = "guest_00000000-0000-4000-8000-000000000000";
    expect_error(
        &admin(
            &app,
            "POST",
            "/admin/bans",
            Some(&json!({"userId": unknown})),
        )
        .await,
        404,
        "session_not_found",
    );
    for bad in [
        json!({}),
        json!({"userId": "guest_x"}),
        json!({"userId": user, "secs": 0}),
        json!({"userId": user, "secs": 400 * 86_400}),
        json!({"userId": user, "secs": "60"}),
        json!({"userId": user, "reason": "x".repeat(201)}),
        json!({"userId": user, "reason": ["spam"]}),
        json!({"userId": user, "until": "never"}),
        json!([user]),
    ] {
        let response = admin(&app, "POST", "/admin/bans", Some(&bad)).await;
        expect_error(&response, 400, "invalid_input");
    }
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "text/plain"),
    ];
    let wrong_type = app
        .admin()
        .raw("POST", "/admin/bans", &headers, b"{}")
        .await;
    expect_error(&wrong_type, 415, "unsupported_type");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let huge = app
        .admin()
        .raw("POST", "/admin/bans", &headers, &vec![b' '; 17 * 1024])
        .await;
    expect_error(&huge, 413, "too_large");
    let malformed = app
        .admin()
        .raw("POST", "/admin/bans", &headers, b"{\"userId\":")
        .await;
    expect_error(&malformed, 400, "invalid_input");
    // None of these banned anyone.
    assert_eq!(
        admin(&app, "GET", "/admin/bans", None).await.json(),
        json!({"bans": []})
    );
    // A reason of the operator's, trimmed; the default length.
    let created = admin(
        &app,
        "POST",
        "/admin/bans",
        Some(&json!({"userId": user, "reason": "  spam links  ", "secs": null})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let ban = created.json()["ban"].clone();
    assert_eq!(ban["reason"], "spam links");
    let created_at = chat_domain::Timestamp::parse_rfc3339(ban["createdAt"].as_str().unwrap());
    let until = chat_domain::Timestamp::parse_rfc3339(ban["until"].as_str().unwrap());
    assert_eq!(
        until.unwrap().as_millis() - created_at.unwrap().as_millis(),
        86_400_000,
        "moderation.ban_secs"
    );
    // The session is over: banning it again is 404.
    expect_error(
        &admin(&app, "POST", "/admin/bans", Some(&json!({"userId": user}))).await,
        404,
        "session_not_found",
    );
}

#[tokio::test]
async fn disconnect_ends_the_session_as_deleting_it_does() {
    let app = spawn().await;
    let mut chat = pair(&app).await;
    let path = format!("/admin/users/{}/disconnect", chat.ids[0]);
    let response = admin(&app, "POST", &path, None).await;
    assert_eq!((response.status, response.body.len()), (204, 0));
    chat.sockets[0].wait_closed().await;
    let closed = chat.sockets[1].wait_for("room:closed").await;
    assert_eq!(closed["reason"], "partner_left");
    expect_error(
        &app.get("/api/guest/me", Some(&chat.tokens[0])).await,
        404,
        "session_not_found",
    );
    assert_eq!(
        app.get("/api/guest/me", Some(&chat.tokens[1])).await.status,
        200
    );
    // Not a ban: the same address may create a session at once.
    app.guest(json!({})).await;
    // Gone now, or never there: 404.
    expect_error(
        &admin(&app, "POST", &path, None).await,
        404,
        "session_not_found",
    );
    for id in ["guest_00000000-0000-4000-8000-000000000000", "nope"] {
        let path = format!("/admin/users/{id}/disconnect");
        expect_error(
            &admin(&app, "POST", &path, None).await,
            404,
            "session_not_found",
        );
    }
}

#[tokio::test]
async fn draining_turns_new_traffic_away_and_lets_chats_go_on() {
    let app = spawn().await;
    let mut chat = pair(&app).await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({"storage": "memory", "redis": "down"}))
    );
    let drained = admin(&app, "POST", "/admin/drain", None).await;
    assert_eq!((drained.status, drained.body.len()), (202, 0));
    // Again: the same answer.
    assert_eq!(admin(&app, "POST", "/admin/drain", None).await.status, 202);
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        (ready.status, ready.json()),
        (
            503,
            json!({"storage": "memory", "redis": "down", "draining": true})
        )
    );
    let refused = app.send_json("POST", "/api/guest", None, &json!({})).await;
    expect_error(&refused, 503, "draining");
    assert!(
        PollingSocket::open(&app).await.is_err(),
        "a new Engine.IO session on a draining node"
    );
    // The chat already here goes on, both ways.
    chat.sockets[0]
        .emit(
            "chat:message",
            json!({"type": "text", "content": "still here?"}),
        )
        .await;
    let message = chat.sockets[1].wait_for("chat:message").await;
    assert_eq!(message["content"], "still here?");
    chat.sockets[1]
        .emit("chat:message", json!({"type": "text", "content": "yes"}))
        .await;
    assert_eq!(
        chat.sockets[0].wait_for("chat:message").await["content"],
        "yes"
    );
    // Existing sessions still work over REST, and the node still lives.
    assert_eq!(
        app.get("/api/guest/me", Some(&chat.tokens[0])).await.status,
        200
    );
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

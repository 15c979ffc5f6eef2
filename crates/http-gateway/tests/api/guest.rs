//! Guest sessions and authentication.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::{SECRET, spawn_app, spawn_app_with};

#[tokio::test]
async fn creating_a_guest_returns_a_token_and_the_owner_view() {
    let app = spawn_app().await;
    let response = app
        .send_json(
            "POST",
            "/api/guest",
            None,
            &json!({"username": "Neo_1", "gender": "female", "language": "en"}),
        )
        .await;
    assert_eq!(response.status, 201);
    let body = response.json();
    let user = &body["user"];
    assert!(user["id"].as_str().unwrap().starts_with("guest_"));
    assert_eq!(user["username"], "Neo_1");
    assert_eq!(user["gender"], "female");
    assert_eq!(user["isOnline"], false);
    assert_eq!(user["socketId"], serde_json::Value::Null);
    for key in [
        "sessionId",
        "isSearching",
        "inChat",
        "connectedUser",
        "location",
        "deviceId",
        "lastSeen",
        "createdAt",
        "connectedAt",
    ] {
        assert!(user.get(key).is_some(), "missing {key}");
    }
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));

    let me = app.get("/api/guest/me", body["token"].as_str()).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["id"], user["id"]);
}

#[tokio::test]
async fn no_body_or_no_content_type_is_an_empty_profile_with_a_generated_name() {
    let app = spawn_app().await;
    for response in [
        app.raw("POST", "/api/guest", &[], b"").await,
        app.raw("POST", "/api/guest", &[], b"{\"username\": 5}")
            .await,
    ] {
        assert_eq!(response.status, 201);
        let name = response.json()["user"]["username"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            name.len() >= 7 && name[name.len() - 4..].chars().all(|c| c.is_ascii_digit()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn bad_profiles_are_refused_with_invalid_input() {
    let app = spawn_app().await;
    for body in [
        json!({"username": "ab"}),
        json!({"username": "x".repeat(25)}),
        json!({"username": "bad name"}),
        json!({"username": "bad\u{7}name"}),
        json!({"username": 42}),
        json!({"gender": ["a"]}),
        json!({"location": "x".repeat(65)}),
        json!({"isAdmin": true}),
        json!([1, 2]),
    ] {
        let response = app.send_json("POST", "/api/guest", None, &body).await;
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (400, "invalid_input"),
            "{body}"
        );
    }
    let malformed = app
        .raw(
            "POST",
            "/api/guest",
            &[("Content-Type", "application/json")],
            b"{not json",
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.error_code().as_str()),
        (400, "invalid_input")
    );
    let wrong_type = app
        .raw(
            "POST",
            "/api/guest",
            &[("Content-Type", "text/plain")],
            b"hello",
        )
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.error_code().as_str()),
        (415, "unsupported_type")
    );
    let huge = vec![b' '; 64 * 1024];
    let too_large = app
        .raw(
            "POST",
            "/api/guest",
            &[("Content-Type", "application/json")],
            &huge,
        )
        .await;
    assert_eq!(
        (too_large.status, too_large.error_code().as_str()),
        (413, "too_large")
    );
}

#[tokio::test]
async fn session_creation_is_rate_limited_per_client_address() {
    let app = spawn_app_with(|settings| settings.rate.sessions_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(app.raw("POST", "/api/guest", &[], b"").await.status, 201);
    }
    let limited = app.raw("POST", "/api/guest", &[], b"").await;
    assert_eq!(
        (limited.status, limited.error_code().as_str()),
        (429, "rate_limited")
    );
    let retry: u64 = limited.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // A forged X-Forwarded-For from an untrusted peer changes nothing.
    let forged = app
        .raw("POST", "/api/guest", &[("X-Forwarded-For", "9.9.9.9")], b"")
        .await;
    assert_eq!(forged.status, 429);
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let app = spawn_app_with(|settings| {
        settings.rate.sessions_per_minute = 1;
        settings.server.trusted_proxies =
            vec![chat_http_gateway::settings::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    assert_eq!(
        app.raw("POST", "/api/guest", &[("X-Forwarded-For", "9.9.9.1")], b"")
            .await
            .status,
        201
    );
    assert_eq!(
        app.raw("POST", "/api/guest", &[("X-Forwarded-For", "9.9.9.2")], b"")
            .await
            .status,
        201
    );
    assert_eq!(
        app.raw("POST", "/api/guest", &[("X-Forwarded-For", "9.9.9.1")], b"")
            .await
            .status,
        429
    );
}

#[tokio::test]
async fn rotating_addresses_within_one_ipv6_64_counts_as_one_client() {
    let app = spawn_app_with(|settings| {
        settings.rate.sessions_per_minute = 2;
        settings.server.trusted_proxies =
            vec![chat_http_gateway::settings::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    let create = |forwarded: &'static str| {
        let app = &app;
        async move {
            app.raw("POST", "/api/guest", &[("X-Forwarded-For", forwarded)], b"")
                .await
                .status
        }
    };
    assert_eq!(create("2001:db8:1:2::1").await, 201);
    assert_eq!(create("2001:db8:1:2::2").await, 201);
    assert_eq!(
        create("2001:db8:1:2:ffff:ffff:ffff:3").await,
        429,
        "a third address of the same /64 is the same client"
    );
    assert_eq!(create("2001:db8:1:3::1").await, 201, "the next /64 is not");
}

#[tokio::test]
async fn authentication_errors_have_the_contract_codes() {
    let app = spawn_app().await;
    let (token, _) = app.guest(json!({})).await;
    let check = |status: u16, code: &'static str| {
        move |response: crate::helpers::Response| {
            assert_eq!(
                (response.status, response.error_code()),
                (status, code.to_owned())
            );
        }
    };
    check(401, "auth_required")(app.get("/api/guest/me", None).await);
    check(401, "invalid_token")(
        app.raw(
            "GET",
            "/api/guest/me",
            &[("Authorization", "Basic abc")],
            b"",
        )
        .await,
    );
    check(401, "invalid_token")(
        app.raw("GET", "/api/guest/me", &[("Authorization", "Bearer")], b"")
            .await,
    );
    check(401, "invalid_token")(app.get("/api/guest/me", Some("not.a.jwt")).await);

    let parts: Vec<&str> = token.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    check(401, "invalid_token")(
        app.get(
            "/api/guest/me",
            Some(&format!("{none_header}.{}.", parts[1])),
        )
        .await,
    );
    let tampered_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"guest_00000000-0000-4000-8000-000000000000","sid":"x","iat":1,"exp":99999999999}"#);
    check(401, "invalid_token")(
        app.get(
            "/api/guest/me",
            Some(&format!("{}.{tampered_claims}.{}", parts[0], parts[2])),
        )
        .await,
    );

    let expired = sign(
        json!({"sub": "guest_00000000-0000-4000-8000-000000000000", "sid": "00000000-0000-4000-8000-000000000000", "iat": 1, "exp": 2}),
    );
    check(401, "token_expired")(app.get("/api/guest/me", Some(&expired)).await);
    let gone = sign(
        json!({"sub": "guest_00000000-0000-4000-8000-000000000000", "sid": "00000000-0000-4000-8000-000000000000", "iat": 1, "exp": 99999999999u64}),
    );
    check(404, "session_not_found")(app.get("/api/guest/me", Some(&gone)).await);
}

fn sign(claims: serde_json::Value) -> String {
    use hmac::{Hmac, Mac};
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    format!(
        "{header}.{payload}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn update_refresh_and_delete() {
    let app = spawn_app().await;
    let (token, user) = app.guest(json!({"gender": "male"})).await;
    let updated = app
        .send_json(
            "PATCH",
            "/api/guest/me",
            Some(&token),
            &json!({"username": "Renamed", "gender": null, "language": "de"}),
        )
        .await;
    assert_eq!(updated.status, 200);
    let body = updated.json();
    assert_eq!(
        (
            body["user"]["username"].as_str(),
            body["user"]["gender"].is_null(),
            body["user"]["language"].as_str()
        ),
        (Some("Renamed"), true, Some("de"))
    );
    let refused = app
        .send_json(
            "PATCH",
            "/api/guest/me",
            Some(&token),
            &json!({"sessionId": "mine"}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (400, "invalid_input")
    );

    let refreshed = app
        .raw(
            "POST",
            "/api/guest/refresh",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .await;
    assert_eq!(refreshed.status, 200);
    let new_token = refreshed.json()["token"].as_str().unwrap().to_owned();
    let me = app.get("/api/guest/me", Some(&new_token)).await.json();
    assert_eq!(me["user"]["id"], user["id"], "same session");

    let deleted = app
        .raw(
            "DELETE",
            "/api/guest/me",
            &[("Authorization", &format!("Bearer {new_token}"))],
            b"",
        )
        .await;
    assert_eq!(deleted.status, 204);
    for stale in [&token, &new_token] {
        let response = app.get("/api/guest/me", Some(stale)).await;
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (404, "session_not_found")
        );
    }
}

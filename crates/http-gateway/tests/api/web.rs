//! The web client: the page and its assets, with their content types and security headers.

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy() {
    let app = spawn_app().await;
    let page = app.get("/", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(page.header("Cache-Control"), Some("no-cache"));
    let policy = page
        .header("Content-Security-Policy")
        .expect("a Content-Security-Policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{directive} missing from {policy}"
        );
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains(r#"<script type="module" src="/app.js"></script>"#),
        "{html}"
    );
    assert!(html.contains(r#"src="/vendor/socket.io.min.js""#));
}

#[tokio::test]
async fn assets_have_their_content_types_and_revalidate() {
    let app = spawn_app().await;
    for (path, content_type, needle) in [
        ("/app.js", "text/javascript; charset=utf-8", "socket"),
        ("/style.css", "text/css; charset=utf-8", ":root"),
        (
            "/vendor/socket.io.min.js",
            "text/javascript; charset=utf-8",
            "Socket.IO v4",
        ),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            response.header("Content-Type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(
            response.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(
            String::from_utf8_lossy(&response.body).contains(needle),
            "{path}"
        );
        let etag = response.header("ETag").expect("an ETag").to_owned();
        let again = app.raw("GET", path, &[("If-None-Match", &etag)], b"").await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
    }
}

#[tokio::test]
async fn head_answers_without_a_body_and_other_methods_are_refused() {
    let app = spawn_app().await;
    let get = app.get("/", None).await;
    let head = app.raw("HEAD", "/", &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        Some(get.body.len().to_string().as_str())
    );
    let post = app.raw("POST", "/", &[], b"").await;
    assert_eq!(
        (post.status, post.error_code().as_str()),
        (405, "method_not_allowed")
    );
    let missing = app.get("/missing.js", None).await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );
}

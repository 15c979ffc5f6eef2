//! The web client: one page and its assets under `web/`, embedded in the binary and served at
//! `/` with a strict Content-Security-Policy (no inline scripts, styles or handlers anywhere).
//!
//! Every asset is answered with its content type, `X-Content-Type-Options: nosniff`, an
//! `ETag` (a hash of the embedded bytes) and `Cache-Control: no-cache`, so browsers revalidate
//! with `If-None-Match` and get a `304` until the binary changes. `HEAD` is answered like
//! `GET` without the body; other methods get the contract's 405.

use std::sync::OnceLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, guard, web};
use sha2::{Digest, Sha256};

/// The page's policy: only this origin's scripts, styles, fonts and connections; images also
/// from `blob:`/`data:` (previews), media also from `blob:`/`mediastream:` (calls, recordings).
/// WebSocket URLs are named explicitly because older browsers do not count them as `'self'`.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                            media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; font-src 'self'; \
                            object-src 'none'; worker-src 'none'; frame-src 'none'; frame-ancestors 'none'; \
                            base-uri 'none'; form-action 'none'";

/// What the page may use of the device: camera and microphone for calls and voice notes, on
/// this origin only; nothing else.
const PERMISSIONS_POLICY: &str =
    "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Whether this is a document (gets the page's security headers).
    page: bool,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../web/index.html"),
        page: true,
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../web/index.html"),
        page: true,
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../web/app.js"),
        page: false,
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../web/style.css"),
        page: false,
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../web/favicon.svg"),
        page: false,
    },
    Asset {
        path: "/vendor/socket.io.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../web/vendor/socket.io.min.js"),
        page: false,
    },
];

/// The strong `ETag` of each asset, computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body);
                let hex: String = digest
                    .iter()
                    .take(12)
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// Mounts the page and its assets.
pub fn configure(config: &mut web::ServiceConfig) {
    for (index, asset) in ASSETS.iter().enumerate() {
        config.service(
            web::resource(asset.path)
                .route(
                    web::route()
                        .guard(guard::Any(guard::Get()).or(guard::Head()))
                        .to(move |request: HttpRequest| serve(index, request)),
                )
                .default_service(web::to(crate::routes::method_not_allowed)),
        );
    }
}

/// Whether an `If-None-Match` header names `etag` (or `*`).
fn matches_etag(request: &HttpRequest, etag: &str) -> bool {
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|candidate| candidate.trim().trim_start_matches("W/"))
        .any(|candidate| candidate == etag || candidate == "*")
}

async fn serve(index: usize, request: HttpRequest) -> HttpResponse {
    let (Some(asset), Some(etag)) = (ASSETS.get(index), etags().get(index)) else {
        return HttpResponse::NotFound().finish();
    };
    let status = if matches_etag(&request, etag) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if asset.page {
        response
            .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header(("Permissions-Policy", PERMISSIONS_POLICY))
            .insert_header(("Cross-Origin-Opener-Policy", "same-origin"));
    }
    if status == StatusCode::NOT_MODIFIED {
        return response.finish();
    }
    // For HEAD, actix-web writes the headers of this body (its length too), not the body.
    response.content_type(asset.content_type).body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline() {
        assert!(!PAGE_CSP.contains("unsafe"), "{PAGE_CSP}");
        assert!(PAGE_CSP.contains("script-src 'self';"));
        assert!(PAGE_CSP.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_page_has_no_inline_script_style_or_handler() {
        let page =
            String::from_utf8_lossy(include_bytes!("../../../web/index.html")).to_lowercase();
        for tag in page.split('<').skip(1) {
            let head = tag.split('>').next().unwrap_or_default();
            if head.starts_with("script") {
                assert!(head.contains("src="), "inline script: <{head}>");
            }
            assert!(!head.starts_with("style"), "inline <style>: <{head}>");
            assert!(
                !head.contains(" style="),
                "inline style attribute: <{head}>"
            );
            assert!(
                !head
                    .split_whitespace()
                    .any(|word| word.starts_with("on") && word.contains('=')),
                "inline handler: <{head}>"
            );
        }
    }

    #[test]
    fn every_asset_has_a_distinct_path_and_an_etag() {
        let mut paths: Vec<_> = ASSETS.iter().map(|asset| asset.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
        assert_eq!(etags().len(), ASSETS.len());
        assert!(etags().iter().all(|etag| etag.len() == 26));
    }
}

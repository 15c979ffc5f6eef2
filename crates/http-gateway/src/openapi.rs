//! The machine-readable REST API: an OpenAPI 3.1 document generated at compile time from the
//! handlers' `#[utoipa::path]` annotations and the response types they serialize, served at
//! `GET /api/openapi.json`.
//!
//! The domain crate knows nothing of OpenAPI (it has no I/O and few dependencies), so
//! [`schemas`] describes its types here, field for field; a test checks that each mirror has
//! exactly the fields the domain type serializes. The Socket.IO side is described by
//! `docs/asyncapi.yaml`.
//!
//! Response types carry `#[serde(deny_unknown_fields)]` although they are only serialized:
//! that is what makes their schemas say `additionalProperties: false`, so a response with a
//! field the document does not name fails the schemathesis run (`make test-schemathesis`).

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The document's description: what the schema alone cannot say.
const DESCRIPTION: &str = "REST side of the anonymous random-chat backend. Every error is \
`{\"error\": {\"code\", \"message\"}}` with the status code listed per operation; a known path with \
another method answers 405 `method_not_allowed` with an `Allow` header, an unknown path 404 \
`not_found`. The live side (Socket.IO v5 at `/socket.io/`) is described by `docs/asyncapi.yaml`.";

/// The 401 of every 🔒 operation.
pub(crate) const AUTH_FAILED: &str = "`auth_required` (no `Authorization` header), `invalid_token` (not a `Bearer` token, or a bad signature, algorithm or shape) or `token_expired`.";
/// The 404 of every 🔒 operation.
pub(crate) const SESSION_GONE: &str =
    "`session_not_found`: the token's session has expired or was deleted.";
/// The 503 of operations that reach the storage.
pub(crate) const UNAVAILABLE: &str =
    "`unavailable`: storage is unreachable and no fallback could answer.";

/// The whole REST API, as `GET /api/openapi.json` serves it.
#[derive(OpenApi)]
#[openapi(
    info(title = "chat-server", description = DESCRIPTION, license(name = "MIT")),
    paths(
        routes::guest::create,
        routes::guest::me,
        routes::guest::update,
        routes::guest::delete,
        routes::guest::refresh,
        routes::public::stats,
        routes::public::online_users,
        routes::public::healthz,
        routes::public::readyz,
        routes::public::metrics,
        routes::cluster::nodes,
        routes::webrtc::ice_servers,
        crate::files::upload,
        crate::files::download,
        openapi_json,
    ),
    components(schemas(routes::guest::CreateGuest, routes::guest::UpdateGuest)),
    modifiers(&BearerScheme),
    tags(
        (name = "guest", description = "Guest sessions: create, read, update, refresh, delete."),
        (name = "public", description = "Counters and the online list, for anyone."),
        (name = "files", description = "Files and voice notes shared inside a chat."),
        (name = "webrtc", description = "ICE servers for calls."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme that the 🔒 operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "The `token` of `POST /api/guest` (an HS256 JWT); `Authorization: Bearer <token>`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document for a gateway mounted under `path_prefix` (`""` for the root): the paths stay
/// as the routes name them, and a server entry names the prefix.
pub fn document(path_prefix: &str) -> utoipa::openapi::OpenApi {
    let mut openapi = ApiDoc::openapi();
    if !path_prefix.is_empty() {
        openapi.servers = Some(vec![Server::new(path_prefix)]);
    }
    openapi
}

/// The methods the document gives the route whose actix pattern is `pattern`, as an `Allow`
/// header says them (`GET, PATCH`). A pattern under a mount prefix matches by its end.
pub(crate) fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOWED: OnceLock<MethodTable> = OnceLock::new();
    ALLOWED
        .get_or_init(|| MethodTable::of(&ApiDoc::openapi()))
        .allowed(pattern)
}

/// The methods of each path of a document, for the `Allow` header of a 405.
pub(crate) struct MethodTable(Vec<(String, String)>);

impl MethodTable {
    /// The table of `openapi`'s paths.
    pub(crate) fn of(openapi: &utoipa::openapi::OpenApi) -> Self {
        let rows = openapi
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods: Vec<&str> = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (path_shape(path), methods.join(", "))
            })
            .collect();
        Self(rows)
    }

    /// The methods of the route whose actix pattern is `pattern` (matched by its end).
    pub(crate) fn allowed(&self, pattern: &str) -> Option<&str> {
        let shape = path_shape(pattern);
        self.0
            .iter()
            .find(|(path, _)| shape.ends_with(path.as_str()))
            .map(|(_, methods)| methods.as_str())
    }
}

/// A path with every `{parameter}` written `{}`: `/api/files/{file_id}` and
/// `/api/files/{fileId}` are the same route.
fn path_shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The serialized document, served as is.
#[derive(Clone)]
pub(crate) struct OpenApiJson(web::Bytes);

impl OpenApiJson {
    /// [`document`] for `path_prefix`, serialized once.
    pub(crate) fn new(path_prefix: &str) -> Self {
        Self::of(&document(path_prefix))
    }

    /// `openapi` serialized once.
    pub(crate) fn of(openapi: &utoipa::openapi::OpenApi) -> Self {
        match openapi.to_json() {
            Ok(json) => Self(json.into()),
            Err(error) => {
                tracing::error!(%error, "could not serialize an OpenAPI document");
                Self(web::Bytes::from_static(b"{}"))
            }
        }
    }

    /// The `200` serving it.
    pub(crate) fn respond(&self) -> HttpResponse {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(self.0.clone())
    }
}

/// Mounts `GET /api/openapi.json`, answering `document` serialized once.
pub(crate) fn configure(config: &mut web::ServiceConfig, document: OpenApiJson) {
    config.service(
        web::resource("/api/openapi.json")
            .app_data(web::Data::new(document))
            .route(web::get().to(openapi_json))
            .default_service(web::to(routes::method_not_allowed)),
    );
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object, content_type = "application/json"))
)]
pub(crate) async fn openapi_json(document: web::Data<OpenApiJson>) -> HttpResponse {
    document.respond()
}

pub mod schemas;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::http::{Method, StatusCode};
    use actix_web::{App, HttpRequest, test as actix_test};
    use chat_domain::{
        ErrorCode, FileId, FileInfo, FileType, GuestUser, Profile, ProfileUpdate, Stats, Timestamp,
    };
    use serde_json::{Value, json};

    use super::*;
    use crate::{Gateway, Settings};

    /// Answers unknown paths with the debug form of the app's resource map, the only view
    /// actix-web gives of the routes it mounted.
    async fn resource_map(request: HttpRequest) -> HttpResponse {
        HttpResponse::Ok().body(format!("{:?}", request.resource_map()))
    }

    /// The path patterns of a resource map's debug form: `Single("/a")` and `List(["/a", "/b"])`.
    fn patterns(debug: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for part in debug.split("patterns: ").skip(1) {
            let end = part.find(')').unwrap_or(part.len());
            for quoted in part[..end].split('"').skip(1).step_by(2) {
                if !quoted.is_empty() {
                    found.insert(quoted.to_owned());
                }
            }
        }
        found
    }

    fn documented() -> Value {
        serde_json::from_str(&document("").to_json().unwrap_or_default()).unwrap_or_default()
    }

    #[actix_web::test]
    async fn every_mounted_route_is_documented() {
        let gateway = Gateway::build(Settings::default())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let app = actix_test::init_service(
            App::new()
                .configure(|config| gateway.configure(config))
                .default_service(web::to(resource_map)),
        )
        .await;
        let debug = actix_test::call_and_read_body(
            &app,
            actix_test::TestRequest::get()
                .uri("/no/such/route")
                .to_request(),
        )
        .await;
        let mounted = patterns(&String::from_utf8_lossy(&debug));
        assert!(
            mounted.contains("/api/guest") && mounted.contains("/api/files/{file_id}"),
            "the resource map's debug form changed: {mounted:?}"
        );

        let paths = documented()["paths"].clone();
        let documented: BTreeSet<(String, String)> = paths
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(path, item)| {
                item.as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(method, _)| (path_shape(path), method.to_uppercase()))
            })
            .collect();
        let mut missing = Vec::new();
        for pattern in mounted
            .iter()
            .filter(|pattern| !pattern.starts_with("/socket.io"))
        {
            let uri = pattern.replace("{file_id}", "file_x");
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ] {
                let response = actix_test::call_service(
                    &app,
                    actix_test::TestRequest::default()
                        .method(method.clone())
                        .uri(&uri)
                        .to_request(),
                )
                .await;
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                // The web client's page and assets are for browsers, not API clients.
                let web_asset = ["text/html", "text/css", "text/javascript", "image/"]
                    .iter()
                    .any(|kind| content_type.starts_with(kind));
                if response.status() == StatusCode::METHOD_NOT_ALLOWED || web_asset {
                    continue;
                }
                if !documented.contains(&(path_shape(pattern), method.to_string())) {
                    missing.push(format!("{method} {pattern}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "mounted but not in the OpenAPI document: {missing:?}"
        );
        assert!(documented.len() >= 14, "{documented:?}");
    }

    /// The property names of a component schema.
    fn properties(name: &str) -> BTreeSet<String> {
        let schema = &documented()["components"]["schemas"][name];
        schema["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .map(|object| object.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn to_json(value: &impl serde::Serialize) -> Value {
        serde_json::to_value(value).unwrap_or_default()
    }

    fn check_mirror<T: for<'de> serde::Deserialize<'de>>(name: &str, domain: Value) {
        assert_eq!(
            properties(name),
            keys(&domain),
            "{name}: the schema and the domain type disagree"
        );
        if let Err(error) = serde_json::from_value::<T>(domain) {
            panic!("{name}: the domain value does not fit the schema's mirror: {error}");
        }
    }

    #[test]
    fn mirrors_have_exactly_the_fields_the_domain_serializes() {
        let mut user = GuestUser::new(
            Profile::from_json(
                &json!({"gender": "f", "language": "en", "location": "Paris", "deviceId": "d"}),
            )
            .unwrap_or_default(),
            Timestamp::now(),
        );
        user.connected_user = Some(chat_domain::UserId::generate());
        user.socket_id = Some("socket".into());
        user.connected_at = Some(Timestamp::now());
        check_mirror::<schemas::GuestUser>("GuestUser", to_json(&user));
        check_mirror::<schemas::PublicUser>("PublicUser", to_json(&user.public()));
        check_mirror::<schemas::Stats>("Stats", to_json(&Stats::default()));
        let file = FileInfo {
            file_id: FileId::generate(),
            filename: "a.ogg".into(),
            file_type: FileType::Voice,
            file_size: 1,
            file_url: "/api/files/x".into(),
            duration: Some(1.5),
            expires_at: Timestamp::now(),
        };
        check_mirror::<schemas::FileInfo>("FileInfo", to_json(&file));
    }

    #[test]
    fn every_error_code_is_in_the_schema() {
        let codes: BTreeSet<String> = documented()["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|code| code.as_str().map(str::to_owned))
            .collect();
        let domain = [
            ErrorCode::InvalidInput,
            ErrorCode::AuthRequired,
            ErrorCode::InvalidToken,
            ErrorCode::TokenExpired,
            ErrorCode::SessionNotFound,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::TooLarge,
            ErrorCode::UnsupportedType,
            ErrorCode::RateLimited,
            ErrorCode::NotInChat,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
            ErrorCode::Banned,
            ErrorCode::Draining,
        ];
        for code in domain
            .iter()
            .map(|code| code.as_str())
            .chain(["method_not_allowed"])
        {
            assert!(codes.contains(code), "{code} missing from ErrorCode");
        }
        assert_eq!(codes.len(), domain.len() + 1);
    }

    #[test]
    fn request_schemas_name_what_the_domain_accepts() {
        for field in properties("CreateGuest") {
            let value = if field == "username" { "Neo_1" } else { "x" };
            assert!(
                Profile::from_json(&json!({ field.as_str(): value })).is_ok(),
                "POST /api/guest refuses {field}"
            );
        }
        for field in properties("UpdateGuest") {
            let value = if field == "username" { "Neo_1" } else { "x" };
            assert!(
                ProfileUpdate::from_json(&json!({ field.as_str(): value })).is_ok(),
                "PATCH /api/guest/me refuses {field}"
            );
        }
    }

    #[test]
    fn a_prefixed_document_names_its_server() {
        let prefixed = serde_json::to_value(document("/chat")).unwrap_or_default();
        assert_eq!(prefixed["servers"][0]["url"], "/chat");
        assert!(documented().get("servers").is_none());
    }
}

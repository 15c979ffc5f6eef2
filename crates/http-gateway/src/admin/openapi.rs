//! The admin API's own OpenAPI 3.1 document, served on the admin listener at
//! `GET /admin/openapi.json` (behind the admin token like every admin route), generated like
//! the public one ([`crate::openapi`]) and sharing its error schema. [`AdminAuth`] puts every
//! operation behind the `admin` bearer scheme and gives each its 401.
//!
//! The domain's moderation types are mirrored here, field for field (a test checks each
//! mirror against what the domain type serializes).

use serde::Deserialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::openapi::schemas;

/// The document's description: what the schema alone cannot say.
const DESCRIPTION: &str = "The operator's API of chat-server, on its own listener \
(`CHAT__ADMIN__HOST`:`CHAT__ADMIN__PORT`, off unless the port is set). Every request, this \
document included, needs `Authorization: Bearer <CHAT__ADMIN__TOKEN>`: without it 401 \
`auth_required`, with another token 401 `invalid_token`, before anything else. Every error is \
`{\"error\": {\"code\", \"message\"}}`; a known path with another method answers 405 \
`method_not_allowed` with an `Allow` header, an unknown path 404 `not_found`.";

/// The 401 of every admin operation.
const ADMIN_AUTH_FAILED: &str = "`auth_required` (no `Authorization` header) or `invalid_token` (not `Bearer <CHAT__ADMIN__TOKEN>`).";

/// The admin API, as `GET /admin/openapi.json` serves it.
#[derive(OpenApi)]
#[openapi(
    info(title = "chat-server admin", description = DESCRIPTION, license(name = "MIT")),
    paths(
        super::reports,
        super::bans,
        super::ban,
        super::lift,
        super::disconnect,
        super::drain,
        crate::routes::public::metrics,
        super::openapi_json,
    ),
    components(schemas(CreateBan)),
    modifiers(&AdminAuth),
    tags(
        (name = "moderation", description = "Reports, bans, ending a session."),
        (name = "operations", description = "Draining this node, metrics and this document."),
    )
)]
pub struct AdminDoc;

/// The admin document.
pub fn document() -> utoipa::openapi::OpenApi {
    AdminDoc::openapi()
}

/// Puts every operation behind the `admin` bearer scheme, with its 401.
pub struct AdminAuth;

impl Modify for AdminAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "`CHAT__ADMIN__TOKEN` (at least 32 bytes); `Authorization: Bearer <token>`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("admin", SecurityScheme::Http(scheme));
        openapi.security = Some(vec![SecurityRequirement::new(
            "admin",
            Vec::<String>::new(),
        )]);
        let refused = ResponseBuilder::new()
            .description(ADMIN_AUTH_FAILED)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| RefOr::T(refused.clone()));
            }
        }
    }
}

/// The query of `GET /admin/reports`. Other parameters are ignored.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportsQuery {
    /// Page size; above 100 (however large) is served as 100; absent or empty means the
    /// default, 50.
    #[param(value_type = Option<Object>, schema_with = crate::routes::public::page_size, example = 50)]
    pub limit: Option<u64>,
    /// The `nextCursor` of the previous page; absent or empty means the first page.
    #[param(value_type = Option<Object>, schema_with = report_cursor_or_empty)]
    pub cursor: Option<String>,
}

/// The pattern of a report cursor, without anchors.
const REPORT_CURSOR: &str =
    "[0-9]{1,18}_report_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/// The schema of `cursor`: a report cursor, or empty.
fn report_cursor_or_empty() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^(?:{REPORT_CURSOR})?$")))
        .build()
}

/// A page cursor of `GET /admin/reports`: the last report's time (unix ms) and id.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^[0-9]{1,18}_report_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    example = "1764781509123_report_3c1f0a2e-9d4b-4e57-8a1c-2b7d6e5f4a39"
)]
pub struct ReportCursor(pub String);

/// A report's id: `report_` followed by a lowercase hyphenated UUID.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^report_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    example = "report_3c1f0a2e-9d4b-4e57-8a1c-2b7d6e5f4a39"
)]
pub struct ReportId(pub String);

/// A ban's id: `ban_` followed by a lowercase hyphenated UUID.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^ban_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    example = "ban_7a2d9c1e-0f3b-4d6a-9e8c-5b4a3f2e1d0c"
)]
pub struct BanId(pub String);

/// A chat room's id: `room_` followed by a lowercase hyphenated UUID.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^room_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    example = "room_1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b"
)]
pub struct RoomId(pub String);

/// Why a user reported a partner.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    /// Unwanted advertising or repeated messages.
    Spam,
    /// Insults, threats, abuse.
    Harassment,
    /// Sexual content.
    Nudity,
    /// The partner seems to be a minor.
    Underage,
    /// Anything else.
    Other,
}

/// Who started a ban.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BanSource {
    /// Enough distinct reporters.
    Reports,
    /// An operator (`POST /admin/bans`).
    Admin,
}

/// A user's report of a partner.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Report {
    /// The report's id.
    pub id: ReportId,
    /// Who reported.
    pub reporter_id: schemas::UserId,
    /// Who was reported.
    pub reported_id: schemas::UserId,
    /// Why.
    pub reason: ReportReason,
    /// What the reporter wrote (at most 500 characters).
    #[schema(required = true, max_length = 500)]
    pub details: Option<String>,
    /// The room they were in.
    #[schema(required = true)]
    pub room_id: Option<RoomId>,
    /// When.
    pub created_at: schemas::Timestamp,
}

/// A ban in force. What it covers besides the user (their device, the addresses they came
/// from) is kept as keyed hashes only, and never shown.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ban {
    /// The ban's id.
    pub id: BanId,
    /// The banned user.
    pub user_id: schemas::UserId,
    /// Why (shown to the banned user).
    pub reason: String,
    /// Who started it.
    pub source: BanSource,
    /// When it started.
    pub created_at: schemas::Timestamp,
    /// When it ends.
    pub until: schemas::Timestamp,
}

/// The body of `POST /admin/bans`. Unknown fields are refused; `null` means absent.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBan {
    /// The user to ban (a live session).
    pub user_id: schemas::UserId,
    /// How long, in seconds, at most 365 days; absent: `CHAT__MODERATION__BAN_SECS`.
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub secs: Option<u64>,
    /// Why, shown to the banned user (control characters dropped, trimmed); absent or blank:
    /// "banned by an operator".
    #[schema(max_length = 200)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::http::StatusCode;
    use actix_web::{App, test as actix_test, web};
    use chat_domain::{Timestamp, UserId};
    use serde_json::{Value, json};

    use super::*;
    use crate::{Gateway, Settings};

    fn documented() -> Value {
        serde_json::to_value(document()).unwrap_or_default()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .map(|object| object.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn check_mirror<T: for<'de> Deserialize<'de>>(name: &str, domain: &impl serde::Serialize) {
        let domain = serde_json::to_value(domain).unwrap_or_default();
        let schema = &documented()["components"]["schemas"][name];
        assert_eq!(keys(&schema["properties"]), keys(&domain), "{name}");
        if let Err(error) = serde_json::from_value::<T>(domain) {
            panic!("{name}: the domain value does not fit the schema's mirror: {error}");
        }
    }

    #[test]
    fn mirrors_have_exactly_the_fields_the_domain_serializes() {
        let report = chat_domain::Report {
            id: chat_domain::ReportId::generate(),
            reporter_id: UserId::generate(),
            reported_id: UserId::generate(),
            reason: chat_domain::ReportReason::Underage,
            details: Some("details".into()),
            room_id: Some(chat_domain::RoomId::generate()),
            created_at: Timestamp::now(),
        };
        check_mirror::<Report>("Report", &report);
        let ban = chat_domain::Ban {
            id: chat_domain::BanId::generate(),
            user_id: UserId::generate(),
            reason: "spam".into(),
            source: chat_domain::BanSource::Reports,
            created_at: Timestamp::now(),
            until: Timestamp::now(),
        };
        check_mirror::<Ban>("Ban", &ban);
        for reason in chat_domain::ReportReason::ALL {
            let _: ReportReason = serde_json::from_value(json!(reason.as_str()))
                .unwrap_or_else(|_| panic!("{reason} is not in ReportReason"));
        }
        let body = &documented()["components"]["schemas"]["CreateBan"]["properties"];
        assert_eq!(body["secs"]["maximum"], json!(super::super::MAX_BAN_SECS));
        assert_eq!(
            body["reason"]["maxLength"],
            json!(super::super::MAX_REASON_CHARS)
        );
    }

    #[test]
    fn every_operation_needs_the_token_and_says_401() {
        let document = documented();
        assert_eq!(document["security"], json!([{"admin": []}]));
        assert_eq!(
            document["components"]["securitySchemes"]["admin"]["scheme"],
            "bearer"
        );
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                assert!(
                    operation["responses"].get("401").is_some(),
                    "{method} {path} has no 401"
                );
            }
        }
    }

    /// The contract's table, plus this document.
    const ROUTES: [(&str, &str); 8] = [
        ("GET", "/admin/reports"),
        ("GET", "/admin/bans"),
        ("POST", "/admin/bans"),
        ("DELETE", "/admin/bans/{id}"),
        ("POST", "/admin/users/{userId}/disconnect"),
        ("POST", "/admin/drain"),
        ("GET", "/metrics"),
        ("GET", "/admin/openapi.json"),
    ];

    #[actix_web::test]
    async fn the_document_names_exactly_the_routes_mounted() {
        let document = documented();
        let named: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(path, item)| {
                keys(item)
                    .into_iter()
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let expected: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(named, expected);

        let gateway = Gateway::build(Settings::default())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let app = actix_test::init_service(
            App::new()
                .app_data(web::Data::new(gateway.state().clone()))
                .app_data(web::Data::new(crate::openapi::OpenApiJson::of(
                    &super::document(),
                )))
                .configure(super::super::configure)
                .default_service(web::to(crate::routes::not_found)),
        )
        .await;
        for (method, path) in ROUTES {
            let uri = path
                .replace("{id}", chat_domain::BanId::generate().as_str())
                .replace("{userId}", UserId::generate().as_str());
            let response = actix_test::call_service(
                &app,
                actix_test::TestRequest::default()
                    .method(method.parse().unwrap_or_default())
                    .uri(&uri)
                    .to_request(),
            )
            .await;
            let status = response.status();
            let body: Value =
                serde_json::from_slice(&actix_test::read_body(response).await).unwrap_or_default();
            let unrouted = body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("No route"));
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && !unrouted,
                "{method} {path}: {status} {body}"
            );
        }
        // Another method on a known path: 405 with what the document allows.
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::put()
                .uri("/admin/bans")
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response
                .headers()
                .get(actix_web::http::header::ALLOW)
                .and_then(|value| value.to_str().ok()),
            Some("GET, POST")
        );
    }
}

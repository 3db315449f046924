//! Builds `/openapi.json` from the route table: every endpoint's path, method, parameters,
//! request body, success answers (with the headers they may carry), the errors it can give
//! (in the error envelope) and the credentials it accepts: a bearer credential, or for a
//! webhook receiver its provider's signature (an `apiKey` scheme in the signature header).
//! Host only.

use std::collections::BTreeMap;

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HeaderBuilder, InfoBuilder, ObjectBuilder, OpenApi,
    OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr, Required, Schema, ServerBuilder, Type,
};
use utoipa::{PartialSchema, ToSchema};

use crate::error::{ErrorEnvelope, CODES};
use crate::http::dispatch::{Documented, RouteTable};
use crate::http::doc::Answer;
use crate::identity::rules::scopes::{Access, Need, Scope, Signer};

/// The security scheme of every credential: a Clerk or HMAC session token, or an API key,
/// each as `Authorization: Bearer ...`.
const BEARER: &str = "bearer";

/// The security scheme of a platform key (`pk_live_...`) as `Authorization: Bearer ...`.
const PLATFORM_KEY: &str = "platform_key";

/// The security scheme of an end-user token from the platform end-user identity instance.
const END_USER_TOKEN: &str = "end_user_token";

/// The security scheme of a site key (`sk_...`) in `X-Site-Key`.
const SITE_KEY: &str = "site_key";

/// The security scheme of a signer's deliveries: `clerk_signature`, `stripe_signature`.
fn signature_scheme(signer: Signer) -> String {
    format!("{}_signature", signer.as_str())
}

/// The document for `table`, as pretty JSON with a trailing newline.
pub fn json(table: &RouteTable) -> String {
    let doc = document(table);
    let mut text = serde_json::to_string_pretty(&doc).expect("the document serialises");
    text.push('\n');
    text
}

/// The document for `table`.
pub fn document(table: &RouteTable) -> OpenApi {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    let error_ref = {
        ErrorEnvelope::schemas(&mut schemas);
        schemas.push((ErrorEnvelope::name().into_owned(), ErrorEnvelope::schema()));
        Ref::from_schema_name(ErrorEnvelope::name())
    };
    let mut paths: BTreeMap<String, Vec<(HttpMethod, utoipa::openapi::path::Operation)>> =
        BTreeMap::new();
    for endpoint in table.documented() {
        let (path, operation) = operation(&endpoint, &mut schemas, &error_ref);
        paths
            .entry(path)
            .or_default()
            .push((http_method(endpoint.method), operation));
    }
    let mut builder = PathsBuilder::new();
    for (path, operations) in paths {
        for (method, operation) in operations {
            builder = builder.path(path.clone(), PathItem::new(method, operation));
        }
    }
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A Clerk session token, an HMAC token, or an API key (`tg_...`). Routes \
                     that need a signed-in session refuse API keys; other routes take a key \
                     holding the scope the route names (usage, keys, billing, admin).",
                ))
                .build(),
        ),
    );
    components = components
        .security_scheme(
            PLATFORM_KEY,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A platform key (`pk_live_...`). On routes that act for an end user it \
                         comes with `X-User-Id` (and optionally `X-User-Plan`).",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            END_USER_TOKEN,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A session token of the platform end-user identity instance whose \
                         claims name the platform (`publicMetadata.platformId`).",
                    ))
                    .build(),
            ),
        );
    components = components.security_scheme(
        SITE_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            crate::sites::rules::KEY_HEADER,
            "A site key (`sk_{slug}_{env}_{random}`): public, bound to the origins its site \
             allows. A browser request must come from one of them; a request without `Origin` \
             is accepted only where the site takes server calls.",
        ))),
    );
    for signer in Signer::ALL {
        components = components.security_scheme(
            signature_scheme(signer),
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                signer.signature_header(),
                signer.scheme(),
            ))),
        );
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Tollgate")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(env!("CARGO_PKG_DESCRIPTION")))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url("/").build()]))
        .paths(builder.build())
        .components(Some(components.build()))
        .build()
}

fn http_method(method: &str) -> HttpMethod {
    match method {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        other => panic!("no OpenAPI method for {other}"),
    }
}

/// `/api/admin/users/:id/credits` -> (`/api/admin/users/{id}/credits`, [`id`]).
fn openapi_path(pattern: &str) -> (String, Vec<&str>) {
    let mut params = Vec::new();
    let path = pattern
        .split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => {
                params.push(name);
                format!("{{{name}}}")
            }
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/");
    (path, params)
}

/// The group an endpoint is listed under: its path's area (`/api/usage/quota` -> `usage`).
fn tag(pattern: &str) -> String {
    let mut segments = pattern.split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next()) {
        (Some("api"), Some(area)) => area.to_owned(),
        (Some(first), _) => first.trim_end_matches(".json").to_owned(),
        (None, _) => "health".to_owned(),
    }
}

fn operation_id(method: &str, pattern: &str) -> String {
    let path: String = pattern
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!(
        "{}{}",
        method.to_ascii_lowercase(),
        path.trim_end_matches('_')
    )
}

fn operation(
    endpoint: &Documented<'_>,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
    error_ref: &Ref,
) -> (String, utoipa::openapi::path::Operation) {
    let doc = endpoint.doc;
    let (path, path_params) = openapi_path(endpoint.pattern);
    let mut op = OperationBuilder::new()
        .operation_id(Some(operation_id(endpoint.method, endpoint.pattern)))
        .tag(tag(endpoint.pattern))
        .summary(Some(doc.summary));

    for name in &path_params {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if let Some(query) = doc.query {
        for parameter in query() {
            op = op.parameter(parameter);
        }
    }
    for (name, description) in &doc.headers {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if let Some(body) = doc.body {
        let schema = body(schemas);
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .required(Some(if doc.body_optional {
                    Required::False
                } else {
                    Required::True
                }))
                .build(),
        ));
    }

    // The headers a success answer may carry.
    let with_headers = |mut response: ResponseBuilder| {
        for (name, description) in &doc.response_headers {
            response = response.header(
                *name,
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some(*description))
                    .build(),
            );
        }
        response
    };
    for answer in &doc.answers {
        match answer {
            Answer::Json(status, schema) => {
                let schema = schema(schemas);
                let mut response = ResponseBuilder::new()
                    .description(status_text(*status))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(schema)).build(),
                    );
                // The same status may also answer another media type (a stream).
                for other in &doc.answers {
                    if let Answer::Media(s, media, _) = other {
                        if s == status {
                            response = response.content(*media, media_content(media));
                        }
                    }
                }
                op = op.response(status.to_string(), with_headers(response));
            }
            Answer::Media(status, media, description) => {
                let json_too = doc
                    .answers
                    .iter()
                    .any(|a| matches!(a, Answer::Json(s, _) if s == status));
                if !json_too {
                    op = op.response(
                        status.to_string(),
                        with_headers(
                            ResponseBuilder::new()
                                .description(*description)
                                .content(*media, media_content(media)),
                        ),
                    );
                }
            }
            Answer::Empty(status, description) => {
                op = op.response(
                    status.to_string(),
                    with_headers(ResponseBuilder::new().description(*description)),
                );
            }
            Answer::Redirect(description) => {
                op = op.response(
                    "302",
                    ResponseBuilder::new().description(*description).header(
                        "Location",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .build(),
                    ),
                );
            }
        }
    }

    for (status, codes) in errors(endpoint, !path_params.is_empty()) {
        let mut response = ResponseBuilder::new()
            .description(format!("{}: {}", status_text(status), codes.join(", ")))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(error_ref.clone()))
                    .build(),
            );
        if status == 429 {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds until the limit lifts"))
                    .build(),
            );
        }
        op = op.response(status.to_string(), response);
    }

    op = match endpoint.access {
        Access::Public => op.securities(Some(Vec::<SecurityRequirement>::new())),
        Access::Signed(signer) => op
            .securities(Some([SecurityRequirement::new::<_, _, &str>(
                signature_scheme(signer),
                [],
            )]))
            .description(Some(format!(
                "Takes only a delivery signed by {}, verified over the raw body before \
                 anything is read or stored; no bearer credential is read. {}",
                signer.as_str(),
                signer.scheme()
            ))),
        Access::Session => {
            op.securities(Some([SecurityRequirement::new::<_, _, &str>(BEARER, [])]))
        }
        Access::Scoped(scope) => op
            .securities(Some([SecurityRequirement::new(
                BEARER,
                [scope_name(scope)],
            )]))
            .description(Some(format!(
                "Takes a session token, or an API key holding the `{}` scope.",
                scope_name(scope)
            ))),
        Access::PlatformKey => op
            .securities(Some([SecurityRequirement::new::<_, _, &str>(
                PLATFORM_KEY,
                [],
            )]))
            .description(Some("Takes a platform key (`pk_live_...`).")),
        Access::EndUser => op
            .securities(Some([
                SecurityRequirement::new::<_, _, &str>(PLATFORM_KEY, []),
                SecurityRequirement::new::<_, _, &str>(END_USER_TOKEN, []),
            ]))
            .description(Some(
                "Acts for one end user of a platform: a platform key with `X-User-Id` (and \
                 optionally `X-User-Plan`), or an end-user token naming the platform. \
                 Operator tokens and API keys are refused.",
            )),
        Access::Portal(need) => op
            .securities(Some([SecurityRequirement::new::<_, _, &str>(BEARER, [])]))
            .description(Some(match need {
                Need::Member => {
                    "Portal: a signed-in session (Clerk, with an active organisation) of a \
                     member of the org, or staff (`?orgId=` names any org). Naming another \
                     org than your own is 403. API keys are refused."
                }
                Need::Admin => {
                    "Portal: an admin of the org (Clerk organisation role `admin`), or staff \
                     (`?orgId=` names any org). API keys are refused."
                }
                Need::Staff => {
                    "Portal: staff only (`STAFF_USER_IDS`, or members of `STAFF_ORG_ID`)."
                }
            })),
        Access::SiteKey => op
            .securities(Some([SecurityRequirement::new::<_, _, &str>(SITE_KEY, [])]))
            .description(Some(
                "Takes a site key in `X-Site-Key` (401 without one): 403 for a malformed or \
                 unknown key, a paused site, an org that is not active, an `Origin` not on the \
                 site's list, or no `Origin` where the site takes no server calls.",
            )),
        Access::SiteKeyOrLegacy => op
            .securities(Some([
                SecurityRequirement::new::<_, _, &str>(SITE_KEY, []),
                SecurityRequirement::default(),
            ]))
            .description(Some(
                "Takes a site key in `X-Site-Key`, as a site-key route does. Without one, \
                 legacy mode serves the request as the site `CHAT_LEGACY_SITE` names (from \
                 one of its origins, or with no `Origin`); 401 while it is unset. 403 for a \
                 malformed or unknown key, a paused site, an org that is not active or an \
                 `Origin` the site does not allow.",
            )),
    };
    if endpoint.access == Access::Session {
        op = op.description(Some(
            "Needs a signed-in session (a Clerk, HMAC or account token); API keys are refused.",
        ));
    }
    (path, op.build())
}

fn scope_name(scope: Scope) -> &'static str {
    scope.as_str()
}

/// The errors an endpoint can give, by status: those every route of its kind can give, and
/// those its description adds.
fn errors(endpoint: &Documented<'_>, has_path_params: bool) -> BTreeMap<u16, Vec<&'static str>> {
    let doc = endpoint.doc;
    let mut codes: Vec<&'static str> = Vec::new();
    if doc.body.is_some() || doc.query.is_some() || has_path_params {
        codes.push("validation_failed");
    }
    if doc.body.is_some() {
        codes.push("payload_too_large");
    }
    match endpoint.access {
        Access::Public => {}
        // A missing or bad signature.
        Access::Signed(_) => codes.push("unauthorized"),
        // upstream_error: verifying a Clerk token may need Clerk's keys, and Clerk may be down.
        Access::Session | Access::Scoped(_) => codes.extend([
            "unauthorized",
            "forbidden",
            "rate_limited",
            "upstream_error",
        ]),
        Access::PlatformKey => codes.push("unauthorized"),
        // validation_failed: staff who name no org; not_found: the org staff named.
        Access::Portal(_) => codes.extend([
            "validation_failed",
            "unauthorized",
            "forbidden",
            "not_found",
            "rate_limited",
            "upstream_error",
        ]),
        Access::SiteKey | Access::SiteKeyOrLegacy => codes.extend(["unauthorized", "forbidden"]),
        // validation_failed: a platform key without a usable X-User-Id, or a stated tier the
        // platform does not have; upstream_error: an end-user token may need its keys.
        Access::EndUser => codes.extend([
            "validation_failed",
            "unauthorized",
            "rate_limited",
            "upstream_error",
        ]),
    }
    // Health paths answer whatever the configuration (they report it); every other path
    // refuses while a setting it needs is unset or invalid.
    if !crate::routes::HEALTH_PATHS.contains(&endpoint.pattern) {
        codes.push("not_configured");
    }
    codes.extend(doc.errors.iter().copied());
    let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for code in codes {
        let status = CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("unknown error code `{code}`"));
        let entry = by_status.entry(status).or_default();
        if !entry.contains(&code) {
            entry.push(code);
        }
    }
    by_status
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Answer",
    }
}

/// A non-JSON body's schema: an event stream's events, text, or bytes.
fn media_content(media: &str) -> utoipa::openapi::Content {
    let schema = if media == "text/event-stream" {
        // Each event, as event-stream readers (and the fuzzer) see it: its name and data.
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("event", ObjectBuilder::new().schema_type(Type::String))
            .property("data", ObjectBuilder::new().schema_type(Type::String))
            .required("data")
    } else if media.starts_with("text/") {
        ObjectBuilder::new().schema_type(Type::String)
    } else {
        ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Binary),
        ))
    };
    ContentBuilder::new().schema(Some(schema)).build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes;

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let generated = json(&routes::table());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/contract/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write openapi.json");
            return;
        }
        assert!(
            super::super::DOCUMENT == generated,
            "src/contract/openapi.json is not what the code generates; run scripts/openapi"
        );
    }

    #[test]
    fn the_documents_operations_are_exactly_the_route_tables() {
        let doc: serde_json::Value =
            serde_json::from_str(&json(&routes::table())).expect("valid JSON");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.to_ascii_uppercase(), path.clone()))
            })
            .collect();
        let table: BTreeSet<(String, String)> = routes::table()
            .endpoints()
            .map(|(method, pattern, _)| (method.to_owned(), openapi_path(pattern).0))
            .collect();
        assert_eq!(documented, table);
    }

    #[test]
    fn every_endpoint_is_described_with_a_success_answer() {
        for endpoint in routes::table().documented() {
            assert!(
                !endpoint.doc.summary.is_empty() && !endpoint.doc.answers.is_empty(),
                "{} {} has no description in routes.rs",
                endpoint.method,
                endpoint.pattern
            );
        }
    }

    #[test]
    fn signed_routes_name_their_signature_and_no_bearer() {
        let doc: serde_json::Value =
            serde_json::from_str(&json(&routes::table())).expect("valid JSON");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["stripe_signature"]["type"], "apiKey");
        assert_eq!(schemes["stripe_signature"]["in"], "header");
        assert_eq!(schemes["stripe_signature"]["name"], "Stripe-Signature");
        assert_eq!(schemes["clerk_signature"]["name"], "svix-signature");
        let stripe = &doc["paths"]["/api/webhooks/stripe"]["post"];
        assert_eq!(
            stripe["security"],
            serde_json::json!([{ "stripe_signature": [] }])
        );
        let clerk = &doc["paths"]["/api/auth/webhook/clerk"]["post"];
        assert_eq!(
            clerk["security"],
            serde_json::json!([{ "clerk_signature": [] }])
        );
        // A bad signature is 401; no caller is looked up, so no 403 or 429.
        for op in [stripe, clerk] {
            assert!(op["responses"]["401"].is_object(), "{op}");
            assert!(op["responses"]["403"].is_null(), "{op}");
            assert!(op["responses"]["429"].is_null(), "{op}");
        }
    }

    #[test]
    fn declared_response_headers_are_on_the_success_answers() {
        let doc: serde_json::Value =
            serde_json::from_str(&json(&routes::table())).expect("valid JSON");
        for (path, status) in [
            ("/api/usage/reserve", "201"),
            ("/api/usage/report", "200"),
            ("/api/admin/users/{id}/credits", "200"),
        ] {
            let responses = &doc["paths"][path]["post"]["responses"];
            let header = &responses[status]["headers"]["Idempotent-Replayed"];
            assert_eq!(header["schema"]["type"], "string", "{path}");
            assert!(
                responses["400"]["headers"].is_null(),
                "{path}: errors are not replays"
            );
        }
    }

    #[test]
    fn paths_and_tags_read_as_the_table_does() {
        assert_eq!(
            openapi_path("/api/admin/users/:id/credits"),
            ("/api/admin/users/{id}/credits".to_owned(), vec!["id"])
        );
        assert_eq!(tag("/api/usage/quota"), "usage");
        assert_eq!(tag("/"), "health");
        assert_eq!(tag("/openapi.json"), "openapi");
        assert_eq!(
            operation_id("GET", "/api/user/api-keys/:id"),
            "get_api_user_api_keys__id"
        );
    }
}

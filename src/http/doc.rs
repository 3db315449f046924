//! What the route table says about each endpoint for `/openapi.json`: a summary, the request
//! body and query types, the request headers it reads, the success answers and the headers
//! they may carry, and the errors beyond those every route of its kind can give.
//!
//! The document is generated on the host from these descriptions and the types they name
//! (see [`crate::contract`]) and embedded in the worker; in the worker a `Doc` keeps nothing,
//! so no schema code is linked into the wasm.

#[cfg(not(target_arch = "wasm32"))]
pub use host::{Answer, Doc, Schema};
#[cfg(target_arch = "wasm32")]
pub use wasm::{Doc, Schema};

/// An error code an endpoint can answer with beyond those every route of its kind can give.
/// The codes are [`crate::error::AppError::code`]'s.
pub type ErrorCode = &'static str;

/// The request header carrying a client's idempotency key (read by the endpoints of several
/// capabilities), and what `/openapi.json` says of it.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
pub const IDEMPOTENCY_KEY_DOC: &str =
    "A retry with the same key answers the first answer (with `Idempotent-Replayed: true`) \
     and counts nothing again: 1 to 128 letters, digits, `.`, `_`, `:` or `-`; the body's \
     `request_id`, if sent too, must be equal.";

/// What `Idempotent-Replayed` says on an answer that repeats the first one for its key.
pub const REPLAYED: &str = "Idempotent-Replayed";
pub const REPLAYED_DOC: &str =
    "`true` when this answers a retry with an idempotency key already used: the first \
     answer, repeated, and nothing counted or changed again; absent otherwise.";

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::ErrorCode;

    /// Any type: in the worker nothing about it is kept.
    pub trait Schema {}
    impl<T: ?Sized> Schema for T {}

    /// Nothing, in the worker.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Doc {
        _nothing: (),
    }

    impl Doc {
        pub fn new(_summary: &'static str) -> Self {
            Self::default()
        }
        pub fn body<T: Schema>(self) -> Self {
            self
        }
        pub fn optional_body<T: Schema>(self) -> Self {
            self
        }
        pub fn query<T: Schema>(self) -> Self {
            self
        }
        pub fn ok<T: Schema>(self, _status: u16) -> Self {
            self
        }
        pub fn empty(self, _status: u16, _description: &'static str) -> Self {
            self
        }
        pub fn redirect(self, _description: &'static str) -> Self {
            self
        }
        pub fn or_media(self, _media: &'static str, _description: &'static str) -> Self {
            self
        }
        pub fn media(self, _status: u16, _media: &'static str, _description: &'static str) -> Self {
            self
        }
        pub fn errors(self, _codes: &[ErrorCode]) -> Self {
            self
        }
        pub fn header(self, _name: &'static str, _description: &'static str) -> Self {
            self
        }
        pub fn response_header(self, _name: &'static str, _description: &'static str) -> Self {
            self
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    use utoipa::openapi::path::Parameter;
    use utoipa::openapi::{RefOr, Schema as OpenApiSchema};

    use super::ErrorCode;

    /// A type with a JSON Schema: derive `utoipa::ToSchema` (bodies, views) or
    /// `utoipa::IntoParams` (query strings).
    pub trait Schema: utoipa::ToSchema + 'static {}
    impl<T: utoipa::ToSchema + 'static> Schema for T {}

    /// Collects a type's schema and the schemas it refers to; returns a reference to it.
    pub type SchemaFn = fn(&mut Vec<(String, RefOr<OpenApiSchema>)>) -> RefOr<OpenApiSchema>;

    /// One success answer.
    #[derive(Clone)]
    pub enum Answer {
        /// A JSON body of this schema.
        Json(u16, SchemaFn),
        /// No body.
        Empty(u16, &'static str),
        /// A redirect (`302` with `Location`).
        Redirect(&'static str),
        /// A body of another media type (a stream of events, audio), as text or bytes.
        Media(u16, &'static str, &'static str),
    }

    /// One endpoint, described.
    #[derive(Clone, Default)]
    pub struct Doc {
        pub summary: &'static str,
        pub body: Option<SchemaFn>,
        /// Whether the body may be left out (an empty body reads as the defaults).
        pub body_optional: bool,
        pub query: Option<fn() -> Vec<Parameter>>,
        pub answers: Vec<Answer>,
        pub errors: Vec<ErrorCode>,
        /// Request headers the endpoint reads (webhook signatures, idempotency keys).
        pub headers: Vec<(&'static str, &'static str)>,
        /// Headers its success answers may carry (`Idempotent-Replayed`).
        pub response_headers: Vec<(&'static str, &'static str)>,
    }

    fn reference<T: utoipa::ToSchema>(
        out: &mut Vec<(String, RefOr<OpenApiSchema>)>,
    ) -> RefOr<OpenApiSchema> {
        T::schemas(out);
        let name = T::name().into_owned();
        out.push((name.clone(), T::schema()));
        utoipa::openapi::Ref::from_schema_name(name).into()
    }

    impl Doc {
        /// An endpoint that does what `summary` says.
        pub fn new(summary: &'static str) -> Self {
            Self {
                summary,
                ..Self::default()
            }
        }

        /// It reads a JSON body of type `T`.
        pub fn body<T: Schema>(mut self) -> Self {
            self.body = Some(reference::<T>);
            self
        }

        /// It reads a JSON body of type `T`, or none at all (the defaults).
        pub fn optional_body<T: Schema>(mut self) -> Self {
            self.body = Some(reference::<T>);
            self.body_optional = true;
            self
        }

        /// It reads a query string described by `T` (`utoipa::IntoParams`).
        pub fn query<T: utoipa::IntoParams>(mut self) -> Self {
            self.query =
                Some(|| T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query)));
            self
        }

        /// It answers `status` with a JSON body of type `T`.
        pub fn ok<T: Schema>(mut self, status: u16) -> Self {
            self.answers.push(Answer::Json(status, reference::<T>));
            self
        }

        /// It answers `status` with no body.
        pub fn empty(mut self, status: u16, description: &'static str) -> Self {
            self.answers.push(Answer::Empty(status, description));
            self
        }

        /// It answers with a redirect.
        pub fn redirect(mut self, description: &'static str) -> Self {
            self.answers.push(Answer::Redirect(description));
            self
        }

        /// Its last success answer may instead be of `media` (`text/event-stream` when the
        /// request asks for a stream), as `description` says.
        pub fn or_media(mut self, media: &'static str, description: &'static str) -> Self {
            let status = match self.answers.last() {
                Some(Answer::Json(status, _)) => *status,
                _ => 200,
            };
            self.answers.push(Answer::Media(status, media, description));
            self
        }

        /// It answers `status` with a body of `media` (audio, say), as `description` says.
        pub fn media(
            mut self,
            status: u16,
            media: &'static str,
            description: &'static str,
        ) -> Self {
            self.answers.push(Answer::Media(status, media, description));
            self
        }

        /// It can also fail with these codes.
        pub fn errors(mut self, codes: &[ErrorCode]) -> Self {
            self.errors.extend_from_slice(codes);
            self
        }

        /// It reads this request header.
        pub fn header(mut self, name: &'static str, description: &'static str) -> Self {
            self.headers.push((name, description));
            self
        }

        /// Its success answers may carry this response header.
        pub fn response_header(mut self, name: &'static str, description: &'static str) -> Self {
            self.response_headers.push((name, description));
            self
        }
    }
}

//! Clerk: the instance's JWKS, and the Backend API calls Tollgate makes (end a session,
//! mint a fresh session token, list an organisation's members).

use serde::Deserialize;
use worker::{Headers, Method, Request, RequestInit};

use crate::error::AppError;

const SERVICE: &str = "clerk";

/// Fetches the JWKS document (public: no credentials).
pub async fn fetch_jwks(url: &str) -> Result<String, AppError> {
    let req = Request::new(url, Method::Get)?;
    let resp = super::send(SERVICE, req).await?;
    let status = resp.status_code();
    let body = super::text(SERVICE, resp).await?;
    if status != 200 {
        return Err(AppError::Upstream {
            service: SERVICE,
            detail: format!("JWKS {url} answered {status}"),
        });
    }
    Ok(body)
}

/// A Backend API client.
pub struct ClerkApi<'a> {
    /// `CLERK_API_URL`, e.g. `https://api.clerk.com`.
    pub base_url: &'a str,
    /// `CLERK_SECRET_KEY`.
    pub secret_key: &'a str,
}

/// What a Backend API call can end as, beyond success.
#[derive(Debug)]
pub enum ClerkError {
    /// Clerk does not know the session (already gone, or never existed).
    NotFound,
    /// Any other failure; becomes `upstream_error`.
    Failed(AppError),
}

impl From<AppError> for ClerkError {
    fn from(err: AppError) -> Self {
        Self::Failed(err)
    }
}

impl ClerkApi<'_> {
    async fn post(&self, path: &str) -> Result<String, ClerkError> {
        self.call(Method::Post, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, ClerkError> {
        let what = format!("{method} /v1{path}");
        let headers = Headers::new();
        let bearer = format!("Bearer {}", self.secret_key);
        headers
            .set("Authorization", &bearer)
            .map_err(AppError::from)?;
        headers
            .set("Content-Type", "application/json")
            .map_err(AppError::from)?;
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(body) = body {
            init.with_body(Some(body.to_string().into()));
        }
        let url = format!("{}/v1{path}", self.base_url);
        let req = Request::new_with_init(&url, &init).map_err(AppError::from)?;
        let resp = super::send(SERVICE, req).await?;
        let status = resp.status_code();
        let body = super::text(SERVICE, resp).await?;
        match status {
            200..=299 => Ok(body),
            404 => Err(ClerkError::NotFound),
            _ => Err(ClerkError::Failed(AppError::Upstream {
                service: SERVICE,
                detail: format!("{what} answered {status}"),
            })),
        }
    }

    /// Merges `public_metadata` into a user's (`PATCH /v1/users/{id}/metadata`).
    pub async fn update_public_metadata(
        &self,
        user_id: &str,
        public_metadata: &serde_json::Value,
    ) -> Result<(), ClerkError> {
        if user_id.is_empty()
            || !user_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ClerkError::Failed(AppError::Upstream {
                service: SERVICE,
                detail: "a user id that is not a Clerk id".to_owned(),
            }));
        }
        let body = serde_json::json!({ "public_metadata": public_metadata });
        self.call(
            Method::Patch,
            &format!("/users/{user_id}/metadata"),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// Revokes a session (`POST /v1/sessions/{id}/revoke`).
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), ClerkError> {
        self.post(&format!("/sessions/{session_id}/revoke"))
            .await
            .map(|_| ())
    }

    /// Mints a fresh session token (`POST /v1/sessions/{id}/tokens`).
    pub async fn create_session_token(&self, session_id: &str) -> Result<String, ClerkError> {
        #[derive(Deserialize)]
        struct Token {
            jwt: String,
        }
        let body = self.post(&format!("/sessions/{session_id}/tokens")).await?;
        serde_json::from_str::<Token>(&body)
            .map(|t| t.jwt)
            .map_err(|e| {
                ClerkError::Failed(AppError::Upstream {
                    service: SERVICE,
                    detail: format!("session token answer: {e}"),
                })
            })
    }

    /// The members of an organisation, at most 100 (`GET
    /// /v1/organizations/{id}/memberships?limit=100`).
    pub async fn organization_memberships(
        &self,
        organization_id: &str,
    ) -> Result<Vec<Membership>, ClerkError> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<Membership>,
        }
        if !organization_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ClerkError::NotFound);
        }
        let body = self
            .call(
                Method::Get,
                &format!("/organizations/{organization_id}/memberships?limit=100"),
                None,
            )
            .await?;
        serde_json::from_str::<Page>(&body)
            .map(|page| page.data)
            .map_err(|e| {
                ClerkError::Failed(AppError::Upstream {
                    service: SERVICE,
                    detail: format!("memberships answer: {e}"),
                })
            })
    }
}

/// One member of an organisation, as Clerk's Backend API lists them.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Membership {
    /// `orgmem_...`.
    pub id: String,
    /// `org:admin`, `org:member`, or a custom role key.
    pub role: String,
    #[serde(default)]
    pub public_user_data: Option<PublicUserData>,
    /// Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<i64>,
}

/// The public part of a member's user.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct PublicUserData {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
}

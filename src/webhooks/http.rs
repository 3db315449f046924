//! `POST /api/auth/webhook/clerk`: Clerk's webhooks, delivered and signed by Svix.
//!
//! The pipeline verifies the signature over the raw body before this handler runs (the route
//! is `Signed(Clerk)`); the handler stores the event (unique by `svix-id`) before
//! acknowledging it, then apply it. A repeated `svix-id` is acknowledged and changes nothing;
//! a delivery whose processing failed answers 500, so Svix retries it.

use serde::Serialize;
use worker::{Request, Response};

use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::identity::rules::clerk_event;
use crate::identity::service::clerk_events::{self, Outcome, Receipt, Verified};
use crate::webhooks::rules::signed::SignedDelivery;

/// How a delivery was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// It changed (or confirmed) state.
    Processed,
    /// Tollgate does not act on its type.
    Ignored,
}

impl From<Outcome> for DeliveryStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Processed => Self::Processed,
            Outcome::Ignored => Self::Ignored,
        }
    }
}

/// The acknowledgement of one delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClerkDeliveryView {
    /// Always `true`.
    pub received: bool,
    /// Whether this `svix-id` was settled before (nothing changed this time).
    pub duplicate: bool,
    /// The `svix-id`.
    pub event_id: String,
    /// The event's type; absent for a duplicate.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub event_type: Option<String>,
    pub status: DeliveryStatus,
}

/// Receives one delivery, its signature verified.
pub async fn receive(
    _req: Request,
    ctx: Ctx,
    delivery: SignedDelivery,
) -> Result<Response, AppError> {
    let event_id = delivery
        .id
        .as_deref()
        .ok_or_else(|| AppError::Unauthorized("missing svix-id header".to_owned()))?;
    if event_id.len() > 256 {
        return Err(AppError::invalid(
            "svix-id",
            "is longer than 256 characters",
        ));
    }
    let body = delivery.body.as_slice();
    let payload =
        std::str::from_utf8(body).map_err(|_| AppError::invalid("body", "is not UTF-8"))?;
    let catalog = &ctx.data.config.plans;
    let (event_type, event) =
        clerk_event::parse(body, catalog).map_err(|detail| AppError::invalid("body", detail))?;

    let default_plan = &ctx.data.config.plans.default_plan().id;
    let delivery = Verified {
        event_id,
        event_type: &event_type,
        payload,
        event: &event,
    };
    let (duplicate, outcome) =
        match clerk_events::receive(&ctx.env, delivery, default_plan, &ctx.data.log).await? {
            Receipt::Duplicate(outcome) => (true, outcome),
            Receipt::Applied(outcome) => (false, outcome),
        };
    response::ok(&ClerkDeliveryView {
        received: true,
        duplicate,
        event_id: event_id.to_owned(),
        // A duplicate's answer never named the type.
        event_type: (!duplicate).then_some(event_type),
        status: outcome.into(),
    })
}

/// What `/openapi.json` says of `POST /api/auth/webhook/clerk`.
pub fn receive_doc() -> Doc {
    // The signature header is the route's security scheme (`svix-signature`, or
    // `webhook-signature`); the other two are signed with the body.
    Doc::new("Receive one of Clerk's webhook deliveries (signed by Svix)")
        .header("svix-id", "The delivery's id (or `webhook-id`)")
        .header("svix-timestamp", "Unix seconds (or `webhook-timestamp`)")
        .body::<clerk_event::Envelope>()
        .ok::<ClerkDeliveryView>(200)
        .errors(&["unauthorized", "internal"])
}

//! Workflows: a trigger and an outgoing webhook, owned by an org or a user. Usage thresholds
//! (80 % and 100 % of a monthly limit, once per period) and chat sessions fire them; each
//! delivery is stored before it is sent, signed per Standard Webhooks with the workflow's
//! `whsec_` secret, and retried with exponential backoff by the schedule.

pub mod http;
pub mod rules;
pub mod service;
pub mod store;

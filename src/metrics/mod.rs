//! Daily metrics: chat and voice activity per org, site and UTC day. The schedule rolls the
//! last days up from the log tables (chat_sessions, chat_messages, voice_requests) into
//! `org_daily_metrics`, replacing what was there (a re-run recomputes, never adds); the
//! portal's reads take past days from that table and today live from the logs, through the
//! same per-day query.

pub mod rules;
pub mod service;
pub mod store;

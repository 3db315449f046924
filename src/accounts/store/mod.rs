//! The accounts tables: credentials, refresh tokens, mailed tokens, sign-in failures, the
//! windows of public actions and the mail outbox. Epoch milliseconds are bound as f64 (D1
//! numbers are JS numbers).
pub mod credentials;
pub mod login_failures;
pub mod mailed_tokens;
pub mod outbox;
pub mod refresh_tokens;
pub mod windows;

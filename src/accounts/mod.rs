//! Tollgate's own accounts: email and password sign-up and sign-in, sessions of a short-lived
//! access token and a rotating single-use refresh token, the profile, password change and
//! reset, email verification, and the mail that carries their links.
pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;

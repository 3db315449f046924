//! The account endpoints (`/api/auth/...`).

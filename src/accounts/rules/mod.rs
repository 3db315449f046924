//! Pure decisions of the accounts capability, host-tested.
pub mod email;
pub mod outbox;
pub mod password;
pub mod secret_token;
pub mod throttle;
pub mod windows;

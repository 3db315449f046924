//! Pure rules with no `worker` types: each is a function of its inputs, tested on the host.

pub mod body;
pub mod cors;
pub mod request_id;
pub mod time;

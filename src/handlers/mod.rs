//! One module per area: parse the request, call a service or store, map the result.

pub mod health;

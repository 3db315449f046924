//! Platforms: usage metering as a service for other developers. A developer's platform
//! (`plt_...`) holds a platform key (`pk_live_...`), a tier list, and end users known only
//! within it, whose calls are counted exactly against their tier's monthly limit by the
//! shared metering service.

pub mod http;
pub mod rules;
pub mod service;
pub mod store;

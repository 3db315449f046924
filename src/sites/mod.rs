//! Sites: an org's chat widgets and voice endpoints ("engines"), each identified by a
//! public site key (`sk_{slug}_{env}_{random}`) bound to the browser origins the org
//! allows. A site-key route ([`crate::http::access::SiteKey`]) admits a request only for an
//! active site of an active org, from one of its origins (or without `Origin` when the site
//! takes server calls); its preflights are answered for any active site's origins.

pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;

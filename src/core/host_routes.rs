//! `HOST_ROUTES`: a dedicated host whose `POST /` (and its `OPTIONS /` preflight) is served as
//! one path, as the seed's clients call it (`chat.example.com=/chat,voice.example.com=/voice`).
//! Pure: tested on the host.

/// The map, as configured: `(host, path)` pairs, hosts lower case without a port.
pub type HostRoutes = Vec<(String, String)>;

/// Reads `host=/path,host=/path`; why not, naming the entry.
pub fn parse(value: &str) -> Result<HostRoutes, String> {
    let mut routes = HostRoutes::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((host, path)) = entry.split_once('=') else {
            return Err(format!("`{entry}` is not host=/path"));
        };
        let host = host.trim().to_ascii_lowercase();
        let path = path.trim();
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_ok {
            return Err(format!("`{host}` is not a host name (no scheme or port)"));
        }
        let path_ok = path.len() > 1
            && path.starts_with('/')
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !path_ok {
            return Err(format!("`{path}` is not a path such as /chat"));
        }
        if routes.iter().any(|(h, _)| *h == host) {
            return Err(format!("`{host}` is mapped twice"));
        }
        routes.push((host, path.to_owned()));
    }
    Ok(routes)
}

/// The path a request to `path` on `host` (its `Host` header, a port allowed) is served as:
/// only `POST /` and `OPTIONS /` of a mapped host are; anything else is served as it came.
pub fn route<'a>(routes: &'a HostRoutes, method: &str, path: &str, host: &str) -> Option<&'a str> {
    if path != "/"
        || !(method.eq_ignore_ascii_case("POST") || method.eq_ignore_ascii_case("OPTIONS"))
    {
        return None;
    }
    let host = host.trim();
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    routes
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(host))
        .map(|(_, p)| p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_is_read_and_bad_entries_are_named() {
        let routes = parse(" chat.example.com=/chat, Voice.Example.com=/voice ,").unwrap();
        assert_eq!(
            routes,
            vec![
                ("chat.example.com".to_owned(), "/chat".to_owned()),
                ("voice.example.com".to_owned(), "/voice".to_owned())
            ]
        );
        assert_eq!(parse("").unwrap(), HostRoutes::new());
        for bad in [
            "chat.example.com",
            "https://chat.example.com=/chat",
            "chat.example.com:443=/chat",
            "chat.example.com=chat",
            "chat.example.com=/",
            "a.com=/chat,a.com=/voice",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_post_and_options_to_the_root_of_a_mapped_host_are_routed() {
        let routes = parse("chat.example.com=/chat,voice.example.com=/voice").unwrap();
        assert_eq!(
            route(&routes, "POST", "/", "chat.example.com"),
            Some("/chat")
        );
        assert_eq!(
            route(&routes, "OPTIONS", "/", "Voice.example.com:8787"),
            Some("/voice")
        );
        assert_eq!(route(&routes, "GET", "/", "chat.example.com"), None);
        assert_eq!(route(&routes, "POST", "/chat", "voice.example.com"), None);
        assert_eq!(route(&routes, "POST", "/", "api.example.com"), None);
        assert_eq!(
            route(&routes, "POST", "/", "chat.example.com.evil.com"),
            None
        );
    }
}

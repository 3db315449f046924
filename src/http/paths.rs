//! Whether a request path can match a route pattern, decided without building a router.
//!
//! The route table is built once per isolate, but a `worker::Router` is consumed by the
//! request it runs, so one is built per request. Registering every pattern costs a matchit
//! insertion per pattern and method (about 400 for this table) before any handler runs;
//! registering only the patterns a path can match costs one or two. This is the test that
//! picks them: it must accept every path the router would route to a pattern, which the
//! host tests check against matchit itself over every pattern of the table.
//!
//! Patterns are the table's: `/`-separated segments, each either literal text or a `:name`
//! parameter standing for one segment.

/// Whether `path` has the shape of `pattern`: as many segments, each literal one equal; a
/// `:name` one may be empty, except as the last segment (as in matchit 0.7).
pub fn can_match(pattern: &str, path: &str) -> bool {
    let mut wanted = pattern.split('/').peekable();
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(want), Some(seg)) => {
                let fits = match want.strip_prefix(':') {
                    // As matchit has it: an empty parameter matches, but not at the end.
                    Some(_) => !seg.is_empty() || wanted.peek().is_some(),
                    None => want == seg,
                };
                if !fits {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// How strongly a pattern claims a path it can match, as the router ranks them: of two
/// patterns matching one path, the router takes the one whose first differing segment is
/// literal (compare the results; the greater wins).
pub fn precedence(pattern: &str) -> Vec<bool> {
    pattern.split('/').map(|s| !s.starts_with(':')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_must_be_equal_and_a_last_parameter_non_empty() {
        assert!(can_match("/", "/"));
        assert!(can_match("/api/health", "/api/health"));
        assert!(!can_match("/api/health", "/api/health/"));
        assert!(!can_match("/api/health", "/api/Health"));
        assert!(!can_match("/api/health", "/api/health/ping"));
        assert!(can_match(
            "/api/user/api-keys/:id",
            "/api/user/api-keys/key_1"
        ));
        assert!(!can_match("/api/user/api-keys/:id", "/api/user/api-keys/"));
        assert!(!can_match("/api/user/api-keys/:id", "/api/user/api-keys"));
        assert!(!can_match(
            "/api/user/api-keys/:id",
            "/api/user/api-keys/a/b"
        ));
        assert!(can_match(
            "/api/admin/users/:id/credits",
            "/api/admin/users/usr_1/credits"
        ));
        assert!(can_match(
            "/api/admin/users/:id/credits",
            "/api/admin/users//credits"
        ));
    }

    /// Paths shaped after every pattern of the table, and near misses of each: the cases
    /// where a cheaper test could disagree with the router.
    fn probes() -> Vec<String> {
        let fills = ["x", "usr_1", "a.b", "%20", "a%2Fb", ":id", "*", "key-_~"];
        let mut paths = vec![
            String::new(),
            "/".to_owned(),
            "//".to_owned(),
            "/api".to_owned(),
            "/api/".to_owned(),
            "/nope".to_owned(),
            "/api/admin".to_owned(),
            "/api/webhooks".to_owned(),
        ];
        for (_, pattern, _) in crate::routes::table().endpoints() {
            for fill in fills {
                let path: String = pattern
                    .split('/')
                    .map(|seg| if seg.starts_with(':') { fill } else { seg })
                    .collect::<Vec<_>>()
                    .join("/");
                paths.push(format!("{path}/"));
                paths.push(format!("{path}/extra"));
                paths.push(format!("{path}x"));
                paths.push(format!("/{path}"));
                paths.push(path.to_uppercase());
                paths.push(path.replace(fill, ""));
                if let Some((head, _)) = path.rsplit_once('/') {
                    paths.push(head.to_owned());
                    paths.push(format!("{head}/"));
                }
                paths.push(path);
            }
        }
        paths.sort();
        paths.dedup();
        paths
    }

    #[test]
    fn every_path_the_router_routes_to_a_pattern_is_one_it_can_match() {
        let table = crate::routes::table();
        let patterns: Vec<&str> = {
            let mut p: Vec<&str> = table.endpoints().map(|(_, pattern, _)| pattern).collect();
            p.dedup();
            p
        };
        let mut router = matchit::Router::new();
        for pattern in &patterns {
            // The same pattern under several methods is one route.
            let _ = router.insert(*pattern, *pattern);
        }
        let probes = probes();
        assert!(probes.len() > 400, "{} probes", probes.len());
        for path in &probes {
            let routed = router.at(path).ok().map(|m| *m.value);
            let candidates: Vec<&str> = patterns
                .iter()
                .copied()
                .filter(|pattern| can_match(pattern, path))
                .collect();
            if let Some(routed) = routed {
                assert!(
                    candidates.contains(&routed),
                    "{path} is routed to {routed}, which can_match rejects"
                );
            }
            // The candidate that ranks first is the one the router picks.
            let first = candidates.iter().copied().max_by_key(|p| precedence(p));
            assert_eq!(first, routed, "{path}: precedence picks another pattern");
            // And no candidate is one the router would never route the path to alone.
            for candidate in &candidates {
                let mut alone = matchit::Router::new();
                alone.insert(*candidate, ()).unwrap();
                assert!(
                    alone.at(path).is_ok(),
                    "{path} can_match {candidate}, which the router rejects"
                );
            }
        }
    }
}

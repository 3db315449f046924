//! Clerk publishable keys: `pk_test_` or `pk_live_` followed by the base64 of the instance's
//! Frontend API host, usually with a trailing `$` (`pk_test_Y2xlcmsuZXhhbXBsZS5jb20k` is
//! `clerk.example.com$`). The host is the instance's domain: its JWKS is at
//! `https://<host>/.well-known/jwks.json` and its tokens' `iss` is `https://<host>`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// The prefixes of a publishable key: development and production instances.
const PREFIXES: [&str; 2] = ["pk_test_", "pk_live_"];

/// The Frontend API host a publishable key names, or why it names none (never repeating the
/// key, which is public anyway, beyond its prefix).
pub fn domain(key: &str) -> Result<String, String> {
    let key = key.trim();
    let encoded = PREFIXES
        .iter()
        .find_map(|prefix| key.strip_prefix(prefix))
        .ok_or_else(|| "does not start with pk_test_ or pk_live_".to_owned())?;
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
        .ok_or_else(|| "is not base64 after its pk_ prefix".to_owned())?;
    let decoded = String::from_utf8(bytes).map_err(|_| "does not encode a host name".to_owned())?;
    let host = decoded.strip_suffix('$').unwrap_or(&decoded);
    if !is_host(host) {
        return Err("does not encode a host name".to_owned());
    }
    Ok(host.to_ascii_lowercase())
}

/// A DNS name (optionally with a port): labels of letters, digits and hyphens, with at least
/// one dot.
fn is_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    port_ok && labels_ok && name.contains('.') && name.len() <= 253
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: &str, payload: &str) -> String {
        format!("{prefix}{}", STANDARD.encode(payload))
    }

    #[test]
    fn test_and_live_keys_name_their_host_without_the_dollar() {
        assert_eq!(
            domain(&key("pk_test_", "clerk.example.com$")),
            Ok("clerk.example.com".to_owned())
        );
        assert_eq!(
            domain(&key("pk_live_", "clerk.shop.example.org$")),
            Ok("clerk.shop.example.org".to_owned())
        );
        // A key as Clerk's dashboard shows it for a development instance.
        assert_eq!(
            domain("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"),
            Ok("clerk.example.com".to_owned())
        );
    }

    #[test]
    fn the_dollar_and_padding_are_optional() {
        assert_eq!(
            domain(&key("pk_test_", "happy-cat-12.clerk.accounts.dev")),
            Ok("happy-cat-12.clerk.accounts.dev".to_owned())
        );
        let unpadded = format!("pk_live_{}", STANDARD_NO_PAD.encode("clerk.example.io$"));
        assert_eq!(domain(&unpadded), Ok("clerk.example.io".to_owned()));
        assert_eq!(
            domain(&format!(" {} ", key("pk_test_", "Clerk.Example.com$"))),
            Ok("clerk.example.com".to_owned())
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (bad, reason) in [
            ("sk_test_Y2xlcmsuZXhhbXBsZS5jb20k", "pk_test_"),
            ("clerk.example.com", "pk_test_"),
            ("pk_test_", "host"),
            ("pk_test_***", "base64"),
            (&key("pk_test_", "not a host$"), "host"),
            (&key("pk_test_", "localhost$"), "host"),
            (&key("pk_test_", "https://clerk.example.com$"), "host"),
            (&key("pk_test_", "clerk.example.com/path$"), "host"),
            (&key("pk_test_", "-bad.example.com$"), "host"),
            (&key("pk_test_", "clerk.example.com:port$"), "host"),
            (
                &format!("pk_test_{}", STANDARD.encode([0xff, 0xfe, b'$'])),
                "host",
            ),
        ] {
            let err = domain(bad).expect_err(bad);
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}

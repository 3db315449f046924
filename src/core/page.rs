//! List pagination: `?limit=` (default 50, max 200) and an opaque `cursor`; answers are
//! `{"data": [...], "next_cursor": "..." | null}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use super::body::FieldError;

/// Items per page when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 200;

/// A validated page request. The cursor is the sort key of the last item already seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Vec<String>>,
}

/// Parses `limit` and `cursor` from the query string's pairs.
pub fn parse<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<PageRequest, FieldError> {
    let mut page = PageRequest {
        limit: DEFAULT_LIMIT,
        after: None,
    };
    for (name, value) in pairs {
        match name {
            "limit" => {
                page.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        FieldError::new(
                            "limit",
                            format!("must be an integer from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => page.after = Some(decode_cursor(value)?),
            _ => {}
        }
    }
    Ok(page)
}

/// An opaque cursor for a sort key.
pub fn encode_cursor(key: &[&str]) -> String {
    B64.encode(serde_json::to_string(key).unwrap_or_default())
}

fn decode_cursor(cursor: &str) -> Result<Vec<String>, FieldError> {
    B64.decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<String>>(&bytes).ok())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| FieldError::new("cursor", "is not a cursor returned by this API"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        assert_eq!(
            parse([]).unwrap(),
            PageRequest {
                limit: DEFAULT_LIMIT,
                after: None
            }
        );
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = encode_cursor(&["2026-11-22T10:00:00.000Z", "key_1"]);
        let page = parse([("cursor", cursor.as_str()), ("limit", "2")]).unwrap();
        assert_eq!(page.limit, 2);
        assert_eq!(
            page.after.unwrap(),
            ["2026-11-22T10:00:00.000Z".to_owned(), "key_1".to_owned()]
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        for (name, value) in [
            ("limit", "0"),
            ("limit", "201"),
            ("limit", "ten"),
            ("cursor", "%%%"),
            ("cursor", "e30"),
        ] {
            assert_eq!(
                parse([(name, value)]).unwrap_err().field,
                name,
                "{name}={value}"
            );
        }
    }
}

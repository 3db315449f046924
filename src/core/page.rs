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

impl PageRequest {
    /// The cursor as a `(created_at, id)` pair, the sort key of every list here.
    pub fn after_pair(&self) -> Result<Option<(&str, &str)>, FieldError> {
        match self.after.as_deref() {
            None => Ok(None),
            Some([at, id]) => Ok(Some((at.as_str(), id.as_str()))),
            Some(_) => Err(FieldError::new(
                "cursor",
                "is not a cursor returned by this API",
            )),
        }
    }
}

/// Ends a page fetched with `limit + 1` rows: drops the extra row and, if there was one,
/// returns the cursor of the page's last item (`key` gives its sort key).
pub fn finish<T>(items: &mut Vec<T>, limit: u32, key: impl Fn(&T) -> [&str; 2]) -> Option<String> {
    if items.len() <= limit as usize {
        return None;
    }
    items.truncate(limit as usize);
    items.last().map(|item| encode_cursor(&key(item)))
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
    fn pages_end_with_a_cursor_only_when_more_rows_exist() {
        let mut rows = vec![("t3", "c"), ("t2", "b"), ("t1", "a")];
        let cursor = finish(&mut rows, 2, |r| [r.0, r.1]).unwrap();
        assert_eq!(rows.len(), 2);
        let next = parse([("cursor", cursor.as_str())]).unwrap();
        assert_eq!(next.after_pair().unwrap(), Some(("t2", "b")));
        let mut last = vec![("t1", "a")];
        assert_eq!(finish(&mut last, 2, |r| [r.0, r.1]), None);
        let odd = encode_cursor(&["only-one"]);
        let page = parse([("cursor", odd.as_str())]).unwrap();
        assert_eq!(page.after_pair().unwrap_err().field, "cursor");
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

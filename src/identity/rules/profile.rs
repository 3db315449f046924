//! What a user may change about their own profile, and the rules each field follows.
//! Email, plan and roles come from the identity provider or billing, never from here.

use serde::{Deserialize, Deserializer};

use crate::core::body::FieldError;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// Longest avatar URL, in bytes.
pub const MAX_AVATAR_URL_BYTES: usize = 2048;

/// A `PATCH /api/user/profile` body. A field left out is unchanged; `null` clears it.
/// Values are trimmed before they are checked.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// 3 to 32 letters, digits, `_`, `.` or `-`, starting with a letter or digit; unique
    /// (in any letter case).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 3, max_length = 32)]
    pub username: Option<Option<String>>,
    /// 1 to 100 characters, no control characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    pub display_name: Option<Option<String>>,
    /// An `https://` URL of at most 2048 bytes, without whitespace.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub avatar_url: Option<Option<String>>,
}

/// Tells "absent" (the default, `None`) from "null" (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Validated changes, normalised (trimmed); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    pub username: Option<Option<String>>,
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
}

impl ProfileChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.username.is_none() && self.display_name.is_none() && self.avatar_url.is_none()
    }

    /// The names of the fields that change (for the audit log; never their values).
    pub fn field_names(&self) -> Vec<&'static str> {
        [
            ("username", self.username.is_some()),
            ("display_name", self.display_name.is_some()),
            ("avatar_url", self.avatar_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, changes)| changes.then_some(name))
        .collect()
    }
}

/// Checks every field, reporting all problems at once.
pub fn validate(patch: ProfilePatch) -> Result<ProfileChanges, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut check =
        |field: &str, value: Option<Option<String>>, rule: fn(&str) -> Result<(), String>| {
            value.map(|v| {
                v.map(|s| s.trim().to_owned()).and_then(|s| match rule(&s) {
                    Ok(()) => Some(s),
                    Err(message) => {
                        errors.push(FieldError::new(field, message));
                        None
                    }
                })
            })
        };
    let changes = ProfileChanges {
        username: check("username", patch.username, username_rule),
        display_name: check("display_name", patch.display_name, display_name_rule),
        avatar_url: check("avatar_url", patch.avatar_url, avatar_url_rule),
    };
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

fn username_rule(s: &str) -> Result<(), String> {
    let ok_len = (3..=32).contains(&s.len());
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let ok_start = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err("must be 3 to 32 characters of letters, digits, `_`, `.` or `-`, starting with a letter or digit".to_owned())
    }
}

fn display_name_rule(s: &str) -> Result<(), String> {
    let chars = s.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS {
        return Err(format!("must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

fn avatar_url_rule(s: &str) -> Result<(), String> {
    let host = s.strip_prefix("https://").unwrap_or("");
    if host.is_empty()
        || s.len() > MAX_AVATAR_URL_BYTES
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "must be an https URL of at most {MAX_AVATAR_URL_BYTES} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(value: serde_json::Value) -> Result<ProfilePatch, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn absent_fields_are_unchanged_and_null_clears() {
        let changes = validate(patch(json!({ "display_name": null })).unwrap()).unwrap();
        assert_eq!(changes.display_name, Some(None));
        assert_eq!(changes.username, None);
        assert!(validate(ProfilePatch::default()).unwrap().is_empty());
    }

    #[test]
    fn valid_values_are_trimmed() {
        let changes = validate(
            patch(json!({ "username": " ann_1 ", "display_name": " Ann Lee ", "avatar_url": "https://cdn.test/a.png" }))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(changes.username, Some(Some("ann_1".into())));
        assert_eq!(changes.display_name, Some(Some("Ann Lee".into())));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = validate(
            patch(json!({ "username": "a", "display_name": "x".repeat(101), "avatar_url": "javascript:alert(1)" }))
                .unwrap(),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["username", "display_name", "avatar_url"]);
        for bad in ["-ann", "ann lee", "ann/..", &"a".repeat(33)] {
            assert!(username_rule(bad).is_err(), "{bad}");
        }
        assert!(display_name_rule("tab\there").is_err());
        assert!(avatar_url_rule("http://plain.test/a.png").is_err());
    }

    #[test]
    fn unknown_and_mistyped_fields_do_not_parse() {
        assert!(patch(json!({ "email": "a@b.test" })).is_err());
        assert!(patch(json!({ "plan": "enterprise" })).is_err());
        assert!(patch(json!({ "username": 42 })).is_err());
    }
}

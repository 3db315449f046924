//! Devices ("sessions" in the original client API): which client a request comes from, and how long a device
//! counts as signed in.

use crate::core::body::FieldError;

/// A device that was not seen for this long no longer counts: 24 hours.
pub const DEVICE_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The client kinds the desktop and browser clients ship.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Chrome,
    Electron,
    Web,
}

// Its serde derive is the API's and reads the column too: the same texts as `as_str`, which
// the tests check both ways.
crate::stored_impls!(Platform("device platform"));

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 3] = [Platform::Chrome, Platform::Electron, Platform::Web];

    /// From `X-Client-Platform`; absent means `web`.
    pub fn parse(header: Option<&str>) -> Result<Self, FieldError> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("web") => Ok(Self::Web),
            Some("chrome") | Some("chrome-extension") => Ok(Self::Chrome),
            Some("electron") => Ok(Self::Electron),
            Some(_) => Err(FieldError::new(
                "X-Client-Platform",
                "must be chrome, electron or web",
            )),
        }
    }

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chrome => "chrome",
            Self::Electron => "electron",
            Self::Web => "web",
        }
    }
}

/// Checks a client-chosen device id: 1–128 of `[A-Za-z0-9._:-]`.
pub fn device_id(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "must be 1 to 128 characters of letters, digits, `.`, `_`, `:` or `-`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_map_to_their_column_both_ways() {
        crate::core::stored::check::<Platform>();
    }

    #[test]
    fn platforms_come_from_the_client_header() {
        assert_eq!(Platform::parse(None), Ok(Platform::Web));
        assert_eq!(Platform::parse(Some("Chrome")), Ok(Platform::Chrome));
        assert_eq!(Platform::parse(Some("electron")), Ok(Platform::Electron));
        assert_eq!(
            Platform::parse(Some("ios")).unwrap_err().field,
            "X-Client-Platform"
        );
    }

    #[test]
    fn device_ids_are_plain_tokens() {
        assert_eq!(device_id("X-Device-Id", " dev-1 ").unwrap(), "dev-1");
        assert!(device_id("X-Device-Id", "").is_err());
        assert!(device_id("X-Device-Id", "a b").is_err());
        assert!(device_id("X-Device-Id", &"x".repeat(129)).is_err());
    }
}

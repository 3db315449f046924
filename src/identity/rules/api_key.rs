//! User API keys, `tg_live_<32 base62 characters>`: shown once when created, stored only as a
//! SHA-256 hash, and shown masked (`tg_live_AbCd****WxYz`) everywhere else (the format is
//! [`crate::core::secret_key`]'s).

use crate::core::secret_key::KeyFormat;

/// Every user API key starts with this.
pub const PREFIX: &str = "tg_live_";

const FORMAT: KeyFormat = KeyFormat { prefix: PREFIX };

/// A fresh random key.
pub fn generate() -> String {
    FORMAT.generate()
}

/// Whether a bearer credential has the shape of a user API key (checked before hashing).
pub fn looks_like_key(credential: &str) -> bool {
    FORMAT.looks_like(credential)
}

/// The stored form: lower-case hex SHA-256 of the whole key.
pub fn hash(key: &str) -> String {
    crate::core::secret_key::hash(key)
}

/// The displayed form: the prefix, the first and last four characters, stars between.
pub fn mask(key: &str) -> String {
    FORMAT.mask(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_are_tg_live_keys() {
        let key = generate();
        assert!(key.starts_with("tg_live_") && looks_like_key(&key), "{key}");
        assert_eq!(
            mask("tg_live_AbCdefghijklmnopqrstuvwxyz12WxYz"),
            "tg_live_AbCd****WxYz"
        );
    }
}

//! Bearer keys of the form `<prefix><32 base62 characters>` (user API keys `tg_live_`,
//! platform keys `pk_live_`): shown once when made, stored only as their SHA-256, and shown
//! masked (`<prefix>AbCd****WxYz`) everywhere else.

use sha2::{Digest, Sha256};

/// Characters after the prefix.
pub const SECRET_LEN: usize = 32;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// One kind of key, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFormat {
    pub prefix: &'static str,
}

impl KeyFormat {
    /// A new key from random bytes (about 190 bits of entropy: 32 base62 characters).
    /// Bytes that would bias the alphabet are skipped, so `random` supplies more than needed.
    pub fn from_random(self, random: &[u8]) -> Option<String> {
        let mut key = String::with_capacity(self.prefix.len() + SECRET_LEN);
        key.push_str(self.prefix);
        // 248 = 4 * 62: bytes below it map uniformly onto the alphabet.
        for b in random.iter().filter(|b| **b < 248) {
            if key.len() == self.prefix.len() + SECRET_LEN {
                break;
            }
            key.push(ALPHABET[usize::from(*b % 62)] as char);
        }
        (key.len() == self.prefix.len() + SECRET_LEN).then_some(key)
    }

    /// A fresh random key.
    pub fn generate(self) -> String {
        loop {
            // 64 bytes leave room for the rare skipped ones; a retry is astronomically rare.
            if let Some(key) = self.from_random(&crate::core::random::bytes::<64>()) {
                return key;
            }
        }
    }

    /// Whether a bearer credential has this key's shape (checked before hashing).
    pub fn looks_like(self, credential: &str) -> bool {
        credential.strip_prefix(self.prefix).is_some_and(|rest| {
            rest.len() == SECRET_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    }

    /// The displayed form: the prefix, the first and last four characters, stars between.
    pub fn mask(self, key: &str) -> String {
        let prefix = self.prefix;
        let secret = key.strip_prefix(prefix).unwrap_or(key);
        if secret.len() < 12 || !secret.is_ascii() {
            return format!("{prefix}****");
        }
        format!(
            "{prefix}{}****{}",
            &secret[..4],
            &secret[secret.len() - 4..]
        )
    }
}

/// The stored form: lower-case hex SHA-256 of the whole key.
pub fn hash(key: &str) -> String {
    crate::core::random::hex(&Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: KeyFormat = KeyFormat { prefix: "tg_live_" };

    #[test]
    fn generated_keys_have_the_documented_shape_and_differ() {
        let a = KEY.generate();
        let b = KEY.generate();
        assert!(KEY.looks_like(&a), "{a}");
        assert_ne!(a, b);
        let other = KeyFormat { prefix: "pk_live_" };
        assert!(
            !other.looks_like(&a),
            "a key of one kind never looks like another"
        );
    }

    #[test]
    fn biased_bytes_are_skipped() {
        let mut random = vec![255u8; 10];
        random.extend(0u8..40);
        let key = KEY.from_random(&random).unwrap();
        assert_eq!(&key[KEY.prefix.len()..KEY.prefix.len() + 3], "012");
        assert_eq!(KEY.from_random(&[250u8; 64]), None);
    }

    #[test]
    fn hashes_are_sha256_hex() {
        // SHA-256("abc"), from FIPS 180-2.
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn masks_show_only_the_ends() {
        let key = "tg_live_AbCdefghijklmnopqrstuvwxyz12WxYz";
        assert_eq!(KEY.mask(key), "tg_live_AbCd****WxYz");
        assert_eq!(KEY.mask("short"), "tg_live_****");
    }

    #[test]
    fn only_well_formed_keys_look_like_keys() {
        assert!(!KEY.looks_like("tg_live_short"));
        assert!(!KEY.looks_like("tg_test_AbCdefghijklmnopqrstuvwxyz12WxYz"));
        assert!(!KEY.looks_like("tg_live_AbCdefghijklmnopqrstuvwxyz12Wx-z"));
        assert!(!KEY.looks_like("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    }
}

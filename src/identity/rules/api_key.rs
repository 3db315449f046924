//! User API keys, `tg_live_<32 base62 characters>`: shown once when created, stored only as a
//! SHA-256 hash, and shown masked (`tg_live_AbCd****WxYz`) everywhere else.

use sha2::{Digest, Sha256};

/// Every user API key starts with this.
pub const PREFIX: &str = "tg_live_";
/// Characters after the prefix.
pub const SECRET_LEN: usize = 32;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new key from random bytes (about 190 bits of entropy: 32 base62 characters).
/// Bytes that would bias the alphabet are skipped, so `random` supplies more than needed.
pub fn from_random(random: &[u8]) -> Option<String> {
    let mut key = String::with_capacity(PREFIX.len() + SECRET_LEN);
    key.push_str(PREFIX);
    // 248 = 4 * 62: bytes below it map uniformly onto the alphabet.
    for b in random.iter().filter(|b| **b < 248) {
        if key.len() == PREFIX.len() + SECRET_LEN {
            break;
        }
        key.push(ALPHABET[usize::from(*b % 62)] as char);
    }
    (key.len() == PREFIX.len() + SECRET_LEN).then_some(key)
}

/// A fresh random key.
pub fn generate() -> String {
    loop {
        // 64 bytes leave room for the rare skipped ones; a retry is astronomically rare.
        if let Some(key) = from_random(&crate::core::random::bytes::<64>()) {
            return key;
        }
    }
}

/// Whether a bearer credential has the shape of a user API key (checked before hashing).
pub fn looks_like_key(credential: &str) -> bool {
    credential.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The stored form: lower-case hex SHA-256 of the whole key.
pub fn hash(key: &str) -> String {
    crate::core::random::hex(&Sha256::digest(key.as_bytes()))
}

/// The displayed form: the prefix, the first and last four characters, stars between.
pub fn mask(key: &str) -> String {
    let secret = key.strip_prefix(PREFIX).unwrap_or(key);
    if secret.len() < 12 || !secret.is_ascii() {
        return format!("{PREFIX}****");
    }
    format!(
        "{PREFIX}{}****{}",
        &secret[..4],
        &secret[secret.len() - 4..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_differ() {
        let a = generate();
        let b = generate();
        assert!(looks_like_key(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn biased_bytes_are_skipped() {
        let mut random = vec![255u8; 10];
        random.extend(0u8..40);
        let key = from_random(&random).unwrap();
        assert_eq!(&key[PREFIX.len()..PREFIX.len() + 3], "012");
        assert_eq!(from_random(&[250u8; 64]), None);
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
        assert_eq!(mask(key), "tg_live_AbCd****WxYz");
        assert_eq!(mask("short"), "tg_live_****");
    }

    #[test]
    fn only_well_formed_keys_look_like_keys() {
        assert!(!looks_like_key("tg_live_short"));
        assert!(!looks_like_key("tg_test_AbCdefghijklmnopqrstuvwxyz12WxYz"));
        assert!(!looks_like_key("tg_live_AbCdefghijklmnopqrstuvwxyz12Wx-z"));
        assert!(!looks_like_key("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    }
}

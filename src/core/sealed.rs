//! Secrets at rest: values the worker must hand back later (provider API keys) are sealed
//! with AES-256-GCM under `KEY_ENCRYPTION_KEY`.
//!
//! A sealed value is `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id is the
//! first 8 hex digits of the key's SHA-256, so values sealed under an older key can still be
//! opened while `KEY_ENCRYPTION_KEY_PREVIOUS` lists it, and found and resealed under the new
//! one. Every value is bound to where it is stored (`context`, e.g. the row id) as associated
//! data, so a sealed value copied to another row does not open there.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The format version of sealed values.
const VERSION: &str = "v1";
/// Bytes of nonce (96 bits, as GCM wants) and of authentication tag.
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Not `v1.<id>.<base64url>` of at least a nonce and a tag.
    Malformed,
    /// Sealed under a key that is neither the current one nor a listed previous one.
    UnknownKey(String),
    /// The key is known but the value (or its context) does not authenticate.
    Tampered,
}

/// One AES-256 key and its id.
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn parse(name: &str, text: &str) -> Result<Self, String> {
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| format!("{name} is not base64url"))?;
        if raw.len() != 32 {
            return Err(format!(
                "{name} must be 32 bytes (base64url of 32 random bytes), not {}",
                raw.len()
            ));
        }
        let digest = Sha256::digest(&raw);
        let id = crate::core::random::hex(&digest[..4]);
        let cipher = Aes256Gcm::new_from_slice(&raw).map_err(|_| format!("{name}: bad key"))?;
        Ok(Self { id, cipher })
    }
}

/// The current key, which seals, and previous keys, which only open.
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only: never the keys.
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// The keyring of `KEY_ENCRYPTION_KEY` (`current`) and the comma-separated
    /// `KEY_ENCRYPTION_KEY_PREVIOUS`; the error names what is wrong, never a key.
    pub fn new(current: &str, previous: Option<&str>) -> Result<Self, String> {
        let current = Key::parse("KEY_ENCRYPTION_KEY", current)?;
        let previous = previous
            .unwrap_or("")
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| Key::parse("KEY_ENCRYPTION_KEY_PREVIOUS", k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { current, previous })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for `context` under the current key with this nonce, which must
    /// never repeat under one key (pass `random::bytes()`).
    pub fn seal(&self, plaintext: &str, context: &str, nonce: [u8; NONCE_LEN]) -> String {
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        format!(
            "{VERSION}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(body)
        )
    }

    /// Opens a value sealed for `context` under the current or a previous key.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, OpenError> {
        let (key_id, body) = parts(sealed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Tampered)?;
        String::from_utf8(plain).map_err(|_| OpenError::Tampered)
    }

    /// Whether a sealed value should be resealed under the current key.
    pub fn is_stale(&self, sealed: &str) -> bool {
        parts(sealed).is_ok_and(|(id, _)| id != self.current.id)
    }
}

/// What may be shown of a provider key in lists and logs: a few leading characters (enough
/// to tell `sk-or-v1-` from `sk-proj-`) and the last four; a short key shows nothing.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 16 {
        return "****".to_owned();
    }
    let head: String = chars[..(chars.len() / 4).min(9)].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// The key id and the decoded body of a sealed value.
fn parts(sealed: &str) -> Result<(&str, Vec<u8>), OpenError> {
    let mut fields = sealed.splitn(3, '.');
    let (Some(VERSION), Some(id), Some(body)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(OpenError::Malformed);
    };
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| OpenError::Malformed)?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    Ok((id, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        URL_SAFE_NO_PAD.encode([byte; 32])
    }

    #[test]
    fn a_sealed_value_opens_for_its_context_only() {
        let ring = Keyring::new(&key(1), None).unwrap();
        let sealed = ring.seal("sk-or-v1-secret", "provider_key:pk_1", [7; 12]);
        assert!(sealed.starts_with(&format!("v1.{}.", ring.current_id())));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            ring.open(&sealed, "provider_key:pk_1").unwrap(),
            "sk-or-v1-secret"
        );
        assert_eq!(
            ring.open(&sealed, "provider_key:pk_2"),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn the_nonce_makes_each_sealing_different() {
        let ring = Keyring::new(&key(1), None).unwrap();
        let a = ring.seal("same", "ctx", [1; 12]);
        let b = ring.seal("same", "ctx", [2; 12]);
        assert_ne!(a, b);
        assert_eq!(ring.open(&a, "ctx").unwrap(), ring.open(&b, "ctx").unwrap());
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let ring = Keyring::new(&key(1), None).unwrap();
        let sealed = ring.seal("secret", "ctx", [3; 12]);
        let (head, body) = sealed.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 0x01;
            let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&raw));
            assert_eq!(
                ring.open(&forged, "ctx"),
                Err(OpenError::Tampered),
                "byte {i}"
            );
            raw[i] ^= 0x01;
        }
    }

    #[test]
    fn previous_keys_open_and_mark_values_for_resealing() {
        let old = Keyring::new(&key(1), None).unwrap();
        let sealed = old.seal("secret", "ctx", [4; 12]);
        let rotated = Keyring::new(&key(2), Some(&format!(" {} ", key(1)))).unwrap();
        assert_ne!(rotated.current_id(), old.current_id());
        assert!(rotated.is_stale(&sealed));
        assert_eq!(rotated.open(&sealed, "ctx").unwrap(), "secret");
        let resealed = rotated.seal("secret", "ctx", [5; 12]);
        assert!(!rotated.is_stale(&resealed));
        let forgotten = Keyring::new(&key(2), None).unwrap();
        assert_eq!(
            forgotten.open(&sealed, "ctx"),
            Err(OpenError::UnknownKey(old.current_id().to_owned()))
        );
    }

    #[test]
    fn malformed_values_and_keys_are_named_not_panicked_on() {
        let ring = Keyring::new(&key(1), None).unwrap();
        for bad in [
            "",
            "v1",
            "v1.abc",
            "v2.abc.AAAA",
            "v1.abc.not base64",
            "v1.abc.AAAA",
        ] {
            assert_eq!(ring.open(bad, "ctx"), Err(OpenError::Malformed), "{bad:?}");
        }
        let short = URL_SAFE_NO_PAD.encode([1u8; 16]);
        assert!(Keyring::new(&short, None).unwrap_err().contains("32 bytes"));
        assert!(Keyring::new("***", None).unwrap_err().contains("base64url"));
        let err = Keyring::new(&key(1), Some("nope!")).unwrap_err();
        assert!(err.contains("KEY_ENCRYPTION_KEY_PREVIOUS"), "{err}");
        let shown = format!("{ring:?}");
        assert!(!shown.contains(&key(1)), "Debug never shows a key: {shown}");
    }

    #[test]
    fn a_masked_key_shows_its_kind_and_last_four_only() {
        // Built, not written out: a test value, not a key.
        let key = format!("sk-or-v1-{}", "test".repeat(8));
        assert_eq!(mask(&key), "sk-or-v1-****test");
        assert_eq!(mask("sk-proj-AAAABBBBCCCC"), "sk-pr****CCCC");
        assert_eq!(mask("short-key"), "****");
    }
}

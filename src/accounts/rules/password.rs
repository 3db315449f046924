//! The password policy and Argon2id hashing. Lengths: at least [`MIN_PASSWORD_CHARS`]
//! characters (Unicode scalar values) and at most [`MAX_PASSWORD_BYTES`] bytes of UTF-8;
//! a password on the built-in list of the most common ones is refused.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Most bytes a password may have.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// The most common passwords of 10 characters or more (from public breach-frequency lists),
/// compared case-insensitively.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "0123456789",
    "0987654321",
    "1111111111",
    "0000000000",
    "1234512345",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "qwerty12345",
    "qwerty123456",
    "1234qwerty",
    "asdfghjkl;",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "iloveyou12",
    "iloveyou123",
    "football123",
    "baseball123",
    "superman123",
    "princess123",
    "sunshine123",
    "welcome123",
    "welcome1234",
    "letmein123",
    "trustno1234",
    "administrator",
    "changeme123",
    "qazwsxedcrfv",
    "zaq12wsxcde3",
    "abcdefghij",
    "abc1234567",
    "monkey12345",
    "dragon12345",
    "michael123",
    "charlie123",
    "1234567890a",
    "a1234567890",
    "aaaaaaaaaa",
    "iloveyou1234",
    "starwars123",
    "whatever123",
    "computer123",
    "internet123",
    "samsung123",
    "freedom123",
    "jordan2323",
];

/// Why a password is refused (the field error's message).
pub fn check(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("must be at least 10 characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err("must be at most 256 bytes");
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err("is one of the most common passwords; choose another");
    }
    Ok(())
}

/// Argon2id cost: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    pub const DEFAULT: HashCost = HashCost {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    fn hasher(self) -> Result<Argon2<'static>, String> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| format!("Argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) of `password` with `salt`
/// (16 random bytes) at `cost`.
pub fn hash(password: &str, salt: &[u8; 16], cost: HashCost) -> Result<String, String> {
    let salt = SaltString::encode_b64(salt).map_err(|e| format!("salt: {e}"))?;
    cost.hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hash: {e}"))
}

/// Whether `password` matches the PHC string (its own parameters are used). A string that
/// is not a PHC hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether a stored hash is weaker than `cost` (or not Argon2id), so it is rehashed at the
/// next successful sign-in.
pub fn needs_rehash(phc: &str, cost: HashCost) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    params.m_cost() < cost.memory_kib
        || params.t_cost() < cost.iterations
        || params.p_cost() < cost.parallelism
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn length_counts_characters_for_the_minimum_and_bytes_for_the_maximum() {
        assert_eq!(check("short"), Err("must be at least 10 characters"));
        assert!(check("ten chars!").is_ok());
        // Ten characters of two bytes each: long enough.
        assert!(check("éééééééééé").is_ok());
        assert!(check(&"x".repeat(256)).is_ok());
        assert_eq!(check(&"x".repeat(257)), Err("must be at most 256 bytes"));
        // 129 two-byte characters: 258 bytes.
        assert_eq!(check(&"é".repeat(129)), Err("must be at most 256 bytes"));
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        assert!(check("password123").is_err());
        assert!(check("QWERTYUIOP").is_err());
        assert!(check("correct horse battery").is_ok());
    }

    #[test]
    fn a_hash_is_an_argon2id_phc_string_that_verifies_only_its_password() {
        let phc = hash("correct horse battery", &[7; 16], CHEAP).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterY", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
    }

    #[test]
    fn weaker_hashes_need_a_rehash() {
        let phc = hash("correct horse battery", &[7; 16], CHEAP).unwrap();
        assert!(!needs_rehash(&phc, CHEAP));
        let stronger = HashCost {
            memory_kib: 128,
            ..CHEAP
        };
        assert!(needs_rehash(&phc, stronger));
        assert!(needs_rehash(
            &phc,
            HashCost {
                iterations: 2,
                ..CHEAP
            }
        ));
        assert!(needs_rehash("$2b$10$bcrypt", CHEAP));
    }
}

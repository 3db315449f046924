//! Randomness for identifiers and secrets, from the platform's CSPRNG
//! (`crypto.getRandomValues` in the Workers runtime, the OS on the host).

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // getrandom only fails when the platform has no entropy source; the Workers runtime
    // always has crypto.getRandomValues, so a failure here is a broken runtime.
    getrandom::getrandom(&mut out).expect("the runtime provides randomness");
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The value of one hex digit (either case).
pub fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// An identifier: `prefix` followed by `2 * N` hex digits of randomness, e.g. `usr_3f9a…`.
pub fn id<const N: usize>(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 2 * N);
    out.push_str(prefix);
    out.push_str(&hex(&bytes::<N>()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn ids_have_the_prefix_and_differ() {
        let a = id::<8>("usr_");
        let b = id::<8>("usr_");
        assert!(a.starts_with("usr_") && a.len() == 4 + 16, "{a}");
        assert_ne!(a, b);
    }
}

//! `application/x-www-form-urlencoded` bodies, as Stripe's API takes them.
//!
//! Stripe expresses nested parameters as bracketed keys — `line_items[0][price]=price_123`,
//! `metadata[user_id]=usr_1` — so a body is just an ordered list of flat `(key, value)` pairs.
//! Encoding follows the WHATWG urlencoded serializer: ASCII alphanumerics and `*-._` are kept,
//! a space becomes `+`, and every other UTF-8 byte becomes `%XX` (upper-case hex). That
//! includes the brackets in keys (`%5B`, `%5D`), which Stripe decodes like any other byte.

use std::fmt::Display;

/// An ordered list of form fields, built up and then [encoded](Form::encode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value` (builder style); keys may repeat and keep their order.
    pub fn field(mut self, key: &str, value: impl Display) -> Self {
        self.push(key, value);
        self
    }

    /// Adds `key=value` in place (for loops over line items and metadata).
    pub fn push(&mut self, key: &str, value: impl Display) {
        self.pairs.push((key.to_owned(), value.to_string()));
    }

    /// Adds `key=value` if there is a value; `None` adds nothing.
    pub fn optional(self, key: &str, value: Option<impl Display>) -> Self {
        match value {
            Some(value) => self.field(key, value),
            None => self,
        }
    }

    /// The body: `key=value` pairs, percent-encoded, joined with `&`, in insertion order.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            encode_into(&mut out, key);
            out.push('=');
            encode_into(&mut out, value);
        }
        out
    }
}

/// Appends `text` to `out`, percent-encoded per the WHATWG urlencoded serializer.
fn encode_into(out: &mut String, text: &str) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(DIGITS[usize::from(b >> 4)]));
                out.push(char::from(DIGITS[usize::from(b & 0xf)]));
            }
        }
    }
}

/// Decodes one name or value: `+` is a space, `%XX` is a byte, anything else (including an
/// invalid `%` sequence) is kept as it is; invalid UTF-8 becomes U+FFFD.
fn decode_component(text: &str) -> String {
    use super::random::hex_digit as digit;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(digit);
                let lo = bytes.get(i + 2).copied().and_then(digit);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi << 4) | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a urlencoded body into its `(key, value)` pairs, in order (the inverse of
/// [`Form::encode`]). Empty segments (`&&`) are skipped; a segment without `=` has an empty
/// value; only the first `=` splits.
pub fn decode(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            (decode_component(key), decode_component(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_stripe_checkout_body_is_encoded_exactly() {
        let form = Form::new()
            .field("mode", "subscription")
            .field("customer_email", "ada+billing@example.com")
            .field("line_items[0][price]", "price_123")
            .field("line_items[0][quantity]", 1)
            .field(
                "success_url",
                "https://app.example.com/billing?session_id={CHECKOUT_SESSION_ID}",
            )
            .field("cancel_url", "https://app.example.com/billing")
            .field("metadata[user_id]", "usr_1")
            .optional("client_reference_id", None::<&str>)
            .optional("subscription_data[metadata][plan]", Some("pro"));
        // Checked against `new URLSearchParams([...]).toString()` in Node.
        assert_eq!(
            form.encode(),
            "mode=subscription\
             &customer_email=ada%2Bbilling%40example.com\
             &line_items%5B0%5D%5Bprice%5D=price_123\
             &line_items%5B0%5D%5Bquantity%5D=1\
             &success_url=https%3A%2F%2Fapp.example.com%2Fbilling%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D\
             &cancel_url=https%3A%2F%2Fapp.example.com%2Fbilling\
             &metadata%5Buser_id%5D=usr_1\
             &subscription_data%5Bmetadata%5D%5Bplan%5D=pro"
        );
    }

    #[test]
    fn the_kept_set_spaces_and_unicode() {
        let form = Form::new().field("k", "a b*~-._!é😀");
        // Node: new URLSearchParams([["k", "a b*~-._!é😀"]]).toString()
        assert_eq!(form.encode(), "k=a+b*%7E-._%21%C3%A9%F0%9F%98%80");
        assert_eq!(Form::new().encode(), "");
        assert_eq!(Form::default(), Form::new());
    }

    #[test]
    fn push_and_optional_keep_insertion_order() {
        let mut form = Form::new()
            .optional("a", Some(1))
            .optional("b", None::<u32>);
        for i in 0..2 {
            form.push(&format!("items[{i}]"), i * 10);
        }
        form.push("a", "again");
        assert_eq!(
            decode(&form.encode()),
            owned(&[
                ("a", "1"),
                ("items[0]", "0"),
                ("items[1]", "10"),
                ("a", "again")
            ])
        );
    }

    #[test]
    fn encoding_round_trips() {
        let pairs = [
            ("metadata[note]", "fish & chips = £4.50 + tip"),
            ("line_items[0][price]", "price_123"),
            ("a+b", "c%20d"),
            ("ключ", "значение 😀"),
            ("", ""),
            ("spaces  here", "  "),
            ("=&+%[]", "[]%+&="),
        ];
        let mut form = Form::new();
        for (k, v) in pairs {
            form.push(k, v);
        }
        let encoded = form.encode();
        assert!(!encoded.contains(' '));
        assert_eq!(decode(&encoded), owned(&pairs));
    }

    #[test]
    fn decoding_matches_url_search_params() {
        // Node: [...new URLSearchParams("a=%zz&b=%4&c=%&d=x%41%2By+z&&e&=f&g=h=i&%C3%28=1")]
        assert_eq!(
            decode("a=%zz&b=%4&c=%&d=x%41%2By+z&&e&=f&g=h=i&%C3%28=1"),
            owned(&[
                ("a", "%zz"),
                ("b", "%4"),
                ("c", "%"),
                ("d", "xA+y z"),
                ("e", ""),
                ("", "f"),
                ("g", "h=i"),
                ("\u{FFFD}(", "1"),
            ])
        );
        assert_eq!(decode(""), owned(&[]));
        assert_eq!(decode("x=%e2%82%ac"), owned(&[("x", "€")]));
    }
}

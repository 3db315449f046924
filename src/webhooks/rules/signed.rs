//! Signed deliveries: who signs a webhook, the headers their signature travels in, and the
//! one check the pipeline makes before a signed route's handler runs (see
//! [`crate::http::access::Signed`]). The schemes themselves are in
//! [`crate::webhooks::rules::svix`] and [`crate::webhooks::rules::stripe_signature`].

use crate::webhooks::rules::{stripe_signature, svix};

/// Who signs a route's deliveries. A new provider is a variant here, its scheme in
/// [`verify`], and its secret in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Clerk's events, delivered and signed by Svix (`svix-*` or `webhook-*` headers).
    Clerk,
    /// Stripe's events (`Stripe-Signature`).
    Stripe,
}

crate::stored_impls!(Signer("webhook provider"), serde);

impl Signer {
    /// Every signer.
    pub const ALL: [Signer; 2] = [Signer::Clerk, Signer::Stripe];

    /// The provider's name, as the webhook inbox stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Signer::Clerk => "clerk",
            Signer::Stripe => "stripe",
        }
    }

    /// The setting holding the secret (or comma-separated secrets) deliveries are signed with.
    pub fn secret_setting(self) -> &'static str {
        match self {
            Signer::Clerk => "CLERK_WEBHOOK_SECRET",
            Signer::Stripe => "STRIPE_WEBHOOK_SECRET",
        }
    }

    /// The header carrying the signature itself.
    pub fn signature_header(self) -> &'static str {
        match self {
            Signer::Clerk => "svix-signature",
            Signer::Stripe => "Stripe-Signature",
        }
    }

    /// How the signature is made, in a sentence for the API document.
    pub fn scheme(self) -> &'static str {
        match self {
            Signer::Clerk => {
                "Svix's signature (Clerk's webhooks): `svix-signature` holds `v1,<base64>` \
                 HMAC-SHA256 signatures of `{svix-id}.{svix-timestamp}.{raw body}` under the \
                 endpoint's `whsec_` secret; `svix-id` and `svix-timestamp` are required too \
                 (or their `webhook-*` names), and the timestamp must be within 5 minutes."
            }
            Signer::Stripe => {
                "Stripe's signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>`, the hex \
                 HMAC-SHA256 of `{t}.{raw body}` under the endpoint's secret; `t` must be \
                 within 5 minutes."
            }
        }
    }
}

/// A delivery whose signature verified, handed to its route's handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDelivery {
    pub signer: Signer,
    /// The delivery's id where the signature covers one (Svix's message id, stable across
    /// retries); `None` where the provider puts it in the body (Stripe's event id).
    pub id: Option<String>,
    /// The body exactly as received: the bytes the signature covers.
    pub body: Vec<u8>,
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The configured secret cannot verify anything (an entry is not a usable secret).
    BadSecret,
    /// The signature is missing, malformed, stale or matches no secret; why.
    Unsigned(String),
}

/// Verifies a delivery to a route signed by `signer` against `secrets` (the setting: one
/// secret or a comma-separated list, any of which may have signed it). `header` reads a
/// request header by name; `now_secs` is the current Unix time.
pub fn verify(
    signer: Signer,
    secrets: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now_secs: i64,
) -> Result<SignedDelivery, Refusal> {
    let id = match signer {
        Signer::Clerk => {
            let either = |names: [&str; 2]| names.iter().find_map(|name| header(name));
            let id = either(["svix-id", "webhook-id"]);
            let timestamp = either(["svix-timestamp", "webhook-timestamp"]);
            let signature = either(["svix-signature", "webhook-signature"]);
            let headers = svix::SvixHeaders {
                id: id.as_deref(),
                timestamp: timestamp.as_deref(),
                signature: signature.as_deref(),
            };
            let id = svix::verify(secrets, headers, body, now_secs).map_err(|e| match e {
                svix::SvixError::BadSecret => Refusal::BadSecret,
                other => Refusal::Unsigned(other.message()),
            })?;
            Some(id.to_owned())
        }
        Signer::Stripe => {
            let signature = header(signer.signature_header());
            stripe_signature::verify(secrets, signature.as_deref(), body, now_secs)
                .map_err(|e| Refusal::Unsigned(e.message()))?;
            None
        }
    };
    Ok(SignedDelivery {
        signer,
        id,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"ping"}"#;
    const STRIPE_SECRET: &str = "whsec_test_stripe"; // a made-up test secret
    const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // Svix's documented example

    fn headers<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn a_stripe_delivery_signed_with_a_listed_secret_is_handed_on_whole() {
        let signed = stripe_signature::header(STRIPE_SECRET, NOW, BODY);
        let pairs = [("stripe-signature", signed)];
        let secrets = format!("whsec_other, {STRIPE_SECRET}");
        let delivery = verify(Signer::Stripe, &secrets, &headers(&pairs), BODY, NOW).unwrap();
        assert_eq!(
            delivery,
            SignedDelivery {
                signer: Signer::Stripe,
                id: None,
                body: BODY.to_vec(),
            }
        );
    }

    #[test]
    fn a_clerk_delivery_is_verified_by_svix_and_named_by_its_id() {
        let key = svix::secret_key(SVIX_SECRET).unwrap();
        let pairs = [
            ("webhook-id", "msg_1".to_owned()),
            ("svix-timestamp", NOW.to_string()),
            ("svix-signature", svix::sign(&key, "msg_1", NOW, BODY)),
        ];
        let delivery = verify(Signer::Clerk, SVIX_SECRET, &headers(&pairs), BODY, NOW).unwrap();
        assert_eq!(delivery.signer, Signer::Clerk);
        assert_eq!(delivery.id.as_deref(), Some("msg_1"));
        assert_eq!(delivery.body, BODY);
    }

    #[test]
    fn an_unsigned_or_tampered_delivery_is_refused_with_why() {
        for signer in Signer::ALL {
            let secret = match signer {
                Signer::Clerk => SVIX_SECRET,
                Signer::Stripe => STRIPE_SECRET,
            };
            let refused = verify(signer, secret, &headers(&[]), BODY, NOW).unwrap_err();
            assert!(matches!(refused, Refusal::Unsigned(_)), "{signer:?}");
        }
        let signed = stripe_signature::header(STRIPE_SECRET, NOW, BODY);
        let pairs = [("Stripe-Signature", signed)];
        assert_eq!(
            verify(Signer::Stripe, STRIPE_SECRET, &headers(&pairs), b"{}", NOW),
            Err(Refusal::Unsigned(
                "no Stripe-Signature v1 signature matches".to_owned()
            ))
        );
    }

    #[test]
    fn a_svix_secret_that_is_not_one_cannot_verify_anything() {
        assert_eq!(
            verify(Signer::Clerk, "not base64!", &headers(&[]), BODY, NOW),
            Err(Refusal::BadSecret)
        );
    }
}

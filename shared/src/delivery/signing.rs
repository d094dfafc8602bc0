//! Standard Webhooks v1 signatures: `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`, one per
//! active secret, space-separated, so receivers keep verifying while a secret is rotated.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// Why a signing secret was refused. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("signing secret must start with `whsec_`")]
    MissingPrefix,
    #[error("signing secret is not valid base64 after `whsec_`")]
    NotBase64,
    #[error("signing secret must decode to 24..=64 bytes, got {0}")]
    BadLength(usize),
}

/// A `whsec_`-prefixed signing secret, decoded. `Debug` redacts it.
pub struct WebhookSecret(SecretBox<Vec<u8>>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

impl Clone for WebhookSecret {
    fn clone(&self) -> Self {
        Self(SecretBox::new(Box::new(self.0.expose_secret().clone())))
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`. The spec asks for 24–64 random bytes; the official libraries
    /// accept shorter secrets, but we refuse them so a truncated paste is caught at load time.
    pub fn parse(value: &str) -> Result<Self, SecretError> {
        let encoded = value
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::BadLength(bytes.len()));
        }
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// The base64 signature (without `v1,`) of `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret());
        // HMAC accepts keys of any length; the error arm is unreachable but keeps us panic-free.
        let Ok(mut mac) = mac else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

impl<'de> serde::Deserialize<'de> for WebhookSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = secrecy::SecretString::deserialize(deserializer)?;
        Self::parse(raw.expose_secret()).map_err(serde::de::Error::custom)
    }
}

/// The three Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub webhook_id: String,
    pub webhook_timestamp: String,
    pub webhook_signature: String,
}

impl SignatureHeaders {
    pub const ID: &'static str = "webhook-id";
    pub const TIMESTAMP: &'static str = "webhook-timestamp";
    pub const SIGNATURE: &'static str = "webhook-signature";

    /// Signs `body` with every secret (newest first, as configured), e.g. during a rotation.
    pub fn sign(id: &str, timestamp: i64, body: &[u8], secrets: &[WebhookSecret]) -> Self {
        let signature = secrets
            .iter()
            .map(|secret| format!("v1,{}", secret.sign(id, timestamp, body)))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            webhook_id: id.to_owned(),
            webhook_timestamp: timestamp.to_string(),
            webhook_signature: signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TIMESTAMP: i64 = 1_649_367_553;
    const SPEC_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn reproduces_the_spec_test_vector() {
        let secret = WebhookSecret::parse(SPEC_SECRET).expect("spec secret");

        let headers =
            SignatureHeaders::sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), &[secret]);

        assert_eq!(
            headers.webhook_signature,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        assert_eq!(headers.webhook_timestamp, "1649367553");
        assert_eq!(headers.webhook_id, SPEC_ID);
    }

    #[test]
    fn rotation_sends_one_signature_per_secret() {
        let old = WebhookSecret::parse(SPEC_SECRET).expect("old");
        let new = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("new");
        let headers =
            SignatureHeaders::sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), &[new, old]);

        let parts: Vec<&str> = headers.webhook_signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(parts[0].starts_with("v1,") && parts[0] != parts[1]);
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        assert_eq!(
            WebhookSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").err(),
            Some(SecretError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!notbase64!!").err(),
            Some(SecretError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").err(),
            Some(SecretError::BadLength(5))
        );
        let secret = WebhookSecret::parse(SPEC_SECRET).expect("valid");
        assert!(!format!("{secret:?}").contains("C2FV"));
    }
}

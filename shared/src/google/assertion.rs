//! The service account's JWT bearer assertion (RS256), one per impersonated agent.
//! Facts: `../shared/reference/calendar-apis.md` §5.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::calendar::CalendarError;

/// Google accepts assertions valid for at most an hour.
const LIFETIME_SECS: i64 = 3600;

#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    sub: &'a str,
}

/// The signing half of the service account: parsed once, never printed.
pub(super) struct Signer {
    key: EncodingKey,
    key_id: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key", &"[redacted]")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Signer {
    /// From the key file's `private_key` (PKCS#8 PEM). The error never quotes the key.
    pub(super) fn new(
        private_key_pem: &str,
        key_id: Option<String>,
    ) -> Result<Self, CalendarError> {
        let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|error| {
            CalendarError::Auth {
                operation: "service account",
                message: format!("private_key is not an RSA private key in PEM: {error}"),
            }
        })?;
        Ok(Self { key, key_id })
    }

    /// `iss` = the service account, `sub` = the agent it acts as, for `scope`, sent to `aud`.
    pub(super) fn assertion(
        &self,
        issuer: &str,
        subject: &str,
        scope: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<String, CalendarError> {
        let iat = now.timestamp();
        let claims = Claims {
            iss: issuer,
            scope,
            aud: audience,
            iat,
            exp: iat + LIFETIME_SECS,
            sub: subject,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|error| CalendarError::Auth {
            operation: "service account",
            message: format!("could not sign the assertion: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation, decode};

    use super::*;

    const KEY_FILE: &str = include_str!("../../../tests/fixtures/google/test-service-account.json");
    const PUBLIC_KEY: &str =
        include_str!("../../../tests/fixtures/google/test-service-account.pub.pem");

    #[derive(Debug, serde::Deserialize)]
    struct Read {
        iss: String,
        sub: String,
        scope: String,
        aud: String,
        iat: i64,
        exp: i64,
    }

    #[test]
    fn assertions_verify_with_the_public_key_and_last_an_hour() {
        let file: serde_json::Value = serde_json::from_str(KEY_FILE).expect("key file");
        let private_key = file["private_key"].as_str().expect("private_key");
        let signer = Signer::new(private_key, Some("test-key-1".to_owned())).expect("key");
        let now = DateTime::from_timestamp(1_773_914_400, 0).expect("time");
        let jwt = signer
            .assertion(
                "sa@p.iam.gserviceaccount.com",
                "agent@example.com",
                "https://www.googleapis.com/auth/calendar.events.readonly",
                "https://oauth2.googleapis.com/token",
                now,
            )
            .expect("signed");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["https://oauth2.googleapis.com/token"]);
        validation.validate_exp = false;
        let read = decode::<Read>(
            &jwt,
            &DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("public key"),
            &validation,
        )
        .expect("verifies");
        assert_eq!(read.claims.iss, "sa@p.iam.gserviceaccount.com");
        assert_eq!(read.claims.sub, "agent@example.com");
        assert_eq!(read.claims.exp - read.claims.iat, 3600);
        assert_eq!(read.claims.iat, 1_773_914_400);
        assert!(read.claims.scope.ends_with("calendar.events.readonly"));
        assert_eq!(read.claims.aud, "https://oauth2.googleapis.com/token");
        assert_eq!(read.header.kid.as_deref(), Some("test-key-1"));
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_without_quoting_it() {
        let error = Signer::new("not-a-key-SECRETVALUE", None).expect_err("refused");
        assert!(!error.to_string().contains("SECRETVALUE"));
    }
}

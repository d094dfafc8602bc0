//! What the Graph and Google clients share on the wire: OAuth token answers, short error texts,
//! transport errors and times.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use crate::calendar::CalendarError;

/// Longest error text kept from a calendar service's answer.
const MESSAGE_LIMIT: usize = 200;

pub(crate) fn clipped(text: &str) -> String {
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(crate) fn transport(operation: &'static str, error: &reqwest::Error) -> CalendarError {
    // reqwest's Display names the URL; ours carry no secret (tokens go in headers only).
    CalendarError::Transport {
        operation,
        message: error.to_string(),
    }
}

/// An RFC 3339 UTC time to the second, as both services take it.
pub(crate) fn utc_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A token endpoint's refusal: the OAuth `error` code and a short `error_description` (which
/// never holds the credential).
#[derive(Debug)]
pub(crate) struct TokenRefusal {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl TokenRefusal {
    pub(crate) fn into_auth_error(self) -> CalendarError {
        CalendarError::Auth {
            operation: "token",
            message: format!(
                "HTTP {} {}: {}",
                self.status.as_u16(),
                self.code,
                self.message
            ),
        }
    }
}

/// An OAuth token answer: the token and its lifetime in seconds, or the refusal.
pub(crate) async fn token_answer(
    response: reqwest::Response,
) -> Result<Result<(SecretString, u64), TokenRefusal>, CalendarError> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Ok(Err(TokenRefusal {
            status,
            code: body["error"].as_str().unwrap_or("unknown").to_owned(),
            message: clipped(body["error_description"].as_str().unwrap_or("")),
        }));
    }
    let value = body["access_token"]
        .as_str()
        .ok_or_else(|| CalendarError::Protocol {
            operation: "token",
            message: "no access_token in the token answer".to_owned(),
        })?;
    let expires_in = body["expires_in"].as_u64().unwrap_or(3599);
    Ok(Ok((SecretString::from(value.to_owned()), expires_in)))
}

//! HTTP for deliveries: no redirects, no proxies, a total timeout and a cap on the response size.
//! Webhook requests additionally go through the SSRF guard and connect only to the checked
//! addresses. Errors never carry reqwest's message, which includes the URL (and so any token in
//! its path or query).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

use super::ssrf::{PinnedTarget, Refusal, Resolve, UrlPolicy};

/// How a request failed before a complete response arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportFailure {
    #[error("timed out")]
    Timeout,
    #[error("connection failed")]
    Connect,
    #[error("request failed ({0})")]
    Other(&'static str),
}

impl TransportFailure {
    pub(crate) fn from_reqwest(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_connect() {
            Self::Connect
        } else if err.is_body() || err.is_decode() {
            Self::Other("reading the response body")
        } else if err.is_builder() {
            Self::Other("building the request")
        } else {
            Self::Other("sending the request")
        }
    }
}

/// A response, its body read up to the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// `Retry-After` as a wait from now (seconds or an HTTP date).
    pub retry_after: Option<Duration>,
    /// For a 3xx: the host of `Location` (never the full URL), to name it in the reason.
    pub redirect_host: Option<String>,
    /// At most the configured number of bytes.
    pub body: Vec<u8>,
    /// The receiver sent more than the cap; the rest was not read.
    pub truncated: bool,
}

/// Reads a response: status, `Retry-After`, the redirect target's host and at most `limit`
/// bytes of body; the rest is never read, so a receiver streaming without end cannot hold us.
pub(crate) async fn read_reply(
    mut response: reqwest::Response,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<HttpReply, TransportFailure> {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers(), now);
    let redirect_host = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| response.url().join(location).ok())
        .and_then(|target| target.host_str().map(str::to_owned));
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TransportFailure::from_reqwest(&e))?
    {
        let room = limit.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpReply {
        status,
        retry_after,
        redirect_host,
        body,
        truncated,
    })
}

/// `Retry-After` in seconds or as an HTTP date; a date in the past is zero.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.to_utc();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The common client settings: redirects are failures, proxies are ignored (a proxy would
/// resolve the name itself and undo the pinning), one total timeout.
pub(crate) fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    crate::tls::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
}

/// Limits of one delivery request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            max_response_bytes: 64 * 1024,
        }
    }
}

/// Why a guarded request produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardedError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Transport(#[from] TransportFailure),
}

/// POSTs to subscriber-supplied URLs through the SSRF guard.
#[derive(Debug, Clone)]
pub struct GuardedHttp {
    policy: UrlPolicy,
    resolver: Arc<dyn Resolve>,
    limits: HttpLimits,
}

impl GuardedHttp {
    pub fn new(policy: UrlPolicy, resolver: Arc<dyn Resolve>, limits: HttpLimits) -> Self {
        Self {
            policy,
            resolver,
            limits,
        }
    }

    pub fn limits(&self) -> HttpLimits {
        self.limits
    }

    /// Checks `url`, then POSTs `body` to the checked addresses only.
    pub async fn post(
        &self,
        url: &Url,
        headers: HeaderMap,
        body: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Result<HttpReply, GuardedError> {
        let target = self.policy.check(url, self.resolver.as_ref()).await?;
        let client = self.pinned_client(&target)?;
        let response = client
            .post(target.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| TransportFailure::from_reqwest(&e))?;
        Ok(read_reply(response, self.limits.max_response_bytes, now).await?)
    }

    /// A client per request: the DNS override pins this host to the addresses just checked.
    /// Building one costs little (the TLS roots are shared, `crate::tls`) next to the handshake a
    /// new connection needs anyway.
    fn pinned_client(&self, target: &PinnedTarget) -> Result<reqwest::Client, TransportFailure> {
        let mut builder = client_builder(self.limits.timeout);
        if let Some(domain) = &target.domain {
            builder = builder.resolve_to_addrs(domain, &target.addrs);
        }
        builder
            .build()
            .map_err(|_| TransportFailure::Other("building the HTTP client"))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .expect("time")
            .to_utc();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(60)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }
}

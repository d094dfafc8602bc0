//! The guard in front of every webhook request: which URLs we may call at all.
//!
//! A subscriber URL is attacker-influenced input. The guard allows `https` only (plain `http`
//! only to loopback, and only with the local-development flag), resolves the host **once**,
//! refuses if **any** resolved address is in a forbidden range, and hands back the checked
//! addresses so the HTTP client connects to exactly those (no second lookup, so no DNS-rebinding
//! window). Redirects are never followed (see `http.rs`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use async_trait::async_trait;
use url::{Host, Url};

/// The address ranges a webhook may never reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenRange {
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16).
    Private,
    LinkLocal,
    /// IPv6 fc00::/7.
    UniqueLocal,
    /// 100.64.0.0/10 (RFC 6598).
    SharedCgnat,
    Multicast,
    Unspecified,
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32.
    Documentation,
    /// 169.254.169.254 and fd00:ec2::254 (EC2/ECS/Lambda metadata endpoints).
    CloudMetadata,
    /// 0/8, 192.0.0/24, 198.18/15 (benchmarking), 240/4, and similar special-purpose blocks.
    Reserved,
}

impl fmt::Display for ForbiddenRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private (RFC 1918)",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::SharedCgnat => "shared CGNAT (100.64.0.0/10)",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::CloudMetadata => "cloud metadata",
            Self::Reserved => "reserved",
        })
    }
}

/// Why a URL was refused before any connection. Messages name the host, never the path or the
/// query (which may hold a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a valid absolute URL")]
    InvalidUrl,
    #[error("scheme `{scheme}` is not allowed (https only)")]
    Scheme { scheme: String },
    #[error("plain http is allowed only to loopback with ALLOW_LOOPBACK_HTTP set")]
    PlainHttp,
    #[error("URLs with embedded credentials (user:password@) are not allowed")]
    Credentials,
    #[error("host {host} is a localhost name (RFC 6761), refused without resolving it")]
    LocalhostName { host: String },
    #[error("host {host} could not be resolved")]
    Unresolvable { host: String },
    #[error("host {host} resolves to no address")]
    NoAddress { host: String },
    #[error("host {host} resolves to {addr}, a {range} address{}", if *.embedded { " (embedded in IPv6)" } else { "" })]
    Forbidden {
        host: String,
        addr: IpAddr,
        range: ForbiddenRange,
        /// The address is an IPv4 address inside an IPv6 one (mapped, compatible, NAT64, 6to4).
        embedded: bool,
    },
}

pub use crate::ports::Resolve;

/// The operating system's resolver (tokio's `lookup_host`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// What the guard allows beyond public https.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Local development only: loopback destinations (http or https) are allowed.
    pub allow_loopback: bool,
}

/// A URL that passed the guard, with the addresses the connection must use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedTarget {
    pub url: Url,
    /// The host name to pin (None when the URL names an IP literal: nothing to resolve).
    pub domain: Option<String>,
    pub addrs: Vec<SocketAddr>,
}

impl UrlPolicy {
    /// Checks the URL, resolves it once and checks every address.
    pub async fn check(&self, url: &Url, resolver: &dyn Resolve) -> Result<PinnedTarget, Refusal> {
        let plain_http = match url.scheme() {
            "https" => false,
            "http" if self.allow_loopback => true,
            "http" => return Err(Refusal::PlainHttp),
            other => {
                return Err(Refusal::Scheme {
                    scheme: other.to_owned(),
                });
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        let port = url.port_or_known_default().ok_or(Refusal::InvalidUrl)?;
        let (domain, ips) = match url.host() {
            None => return Err(Refusal::InvalidUrl),
            Some(Host::Ipv4(ip)) => (None, vec![IpAddr::V4(ip)]),
            Some(Host::Ipv6(ip)) => (None, vec![IpAddr::V6(ip)]),
            Some(Host::Domain(name)) if is_localhost_name(name) && !self.allow_loopback => {
                return Err(Refusal::LocalhostName {
                    host: name.to_owned(),
                });
            }
            Some(Host::Domain(name)) => {
                let resolved =
                    resolver
                        .resolve(name, port)
                        .await
                        .map_err(|_| Refusal::Unresolvable {
                            host: name.to_owned(),
                        })?;
                let ips: Vec<IpAddr> = resolved.iter().map(SocketAddr::ip).collect();
                (Some(name.to_owned()), ips)
            }
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        if ips.is_empty() {
            return Err(Refusal::NoAddress { host });
        }
        for &ip in &ips {
            if let Some((range, embedded)) = classify(ip) {
                let loopback_ok =
                    self.allow_loopback && range == ForbiddenRange::Loopback && !embedded;
                if !loopback_ok {
                    return Err(Refusal::Forbidden {
                        host,
                        addr: ip,
                        range,
                        embedded,
                    });
                }
            } else if plain_http {
                // Only loopback may be reached in the clear.
                return Err(Refusal::PlainHttp);
            }
        }
        Ok(PinnedTarget {
            url: url.clone(),
            domain,
            addrs: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        })
    }
}

/// `localhost` and `*.localhost` (any case, trailing dot or not) always mean this machine
/// (RFC 6761 §6.3), whatever a resolver says.
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The forbidden range `ip` falls in (and whether it was an IPv4 address inside IPv6), if any.
pub fn classify(ip: IpAddr) -> Option<(ForbiddenRange, bool)> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|range| (range, false)),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                // An embedded public address is still public; an embedded private one is not.
                return classify_v4(v4).map(|range| (range, true));
            }
            classify_v6(v6).map(|range| (range, false))
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<ForbiddenRange> {
    let [a, b, c, _] = ip.octets();
    let range = if ip == Ipv4Addr::new(169, 254, 169, 254) {
        ForbiddenRange::CloudMetadata
    } else if ip.is_unspecified() {
        ForbiddenRange::Unspecified
    } else if ip.is_loopback() {
        ForbiddenRange::Loopback
    } else if ip.is_private() {
        ForbiddenRange::Private
    } else if ip.is_link_local() {
        ForbiddenRange::LinkLocal
    } else if a == 100 && (b & 0b1100_0000) == 64 {
        ForbiddenRange::SharedCgnat
    } else if ip.is_broadcast() {
        ForbiddenRange::Broadcast
    } else if ip.is_multicast() {
        ForbiddenRange::Multicast
    } else if ip.is_documentation() {
        ForbiddenRange::Documentation
    } else if a == 0 || a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (b & 0xfe) == 18)
    {
        ForbiddenRange::Reserved
    } else {
        return None;
    };
    Some(range)
}

fn classify_v6(ip: Ipv6Addr) -> Option<ForbiddenRange> {
    let segments = ip.segments();
    let range = if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        ForbiddenRange::CloudMetadata
    } else if ip.is_unspecified() {
        ForbiddenRange::Unspecified
    } else if ip.is_loopback() {
        ForbiddenRange::Loopback
    } else if ip.is_multicast() {
        ForbiddenRange::Multicast
    } else if (segments[0] & 0xfe00) == 0xfc00 {
        ForbiddenRange::UniqueLocal
    } else if (segments[0] & 0xffc0) == 0xfe80 || (segments[0] & 0xffc0) == 0xfec0 {
        // fec0::/10 (deprecated site-local) is as internal as link-local.
        ForbiddenRange::LinkLocal
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        ForbiddenRange::Documentation
    } else if segments[0] == 0x0100 && segments[1..4] == [0, 0, 0] {
        // 100::/64 discard-only.
        ForbiddenRange::Reserved
    } else {
        return None;
    };
    Some(range)
}

/// The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
/// NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // ::a.b.c.d, but not :: or ::1 (those are IPv6's own unspecified and loopback).
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(tail(s[1], s[2]));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers every lookup with fixed addresses and records the names asked for.
    #[derive(Debug, Default)]
    struct Fixed {
        addrs: Vec<IpAddr>,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Resolve for Fixed {
        async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            self.asked.lock().expect("lock").push(host.to_owned());
            Ok(self
                .addrs
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect())
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip literal")
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    #[test]
    fn every_forbidden_range_is_named() {
        let cases = [
            ("127.0.0.1", ForbiddenRange::Loopback, false),
            ("10.0.0.1", ForbiddenRange::Private, false),
            ("172.31.255.255", ForbiddenRange::Private, false),
            ("192.168.1.1", ForbiddenRange::Private, false),
            ("169.254.169.254", ForbiddenRange::CloudMetadata, false),
            ("169.254.1.1", ForbiddenRange::LinkLocal, false),
            ("100.64.0.1", ForbiddenRange::SharedCgnat, false),
            ("100.127.255.254", ForbiddenRange::SharedCgnat, false),
            ("224.0.0.1", ForbiddenRange::Multicast, false),
            ("0.0.0.0", ForbiddenRange::Unspecified, false),
            ("255.255.255.255", ForbiddenRange::Broadcast, false),
            ("203.0.113.9", ForbiddenRange::Documentation, false),
            ("198.18.0.1", ForbiddenRange::Reserved, false),
            ("::1", ForbiddenRange::Loopback, false),
            ("::", ForbiddenRange::Unspecified, false),
            ("fd00:ec2::254", ForbiddenRange::CloudMetadata, false),
            ("fd12:3456::1", ForbiddenRange::UniqueLocal, false),
            ("fe80::1", ForbiddenRange::LinkLocal, false),
            ("ff02::1", ForbiddenRange::Multicast, false),
            ("2001:db8::1", ForbiddenRange::Documentation, false),
            ("::ffff:127.0.0.1", ForbiddenRange::Loopback, true),
            (
                "::ffff:169.254.169.254",
                ForbiddenRange::CloudMetadata,
                true,
            ),
            ("::10.0.0.1", ForbiddenRange::Private, true),
            ("64:ff9b::a00:1", ForbiddenRange::Private, true),
            ("2002:c0a8:0101::1", ForbiddenRange::Private, true),
        ];
        for (text, range, embedded) in cases {
            assert_eq!(classify(ip(text)), Some((range, embedded)), "{text}");
        }
        for public in [
            "93.184.215.14",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[tokio::test]
    async fn public_https_is_pinned_to_the_one_resolution() {
        let resolver = Fixed {
            addrs: vec![ip("93.184.215.14"), ip("2606:4700::1111")],
            ..Fixed::default()
        };

        let target = UrlPolicy::default()
            .check(&url("https://hooks.example.com/p?token=x"), &resolver)
            .await
            .expect("allowed");

        assert_eq!(target.domain.as_deref(), Some("hooks.example.com"));
        assert_eq!(
            target.addrs,
            vec![
                "93.184.215.14:443".parse().expect("addr"),
                "[2606:4700::1111]:443".parse().expect("addr")
            ]
        );
        assert_eq!(
            *resolver.asked.lock().expect("lock"),
            vec!["hooks.example.com"]
        );
    }

    #[tokio::test]
    async fn one_private_address_among_public_ones_refuses_the_host() {
        let resolver = Fixed {
            addrs: vec![ip("93.184.215.14"), ip("10.1.2.3")],
            ..Fixed::default()
        };
        let err = UrlPolicy::default()
            .check(&url("https://rebind.example.com/secret-path"), &resolver)
            .await
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "host rebind.example.com resolves to 10.1.2.3, a private (RFC 1918) address"
        );
    }

    #[tokio::test]
    async fn schemes_credentials_and_the_loopback_flag() {
        let resolver = Fixed::default();
        let strict = UrlPolicy::default();
        let dev = UrlPolicy {
            allow_loopback: true,
        };
        let check = |policy: UrlPolicy, text: &'static str| {
            let resolver = &resolver;
            async move { policy.check(&url(text), resolver).await }
        };

        assert_eq!(
            check(strict, "http://127.0.0.1:9/").await.err(),
            Some(Refusal::PlainHttp)
        );
        assert_eq!(
            check(strict, "ftp://example.com/").await.err(),
            Some(Refusal::Scheme {
                scheme: "ftp".to_owned()
            })
        );
        assert_eq!(
            check(strict, "https://u:p@example.com/").await.err(),
            Some(Refusal::Credentials)
        );
        assert!(matches!(
            check(strict, "https://127.0.0.1/").await.err(),
            Some(Refusal::Forbidden {
                range: ForbiddenRange::Loopback,
                ..
            })
        ));
        // Decimal IPv4 forms are normalised by the URL parser, so they cannot sneak past.
        assert!(matches!(
            check(strict, "https://2130706433/").await.err(),
            Some(Refusal::Forbidden {
                range: ForbiddenRange::Loopback,
                ..
            })
        ));
        assert!(check(dev, "http://127.0.0.1:9/").await.is_ok());
        assert!(check(dev, "http://[::1]:9/").await.is_ok());
        assert_eq!(
            check(dev, "http://8.8.8.8/").await.err(),
            Some(Refusal::PlainHttp)
        );
        assert!(matches!(
            check(dev, "http://[::ffff:127.0.0.1]:9/").await.err(),
            Some(Refusal::Forbidden { embedded: true, .. })
        ));
        assert!(matches!(
            check(dev, "https://10.0.0.1/").await.err(),
            Some(Refusal::Forbidden {
                range: ForbiddenRange::Private,
                ..
            })
        ));
        for name in [
            "https://localhost/",
            "https://LOCALHOST./hook",
            "https://api.localhost/",
        ] {
            assert!(
                matches!(
                    check(strict, name).await.err(),
                    Some(Refusal::LocalhostName { .. })
                ),
                "{name}"
            );
        }
        assert!(
            resolver.asked.lock().expect("lock").is_empty(),
            "IP literals and localhost names are not resolved"
        );
    }
}

//! The trusted roots every HTTPS client of a process shares: the AWS SDK's and reqwest's.
//!
//! Left alone, each reqwest client loads the system roots itself, twice (its root store and the
//! platform verifier), and the AWS SDK once more, each time from the CA bundle *and* every file
//! of the directory beside it (on Debian ~290 files): most of a cold start's init, and again for
//! every webhook delivery, whose client is built per request for its pinned addresses. Here the
//! bundle alone (`SSL_CERT_FILE`, or where OpenSSL keeps it; the platform's search only when
//! there is none) is read once per process, and every client is built on the result.

use std::sync::{Arc, LazyLock};

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
use base64::Engine;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The roots as loaded: the store reqwest verifies with, and the same certificates as PEM for
/// the AWS SDK (which takes only PEM, and panics on one it cannot parse: only parsed ones go in).
struct Roots {
    store: RootCertStore,
    pem: Vec<u8>,
}

static ROOTS: LazyLock<Roots> = LazyLock::new(load_roots);
static CLIENT_CONFIG: LazyLock<ClientConfig> = LazyLock::new(build_config);

/// A reqwest builder on the shared roots (add the client's own settings, then build).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(CLIENT_CONFIG.clone())
}

/// The AWS SDK configuration (the usual environment, credential and region chain) with an HTTP
/// client that trusts the shared roots; otherwise as the SDK's default client: rustls on
/// aws-lc, proxies from the environment.
pub async fn aws_config() -> aws_config::SdkConfig {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(ROOTS.pem.clone());
    let context = TlsContext::builder().with_trust_store(trust).build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    match context {
        Ok(context) => {
            let http = Builder::new().build_with_connector_fn(move |settings, components| {
                let mut connector = ConnectorBuilder::default()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::AwsLc,
                    ))
                    .tls_context(context.clone());
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            });
            loader = loader.http_client(http);
        }
        Err(error) => {
            tracing::warn!(%error, "TLS context refused; the AWS SDK loads its own roots");
        }
    }
    loader.load().await
}

fn build_config() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = ROOTS.store.clone();
    match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        // aws-lc supports the default versions; this only guards a future provider.
        Err(error) => {
            tracing::error!(%error, "TLS protocol versions refused; using rustls's defaults");
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
    }
}

fn load_roots() -> Roots {
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| openssl_probe::probe().cert_file);
    let loaded = match bundle {
        Some(file) => rustls_native_certs::load_certs_from_paths(Some(&file), None),
        None => rustls_native_certs::load_native_certs(),
    };
    for error in &loaded.errors {
        tracing::warn!(%error, "a system root certificate could not be loaded");
    }
    let roots = roots_from(loaded.certs);
    if roots.store.is_empty() {
        tracing::error!("no trusted root certificate found: every HTTPS call will fail");
    }
    roots
}

/// The certificates usable as trust anchors, in both forms; the others are left out.
fn roots_from(certs: Vec<CertificateDer<'static>>) -> Roots {
    let mut store = RootCertStore::empty();
    let mut pem = Vec::new();
    for cert in certs {
        let der = cert.as_ref().to_vec();
        if store.add(cert).is_ok() {
            pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            let encoded = base64::engine::general_purpose::STANDARD.encode(&der);
            for line in encoded.as_bytes().chunks(64) {
                pem.extend_from_slice(line);
                pem.push(b'\n');
            }
            pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
        }
    }
    Roots { store, pem }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn the_system_bundle_yields_roots_and_the_same_certificates_as_pem() {
        let roots = &*ROOTS;
        assert!(!roots.store.is_empty(), "this machine has a CA bundle");
        let reparsed: Vec<_> = CertificateDer::pem_slice_iter(&roots.pem)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(reparsed.len(), roots.store.len());
        for _ in 0..3 {
            client_builder()
                .build()
                .expect("a client on the shared roots");
        }
    }

    #[test]
    fn a_certificate_that_is_no_trust_anchor_is_left_out_of_both_forms() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let roots = roots_from(vec![garbage]);
        assert!(roots.store.is_empty());
        assert!(roots.pem.is_empty());
    }
}

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
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(sdk_http_client(|| SDK_TLS.clone()))
        .load()
        .await
}

/// The SDK's HTTP client on the TLS context `tls` gives (None: the SDK's own roots).
///
/// The SDK calls the connector function once per client it builds, with neither settings nor
/// runtime components, only so that its default client loads native roots then; it drops what
/// that call returns. Each such call would parse the PEM roots again (~1 ms for ~150 of them),
/// so it gets a plain connector: the one that serves requests is built, once per connector
/// settings, at the first request.
fn sdk_http_client(
    tls: impl Fn() -> Option<TlsContext> + Send + Sync + 'static,
) -> aws_sdk_dynamodb::config::SharedHttpClient {
    Builder::new().build_with_connector_fn(move |settings, components| {
        if settings.is_none() && components.is_none() {
            return ConnectorBuilder::default().build_http();
        }
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        if let Some(context) = tls() {
            connector.set_tls_context(context);
        }
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The shared roots as the SDK takes them (PEM only; it panics on a certificate it cannot
/// parse, so only those rustls accepted go in). None: the SDK loads its own.
static SDK_TLS: LazyLock<Option<TlsContext>> = LazyLock::new(|| {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(ROOTS.pem.clone());
    TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .inspect_err(|error| {
            tracing::warn!(%error, "TLS context refused; the AWS SDK loads its own roots");
        })
        .ok()
});

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
    let certs = match bundle {
        Some(file) => bundle_certificates(&file),
        None => reported(rustls_native_certs::load_native_certs()),
    };
    let roots = roots_from(certs);
    if roots.store.is_empty() {
        tracing::error!("no trusted root certificate found: every HTTPS call will fail");
    }
    roots
}

/// The certificates of a PEM bundle. Decoded with `pem` (plain base64: a CA bundle is public,
/// and rustls's constant-time decoder made this the largest part of a cold start's init); a
/// bundle it cannot read whole goes to rustls-native-certs, which skips and reports each bad
/// block.
fn bundle_certificates(file: &std::path::Path) -> Vec<CertificateDer<'static>> {
    let parsed = std::fs::read(file)
        .ok()
        .and_then(|bytes| pem::parse_many(bytes).ok());
    match parsed {
        Some(blocks) => blocks
            .into_iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| CertificateDer::from(block.into_contents()))
            .collect(),
        None => reported(rustls_native_certs::load_certs_from_paths(Some(file), None)),
    }
}

fn reported(loaded: rustls_native_certs::CertificateResult) -> Vec<CertificateDer<'static>> {
    for error in &loaded.errors {
        tracing::warn!(%error, "a system root certificate could not be loaded");
    }
    loaded.certs
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
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    #[tokio::test]
    async fn the_sdk_trusts_exactly_its_context_and_builds_it_at_the_first_request_only() {
        let server = TlsServer::start().await;
        let built = Arc::new(AtomicUsize::new(0));
        let counted = built.clone();
        let trusting = sdk_http_client(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Some(context_trusting(include_bytes!(
                "../../tests/fixtures/tls/ca.pem"
            )))
        });
        let clients: Vec<_> = (0..3).map(|_| dynamodb(&trusting, &server.url)).collect();
        assert_eq!(
            built.load(Ordering::SeqCst),
            0,
            "no TLS context while clients are built"
        );

        let tables = clients[0]
            .list_tables()
            .send()
            .await
            .expect("served over TLS");
        assert_eq!(tables.table_names(), ["served-over-tls"]);
        clients[1].list_tables().send().await.expect("again");
        assert_eq!(
            built.load(Ordering::SeqCst),
            1,
            "one connector for one set of settings"
        );

        // The SDK's own (system) roots do not include the test CA: the handshake is refused.
        let untrusting = dynamodb(&sdk_http_client(|| None), &server.url);
        let refused = untrusting.list_tables().send().await;
        assert!(
            refused.is_err(),
            "a server outside the roots must be refused"
        );
        assert_eq!(server.answered(), 2);
    }

    fn context_trusting(pem: &[u8]) -> TlsContext {
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(pem.to_vec());
        TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .expect("a context on the test CA")
    }

    fn dynamodb(
        http: &aws_sdk_dynamodb::config::SharedHttpClient,
        url: &str,
    ) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST", "test", None, None, "test",
            ))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .endpoint_url(url)
            .http_client(http.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// An HTTPS server on loopback with a certificate for `localhost` from the test CA
    /// (tests/fixtures/tls), answering every request as DynamoDB's ListTables would.
    struct TlsServer {
        url: String,
        answered: Arc<AtomicUsize>,
    }

    impl TlsServer {
        async fn start() -> Self {
            use rustls::pki_types::PrivateKeyDer;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};

            let chain = CertificateDer::pem_slice_iter(include_bytes!(
                "../../tests/fixtures/tls/localhost.pem"
            ))
            .collect::<Result<Vec<_>, _>>()
            .expect("the test certificate");
            let key = PrivateKeyDer::from_pem_slice(include_bytes!(
                "../../tests/fixtures/tls/localhost.key"
            ))
            .expect("the test key");
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("the test certificate and key");
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port");
            let url = format!(
                "https://localhost:{}",
                listener.local_addr().expect("bound").port()
            );
            let answered = Arc::new(AtomicUsize::new(0));
            let counter = answered.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    let counter = counter.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return; // a client that refused our certificate
                        };
                        let mut request = Vec::new();
                        let mut buffer = [0_u8; 4096];
                        while let Ok(read @ 1..) = tls.read(&mut buffer).await {
                            request.extend_from_slice(&buffer[..read]);
                            if request_is_whole(&request) {
                                let body = br#"{"TableNames":["served-over-tls"]}"#;
                                let head = format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n",
                                    body.len()
                                );
                                counter.fetch_add(1, Ordering::SeqCst);
                                let _ = tls.write_all(head.as_bytes()).await;
                                let _ = tls.write_all(body).await;
                                request.clear();
                            }
                        }
                    });
                }
            });
            Self { url, answered }
        }

        fn answered(&self) -> usize {
            self.answered.load(Ordering::SeqCst)
        }
    }

    /// Headers and a body of the declared length have arrived.
    fn request_is_whole(request: &[u8]) -> bool {
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        request.len() >= end + 4 + length
    }

    #[test]
    fn a_bundle_reads_as_rustls_reads_it_comments_and_other_blocks_aside() {
        let ca = include_str!("../../tests/fixtures/tls/ca.pem");
        let leaf = include_str!("../../tests/fixtures/tls/localhost.pem");
        let key = include_str!("../../tests/fixtures/tls/localhost.key");
        let dir = std::env::temp_dir().join(format!("tls-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let bundle = dir.join("bundle.pem");
        // As Amazon Linux's ca-bundle.crt: comment lines between the certificates.
        let text = format!("# Test CA\n{ca}\n# not a certificate\n{key}\n# Leaf\r\n{leaf}");
        std::fs::write(&bundle, text).expect("written");
        let ours = bundle_certificates(&bundle);
        let theirs = rustls_native_certs::load_certs_from_paths(Some(&bundle), None);
        assert_eq!(ours.len(), 2, "the two certificates, not the key");
        assert!(
            sorted(ours) == sorted(theirs.certs),
            "read as rustls reads it"
        );

        if let Some(system) = openssl_probe::probe().cert_file {
            let theirs = rustls_native_certs::load_certs_from_paths(Some(&system), None);
            assert!(
                sorted(bundle_certificates(&system)) == sorted(theirs.certs),
                "the system bundle reads as the same certificates (rustls-native-certs reorders)"
            );
        }

        std::fs::write(
            &bundle,
            format!("{ca}-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
        )
        .expect("written");
        let fallback = bundle_certificates(&bundle);
        assert_eq!(fallback.len(), 1, "a broken block costs only itself");
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    fn sorted(mut certs: Vec<CertificateDer<'static>>) -> Vec<CertificateDer<'static>> {
        certs.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        certs
    }

    #[test]
    fn a_certificate_that_is_no_trust_anchor_is_left_out_of_both_forms() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let roots = roots_from(vec![garbage]);
        assert!(roots.store.is_empty());
        assert!(roots.pem.is_empty());
    }
}

//! What the Genesys, Graph and Google simulators share: a router served on loopback until the
//! handle is dropped, and the binaries' command line (`--addr`, `--seed`,
//! `--print-default-seed`; the base URL on the first line of stdout).

pub mod control;
pub mod faults;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A bound listener, so a simulator can learn its own address before it builds its router.
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
}

impl Bound {
    /// Binds `addr` (port 0 = any free port).
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr })
    }

    /// Serves `router` until the returned handle is dropped.
    pub fn serve(self, router: axum::Router, name: &'static str) -> Serving {
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(self.listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, simulator = name, "simulator stopped");
            }
        });
        Serving {
            addr: self.addr,
            shutdown: Some(shutdown),
        }
    }
}

/// A running server; dropping it stops it.
#[derive(Debug)]
pub struct Serving {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Serving {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The binary's command line, parsed.
#[derive(Debug)]
enum Command<S> {
    Serve { addr: SocketAddr, seed: S },
    PrintDefaultSeed,
}

fn parse<S: Default + DeserializeOwned>(
    name: &str,
    args: impl IntoIterator<Item = String>,
) -> anyhow::Result<Command<S>> {
    let usage = || {
        anyhow::anyhow!(
            "usage: {name} [--addr 127.0.0.1:PORT] [--seed FILE.json] [--print-default-seed]"
        )
    };
    let mut addr: SocketAddr = "127.0.0.1:0".parse()?;
    let mut seed = S::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                let value = args.next().ok_or_else(usage)?;
                addr = value
                    .parse()
                    .with_context(|| format!("--addr: {value:?} is not HOST:PORT"))?;
            }
            "--seed" => {
                let path = args.next().ok_or_else(usage)?;
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("--seed: cannot read {path}"))?;
                seed = serde_json::from_str(&text)
                    .with_context(|| format!("--seed: {path} is not a valid seed"))?;
            }
            "--print-default-seed" => return Ok(Command::PrintDefaultSeed),
            _ => return Err(usage()),
        }
    }
    Ok(Command::Serve { addr, seed })
}

/// A simulator binary's `main`: logs to stderr (`RUST_LOG`, default `warn`), starts the server
/// with the seed, prints its base URL, serves until Ctrl-C.
pub async fn run<S, H, F>(
    name: &str,
    start: impl FnOnce(S, SocketAddr) -> F,
    base_url: impl Fn(&H) -> String,
) -> anyhow::Result<()>
where
    S: Default + Serialize + DeserializeOwned,
    F: Future<Output = anyhow::Result<H>>,
{
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut stdout = std::io::stdout();
    let (addr, seed) = match parse::<S>(name, std::env::args().skip(1))? {
        Command::PrintDefaultSeed => {
            writeln!(stdout, "{}", serde_json::to_string_pretty(&S::default())?)?;
            return Ok(());
        }
        Command::Serve { addr, seed } => (addr, seed),
    };
    let server = start(seed, addr).await?;
    writeln!(stdout, "{}", base_url(&server))?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    drop(server);
    Ok(())
}

/// A fresh random token: `uuids` × 16 random bytes, base64url without padding.
pub fn random_token(uuids: usize) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..uuids)
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case), if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// Waits until `check` answers `Ok` (it is asked again each time `changed` is notified), or
/// `timeout` passes: then `Err` with what `check` says last. A signal, not a poll.
pub async fn wait_for<T>(
    changed: &tokio::sync::Notify,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Result<T, T>,
) -> Result<T, T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Ok(done) = check() {
            return Ok(done);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return check();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    struct Seed {}

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_command_line_names_what_is_wrong() {
        let served = parse::<Seed>("x-sim", args(&["--addr", "127.0.0.1:9"])).expect("valid");
        assert!(matches!(served, Command::Serve { addr, .. } if addr.port() == 9));
        let bad = parse::<Seed>("x-sim", args(&["--addr", "nowhere"])).expect_err("refused");
        assert!(bad.to_string().contains("--addr"));
        let unknown = parse::<Seed>("x-sim", args(&["--verbose"])).expect_err("refused");
        assert!(unknown.to_string().contains("usage: x-sim"));
        assert!(matches!(
            parse::<Seed>("x-sim", args(&["--print-default-seed"])),
            Ok(Command::PrintDefaultSeed)
        ));
    }
}

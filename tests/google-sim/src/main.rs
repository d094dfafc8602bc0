//! `google-sim --addr 127.0.0.1:0 [--seed seed.json] [--print-default-seed]`: prints its base URL on the first line of
//! stdout once it accepts connections, then serves until killed.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use google_sim::{Seed, SimServer};

fn usage() -> anyhow::Error {
    anyhow::anyhow!(
        "usage: google-sim [--addr 127.0.0.1:PORT] [--seed FILE.json] [--print-default-seed]"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut addr: SocketAddr = "127.0.0.1:0".parse()?;
    let mut seed = Seed::default();
    let mut args = std::env::args().skip(1);
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
            "--print-default-seed" => {
                println!("{}", serde_json::to_string_pretty(&Seed::default())?);
                return Ok(());
            }
            _ => return Err(usage()),
        }
    }
    let server = SimServer::start(seed, addr).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.base_url())?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    drop(server);
    Ok(())
}

//! `google-sim --addr 127.0.0.1:0 [--seed seed.json] [--print-default-seed]`: prints its base URL on
//! the first line of stdout once it accepts connections, then serves until killed.

use google_sim::SimServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sim_kit::run("google-sim", SimServer::start, |server: &SimServer| {
        server.base_url()
    })
    .await
}

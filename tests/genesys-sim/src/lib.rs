//! A local Genesys Cloud Platform API v2 simulator: a real axum server with the real paths,
//! bodies, error model, permissions and rate limits (see README "Genesys simulator"), plus a
//! control surface under `/sim/` for tests and the demo.

pub mod api;
pub mod control;
pub mod error;
pub mod groups;
pub mod seed;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;

pub use seed::Seed;
use state::SimState;

/// The simulator's shared world.
#[derive(Debug)]
pub struct Sim {
    state: Mutex<SimState>,
}

impl Sim {
    pub fn new(seed: Seed) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            state: Mutex::new(SimState::from_seed(seed)?),
        }))
    }

    /// Direct access for in-process tests; the HTTP control surface does the same.
    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        // A handler that panicked mid-change is a simulator bug; keep serving what is there.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Login (`/oauth/token`), API (`/api/v2/...`) and control (`/sim/...`) on one router.
pub fn app(sim: Arc<Sim>) -> Router {
    api::routes(sim.clone()).merge(control::routes(sim))
}

/// A running simulator; dropping it stops the server.
#[derive(Debug)]
pub struct SimServer {
    pub sim: Arc<Sim>,
    pub addr: SocketAddr,
    serving: sim_kit::Serving,
}

impl SimServer {
    /// Binds `addr` (port 0 = any free port) and serves until dropped.
    pub async fn start(seed: Seed, addr: SocketAddr) -> anyhow::Result<Self> {
        let sim = Sim::new(seed).map_err(|message| anyhow::anyhow!("invalid seed: {message}"))?;
        let bound = sim_kit::Bound::bind(addr).await?;
        let addr = bound.addr;
        let serving = bound.serve(app(sim.clone()), "genesys-sim");
        Ok(Self { sim, addr, serving })
    }

    pub fn base_url(&self) -> String {
        self.serving.base_url()
    }
}

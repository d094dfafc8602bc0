//! A local Google Calendar simulator: a real axum server with the OAuth token endpoint for
//! service accounts (JWT bearer grant with domain-wide delegation) and the Calendar API paths,
//! bodies and error model the calendar connector uses (calendars.get, events.list with page and
//! sync tokens, events.watch push channels with header-only notifications, channels.stop,
//! per-user rate limits), plus a control surface under `/sim/` for tests and the demo. See
//! README.md.

pub mod auth;
pub mod calendar;
pub mod channels;
pub mod control;
pub mod control_events;
pub mod delivery;
pub mod error;
pub mod faults;
pub mod list;
pub mod middleware;
pub mod model;
pub mod render;
pub mod seed;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use seed::Seed;
use state::SimState;

/// The simulator's shared world.
#[derive(Debug)]
pub struct Sim {
    state: Mutex<SimState>,
    /// Outbound client for notifications: no proxy (endpoints are local), and a redirect is an
    /// answer like any other (not followed).
    http: reqwest::Client,
    /// Woken on every delivery attempt (`POST /sim/deliveries/wait`).
    deliveries_changed: tokio::sync::Notify,
}

impl Sim {
    pub fn new(seed: Seed) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            // Header names as Google writes them (`X-Goog-Channel-Id`), not hyper's lower case.
            .http1_title_case_headers()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("HTTP client: {error}"))?;
        Ok(Arc::new(Self {
            state: Mutex::new(SimState::from_seed(seed)?),
            http,
            deliveries_changed: tokio::sync::Notify::new(),
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

/// Token (`/token`), Calendar API (`/calendar/v3/...`) and control (`/sim/...`).
pub fn app(sim: Arc<Sim>) -> Router {
    let calendars = "/calendar/v3/calendars/{calendarId}";
    let api = Router::new()
        .route(calendars, get(list::get_calendar))
        .route(&format!("{calendars}/events"), get(list::list_events))
        .route(&format!("{calendars}/events/watch"), post(channels::watch))
        .route("/calendar/v3/channels/stop", post(channels::stop))
        .route_layer(from_fn_with_state(sim.clone(), faults::inject))
        .route_layer(from_fn_with_state(sim.clone(), faults::throttle))
        .route_layer(from_fn_with_state(sim.clone(), auth::authenticate));
    let token = Router::new()
        .route("/token", post(auth::issue_token))
        .route_layer(from_fn_with_state(sim.clone(), faults::inject));
    let google = token
        .merge(api)
        .fallback(not_found)
        .layer(from_fn_with_state(sim.clone(), middleware::observe))
        .with_state(sim.clone());
    google.merge(control::routes(sim))
}

/// Google answers an unknown API path with 404 `notFound`.
async fn not_found() -> error::GoogleError {
    error::GoogleError::not_found()
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
        sim.lock().base_url = Some(format!("http://{addr}"));
        let serving = bound.serve(app(sim.clone()), "google-sim");
        Ok(Self { sim, addr, serving })
    }

    pub fn base_url(&self) -> String {
        self.serving.base_url()
    }
}

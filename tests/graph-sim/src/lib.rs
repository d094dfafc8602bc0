//! A local Microsoft Graph simulator: a real axum server with the Entra ID token endpoint, the
//! Graph paths, bodies and error model the calendar connector uses (users, calendarView delta,
//! subscriptions with the validation handshake, change and lifecycle notifications, mailbox
//! throttling), plus a control surface under `/sim/` for tests and the demo. See README.md.

pub mod auth;
pub mod calendar;
pub mod control;
pub mod control_events;
pub mod delivery;
pub mod error;
pub mod events;
pub mod faults;
pub mod middleware;
pub mod seed;
pub mod state;
pub mod subscriptions;
pub mod users;

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
    /// Outbound client for handshakes and notifications: no proxy (endpoints are local), and a
    /// redirect is an answer like any other (not followed).
    http: reqwest::Client,
    /// Woken on every delivery attempt (`POST /sim/deliveries/wait`).
    deliveries_changed: tokio::sync::Notify,
}

impl Sim {
    pub fn new(seed: Seed) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
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

/// Token (`/{tenant}/oauth2/v2.0/token`), Graph (`/v1.0/...`) and control (`/sim/...`).
pub fn app(sim: Arc<Sim>) -> Router {
    let users_calendar = "/v1.0/users/{user}/calendarView/delta";
    let graph = Router::new()
        .route("/v1.0/users/{user}", get(users::get_user))
        .route(users_calendar, get(calendar::delta))
        .route(
            "/v1.0/users/{user}/calendarview/delta",
            get(calendar::delta),
        )
        // The SDKs call the OData function form `delta()`; Graph answers both.
        .route(
            "/v1.0/users/{user}/calendarView/delta()",
            get(calendar::delta),
        )
        .route(
            "/v1.0/users/{user}/calendarview/delta()",
            get(calendar::delta),
        )
        .route(
            "/v1.0/users/{user}/events/{event}",
            get(calendar::get_event),
        )
        .route(
            "/v1.0/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/v1.0/subscriptions/{id}",
            get(subscriptions::get)
                .patch(subscriptions::patch)
                .delete(subscriptions::delete),
        )
        .route(
            "/v1.0/subscriptions/{id}/reauthorize",
            post(subscriptions::reauthorize),
        )
        .route_layer(from_fn_with_state(sim.clone(), faults::inject))
        .route_layer(from_fn_with_state(sim.clone(), faults::throttle))
        .route_layer(from_fn_with_state(sim.clone(), auth::authenticate));
    let graph = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::issue_token))
        .merge(graph)
        .fallback(not_found)
        .layer(from_fn_with_state(sim.clone(), middleware::observe))
        .with_state(sim.clone());
    graph.merge(control::routes(sim))
}

/// Graph answers an unknown segment with 400 `BadRequest`.
async fn not_found(uri: axum::http::Uri) -> error::GraphError {
    let segment = uri
        .path()
        .trim_start_matches("/v1.0")
        .trim_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    error::GraphError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
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
        let serving = bound.serve(app(sim.clone()), "graph-sim");
        Ok(Self { sim, addr, serving })
    }

    pub fn base_url(&self) -> String {
        self.serving.base_url()
    }
}

//! Local stand-ins for the services `webhook-dispatch` talks to. Each checks requests the way
//! the real service would and rejects wrong ones (not an accept-anything mock), starts on
//! `127.0.0.1:0`, exposes what it received, and stops when dropped.

pub mod listener;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;

/// A running axum server; dropping it shuts it down.
#[derive(Debug)]
pub struct Served {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Served {
    pub async fn start(router: Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A value shared by a server and the test, with a signal on every change.
#[derive(Debug, Default)]
pub struct Shared<T> {
    value: Mutex<T>,
    changed: tokio::sync::Notify,
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Arc<Self> {
        Arc::new(Self {
            value: Mutex::new(value),
            changed: tokio::sync::Notify::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.value
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let result = change(&mut self.lock());
        self.changed.notify_waiters();
        result
    }

    /// Waits until `ready` holds (checked after each change), at most `timeout`.
    pub async fn wait_until(&self, timeout: Duration, ready: impl Fn(&T) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if ready(&self.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return ready(&self.lock());
            }
        }
    }
}

//! A loopback TCP listener that only counts connections: the SSRF tests point refused URLs at
//! it and assert it was never connected to.
//!
//! Nothing accepts in the background: a completed TCP handshake waits in the kernel's accept
//! queue, so draining that queue when asked gives an exact count with no polling or sleeping.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

#[derive(Debug)]
pub struct SilentListener {
    pub addr: SocketAddr,
    listener: TcpListener,
    accepted: Mutex<usize>,
}

impl SilentListener {
    /// Binds `127.0.0.1:0`.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener,
            accepted: Mutex::new(0),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every connection made so far (accepted now and closed at once).
    pub fn connections(&self) -> usize {
        let mut accepted = self
            .accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            match self.listener.accept() {
                Ok(_) => *accepted += 1,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(_) => return *accepted,
            }
        }
    }
}

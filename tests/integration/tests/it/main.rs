//! One integration-test binary: each module starts the real servers it needs on loopback
//! (the Genesys simulator in-process, the moto server as a child process).

mod genesys_client;
mod support;

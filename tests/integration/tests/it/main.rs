//! One integration-test binary: each module starts the real servers it needs on loopback
//! (the Genesys simulator in-process, the local AWS stand-in as a child process).

mod bulk_faults;
mod burst;
mod calendar;
mod contracts;
mod day_page;
mod dead_letters;
mod dispatch_delivery;
mod dispatch_malformed;
mod dispatch_retry;
mod dispatch_ssrf;
mod faults;
mod genesys_client;
mod genesys_rotation;
mod google;
mod operator;
mod round_trips;
mod schedule_check;
mod state_audit;
mod state_idempotency;
mod state_queue;
mod state_secrets;
mod state_store;
mod support;
mod transition;
mod wfm;

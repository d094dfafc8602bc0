//! Helpers that start local servers for the tests.

pub mod all_hands;
pub mod connector;
pub mod dispatch;
pub mod moto;
pub mod sim;
pub mod stream;
pub mod transition;

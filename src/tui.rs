//! The terminal UI: what an on-call engineer sees when they type `cachedeck`.
//!
//! Elm-style: one [`app::App`] state, one [`action::Action`] enum, `App::update` as the only
//! place that changes state (returning [`app::Effect`]s for background work), and a pure
//! [`view::view`]. Pollers run as tokio tasks ([`workers`]) and report back as actions; the
//! UI never waits on the network.

pub mod action;
pub mod app;
pub mod audit;
pub mod keys;
pub mod run_view;
pub mod runtime;
pub mod theme;
pub mod view;
pub mod workers;

pub use runtime::{TuiError, run};

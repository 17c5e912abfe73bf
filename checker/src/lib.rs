//! # berth-checker
//!
//! Builds the `berth-model` actors into Stateright `ActorModel`s
//! ([`scenario`]), explores them exhaustively or by simulation ([`run`]),
//! prints counterexamples as numbered steps ([`trace`]), runs the
//! gallery of broken designs ([`gallery`]), and wraps a model for the web
//! Explorer so that each state shows what it violates ([`explore`]). The
//! `berth-check` binary is thin glue over this library.

pub mod banner;
pub mod explore;
pub mod gallery;
pub mod run;
pub mod scenario;
pub mod trace;

pub use run::{
    run, PropertyReport, PropertyStatus, RunOptions, RunReport, StopAt, StopReason, Strategy,
    Verdict,
};
pub use scenario::{NetworkKind, Scenario, ScenarioConfig};

//! # berth-checker
//!
//! Builds the `berth-model` actors into Stateright `ActorModel`s
//! ([`scenario`]) that record what clients were told ([`history`]), checks
//! them against the [`properties`] the protocol must have, explores them
//! exhaustively or by simulation ([`run`]),
//! prints counterexamples as numbered steps ([`trace`]), runs the
//! gallery of broken designs ([`gallery`]) and the standard battery
//! ([`verify`]), and wraps a model for the web
//! Explorer so that each state shows what it violates ([`explore`]). The
//! `berth-check` binary is thin glue over this library.

pub mod agree;
pub mod banner;
pub mod bounds;
pub mod checked;
pub mod explore;
pub mod fence;
pub mod gallery;
pub mod history;
pub mod liveness;
pub mod operator;
pub mod outsider;
pub mod promises;
pub mod properties;
pub mod reach;
pub mod recovery;
pub mod roles;
pub mod rules;
pub mod run;
pub mod saved;
pub mod scenario;
pub mod stated;
pub mod trace;
pub mod verify;

pub use run::{
    run, BeyondRest, PropertyReport, PropertyStatus, RunOptions, RunReport, StopAt, StopReason,
    Strategy, Verdict,
};
pub use scenario::{NetworkKind, Scenario, ScenarioConfig};

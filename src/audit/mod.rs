//! audit capability: SQL surface.

pub mod error;

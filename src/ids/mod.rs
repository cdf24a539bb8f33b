//! ids capability: SQL surface.

pub mod error;

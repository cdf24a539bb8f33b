//! selfaudit capability: SQL surface.

pub mod error;

//! Include point for the pure-Rust crypto core outside the extension.
//!
//! The extension's `src/crypto/mod.rs` declares the sibling modules itself.
//! Binaries that must not link pgrx (the keytool, the fuzz targets, scratch
//! crates) include this file instead:
//!
//! ```ignore
//! #[path = "../crypto/core.rs"] // relative to the including file
//! mod crypto;
//! use crypto::envelope;
//! ```
//!
//! The `#[path]` attributes below are resolved relative to this file's
//! directory, so they work wherever this file is included from. The modules
//! refer to each other only through `super::`, never `crate::`.
#![allow(dead_code)]

#[path = "blind.rs"]
pub mod blind;
#[path = "envelope.rs"]
pub mod envelope;
#[path = "error.rs"]
pub mod error;
#[path = "filefmt.rs"]
pub mod filefmt;
#[path = "rootkey.rs"]
pub mod rootkey;
#[path = "value.rs"]
pub mod value;

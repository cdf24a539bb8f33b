//! Nonces for AES-GCM: 96 random bits per encryption from a ChaCha20 CSPRNG seeded from the
//! operating system, one generator per backend process. One `getrandom` system call per
//! encryption costs more than the encryption itself; the generator costs a few nanoseconds.
//!
//! Fork safety: PostgreSQL forks backends from the postmaster. A generator seeded before a fork
//! would give every child the same stream, so the generator remembers the pid that seeded it
//! and reseeds in any other process.

use std::cell::RefCell;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::envelope::NONCE_LEN;
use super::error::CryptoError;

thread_local! {
    static RNG: RefCell<Option<(u32, ChaCha20Rng)>> = const { RefCell::new(None) };
}

/// A fresh random nonce.
pub fn fresh() -> Result<[u8; NONCE_LEN], CryptoError> {
    // PostgreSQL sets MyProcPid in every child right after fork; reading it costs no system call.
    #[cfg(not(test))]
    let pid = unsafe { pgrx::pg_sys::MyProcPid } as u32;
    #[cfg(test)]
    let pid = std::process::id();
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        if r.as_ref().map(|(p, _)| *p) != Some(pid) {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| CryptoError::Random(e.to_string()))?;
            *r = Some((pid, ChaCha20Rng::from_seed(seed)));
            zeroize::Zeroize::zeroize(&mut seed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        r.as_mut().expect("seeded above").1.fill_bytes(&mut nonce);
        Ok(nonce)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonces_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(super::fresh().unwrap()));
        }
    }
}

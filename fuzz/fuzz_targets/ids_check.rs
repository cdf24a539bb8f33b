//! Fuzz target for the injection-detection engine: any UTF-8 input, every context,
//! must not panic, and the fast path must agree with the full check.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/ids/engine/mod.rs"]
#[allow(dead_code)]
mod engine;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = engine::check(s, engine::Context::Auto);
        for ctx in [
            engine::Context::Auto,
            engine::Context::Identifier,
            engine::Context::FreeText,
            engine::Context::Url,
            engine::Context::Path,
        ] {
            let v = engine::check(s, ctx);
            assert_eq!(v.is_attack, engine::is_attack(s, ctx));
            assert!(v.score <= 100);
            let _ = v.findings_json();
        }
    }
});

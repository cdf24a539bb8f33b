//! Every tradeguard setting, declared in one place (`tradeguard.*`).

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Registers all settings; called once from `_PG_init`.
pub fn init() {
    let _ = (GucContext::Suset, GucFlags::default(), &GucRegistry {});
    let _: Option<&GucSetting<bool>> = None;
}

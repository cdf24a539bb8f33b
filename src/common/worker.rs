//! The tradeguard background worker (preloaded): every `tradeguard.seal_interval` it stores
//! queued security and authentication events, persists lockouts, seals the audit trail and,
//! every few seconds, scores sources for automatic blocks. It serves the database named by
//! `tradeguard.database_name`.

use std::time::{Duration, Instant};

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use pgrx::JsonB;

use super::security::{self, EventKind, EventSlot};
use crate::error::TgResult;

pub fn register() {
    BackgroundWorkerBuilder::new("tradeguard worker")
        .set_type("tradeguard worker")
        .set_function("tradeguard_worker_main")
        .set_library("tradeguard")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(2)))
        .load();
}

fn installed() -> bool {
    super::spi_first::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'tradeguard')",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn tradeguard_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // The server is up: what the postmaster read back from the last shutdown is in shared
    // memory (see common::persist).
    super::persist::forget();
    let db = crate::gucs::database_name();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    // Blocks survive a restart: rebuild them from the table.
    BackgroundWorker::transaction(|| {
        if installed() {
            if let Err(e) = sync_state_impl() {
                pgrx::warning!("tradeguard worker: could not load blocks: {e}");
            }
        }
    });
    let mut last_risk = Instant::now();
    let mut last_seal = Instant::now();
    loop {
        let ms = crate::gucs::SEAL_INTERVAL.get().clamp(10, 1000) as u64;
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(ms))) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let risk_due = last_risk.elapsed() >= Duration::from_secs(5);
        if risk_due {
            last_risk = Instant::now();
        }
        let seal_due = last_seal.elapsed() >= Duration::from_millis(crate::gucs::SEAL_INTERVAL.get().max(10) as u64);
        if seal_due {
            last_seal = Instant::now();
        }
        // Each piece of work in a transaction of its own, and each guarded (see
        // `in_subtransaction`): one that fails, even every time, is logged and does not hold up
        // the others. Sealing takes the seal lock before any lock on the trail, the order every
        // sealer and maintenance session keeps: in the transaction that stored events (written
        // into the trail) it would wait for the seal lock while holding the trail's, and
        // deadlock with a session holding the seal lock that then alters the trail.
        let round = |what: &str, work: &(dyn Fn() -> crate::error::TgResult<()> + std::panic::RefUnwindSafe)| {
            BackgroundWorker::transaction(|| {
                if installed() {
                    if let Err(e) = super::in_subtransaction(work) {
                        pgrx::warning!("tradeguard worker: could not {what}: {e}");
                    }
                }
            })
        };
        // (Events wait in shared memory, bounded and with overflow counted, while tradeguard is
        // not installed in the worker's database.) Not a `round`: each event has a
        // subtransaction of its own, and the drain is undone by this transaction's abort only.
        BackgroundWorker::transaction(|| {
            if installed() {
                let (events, dropped) = security::drain();
                store_events(&events, dropped);
            }
        });
        round("store key activity", &crate::crypto::activity::store);
        if risk_due {
            round("score risk", &|| Ok(super::spi_first::<i32>("SELECT tradeguard_audit.evaluate_risk()", &[]).map(|_| ())?));
            // Self-healing: blocks that expired or were lifted (or a sync from a transaction
            // that rolled back) are corrected within a few seconds.
            round("reload blocks", &sync_state_impl);
        }
        if seal_due {
            // (Rows left unsealed by a failed round are sealed by the next.)
            round("seal the audit trail", &|| crate::audit::seal::seal_pending().map(|_| ()));
        }
    }
    // SIGTERM. At shutdown the postmaster does not restart workers; otherwise (DROP DATABASE
    // ... WITH (FORCE) or pg_terminate_backend on the served database) exit code 1 has the
    // worker started again after its restart time. Returning would exit with 0, which
    // unregisters the worker for good: no more sealing, events or key activity until restart.
    unsafe { pg_sys::proc_exit(1) };
}

/// The reasons of the lockouts the hook sets, as stored in tradeguard_audit.blocked_sources.
const LOCKOUT_REASON: &str = "lockout: too many failed logins";
const LOCKOUT_EXEMPT_REASON: &str = "lockout: too many failed logins through an exempt address";

fn detail_json(s: &str) -> serde_json::Value {
    if s.is_empty() {
        return serde_json::json!({});
    }
    serde_json::from_str(s).unwrap_or_else(|_| serde_json::json!({ "text": s }))
}

fn ts(at: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(at).unwrap_or(TimestampWithTimeZone::try_from(0i64).unwrap())
}

/// Stores drained events, each in a subtransaction of its own: one that cannot be stored (a
/// constraint, a trail that refuses the row) is written to the server log instead and counted
/// in an `events_dropped` event, and the others are stored. (If the transaction itself aborts,
/// `security::drain` queues them all again.)
fn store_events(events: &[EventSlot], dropped: u64) {
    let _own = super::InternalWrite::begin();
    let (mut lockouts, mut failed) = (false, 0u64);
    for e in events {
        match super::in_subtransaction(|| store_event(e)) {
            Ok(lockout) => lockouts |= lockout,
            Err(why) => {
                failed += 1;
                pgrx::warning!(
                    "tradeguard worker: could not store an event ({why}); it was: type={} severity={} at_us={} role={} database={} source={} success={} blocked={} detail={}",
                    e.event_type.as_str(),
                    e.severity.as_str(),
                    e.at,
                    e.role.as_str(),
                    e.database.as_str(),
                    e.addr.as_str(),
                    e.success,
                    e.blocked,
                    e.detail.as_str()
                );
            }
        }
    }
    if dropped > 0 || failed > 0 {
        let detail = serde_json::json!({ "dropped": dropped, "not_stored": failed, "queue": security::QUEUE_LEN });
        if let Err(why) = super::in_subtransaction(|| insert_security(security::now(), "events_dropped", "high", None, "", detail.clone())) {
            pgrx::warning!("tradeguard worker: could not store an event ({why}); it was: type=events_dropped severity=high detail={detail}");
        }
    }
    if lockouts {
        if let Err(why) = super::in_subtransaction(sync_state_impl) {
            pgrx::warning!("tradeguard worker: could not reload blocks: {why}");
        }
    }
}

/// Stores one event; returns whether it is a lockout (blocks are then reloaded).
fn store_event(e: &EventSlot) -> TgResult<bool> {
    let addr = e.addr.as_str();
    let addr = (!addr.is_empty()).then_some(addr);
    match e.kind {
        EventKind::Auth => {
            Spi::run_with_args(
                "INSERT INTO tradeguard_audit.auth_events (at, role_name, database_name, client_addr, success, reason, blocked)
                 VALUES ($1, $2, $3, $4::inet, $5, NULLIF($6, ''), $7)",
                &[
                    ts(e.at).into(),
                    e.role.as_str().into(),
                    e.database.as_str().into(),
                    addr.into(),
                    e.success.into(),
                    e.detail.as_str().into(),
                    e.blocked.into(),
                ],
            )?;
            // A failed login, or any attempt a block refused (the right password included).
            if !e.success || e.blocked {
                let detail = serde_json::json!({ "database": e.database.as_str(), "reason": e.detail.as_str() });
                insert_security(e.at, e.event_type.as_str(), e.severity.as_str(), addr, e.role.as_str(), detail)?;
            }
            Ok(false)
        }
        EventKind::Security => {
            let mut detail = detail_json(e.detail.as_str());
            // Events of every database are stored here: say which one it came from.
            if let (Some(obj), db) = (detail.as_object_mut(), e.database.as_str()) {
                if !db.is_empty() && !obj.contains_key("database") {
                    obj.insert("database".into(), serde_json::json!(db));
                }
            }
            let lockout = e.event_type.as_str() == "lockout";
            if lockout {
                let is_role = detail["key"] == "role";
                let value = detail["value"].as_str().unwrap_or_default().to_string();
                let until = detail["until_us"].as_i64().unwrap_or(e.at);
                // (sync_state reads the reason back: such a role lockout applies through
                // exempt addresses too.)
                let reason = if detail["through_exempt_address"] == true { LOCKOUT_EXEMPT_REASON } else { LOCKOUT_REASON };
                Spi::run_with_args(
                    "INSERT INTO tradeguard_audit.blocked_sources (source, role_name, reason, blocked_at, blocked_until, created_by)
                     VALUES ($1::cidr, $2, $3, $4, $5, 'tradeguard')",
                    &[
                        (!is_role).then_some(value.as_str()).into(),
                        is_role.then_some(value.as_str()).into(),
                        reason.into(),
                        ts(e.at).into(),
                        ts(until).into(),
                    ],
                )?;
            }
            insert_security(e.at, e.event_type.as_str(), e.severity.as_str(), addr, e.role.as_str(), detail)?;
            Ok(lockout)
        }
        EventKind::Empty => Ok(false),
    }
}

fn insert_security(at: i64, kind: &str, severity: &str, addr: Option<&str>, role: &str, detail: serde_json::Value) -> TgResult<()> {
    Spi::run_with_args(
        "INSERT INTO tradeguard_audit.security_events (at, event_type, severity, source, role_name, detail)
         VALUES ($1, $2, $3, $4::inet, NULLIF($5, ''), $6)",
        &[ts(at).into(), kind.into(), severity.into(), addr.into(), role.into(), JsonB(detail.clone()).into()],
    )?;
    // The event stream itself can be edited by a superuser; its copy in the signed, sealed
    // trail cannot go unnoticed. Without a root key the event is still stored, unsigned.
    if crate::audit::audit_key().is_ok() {
        crate::audit::record_system(
            "SECURITY_EVENT",
            "tradeguard_audit",
            kind,
            serde_json::json!({ "severity": severity, "source": addr, "role": role, "detail": detail }),
        )?;
    }
    Ok(())
}

/// Loads active blocks and the decryption freeze from the tables into shared memory.
pub fn sync_state_impl() -> TgResult<()> {
    // Without shared memory a block or a freeze would silently do nothing: refuse instead.
    super::require_preload("blocks, lockouts and the decryption freeze")?;
    // Shared memory is cluster-wide; its blocks come from one database's tables.
    let here = super::current_database_name();
    let served = crate::gucs::database_name();
    if here != served {
        return Err(crate::error::CoreError::InvalidArgument(format!(
            "blocks and the decryption freeze are managed in database \"{served}\" (tradeguard.database_name), not in \"{here}\""
        ))
        .into());
    }
    let (rows, frozen) = super::as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT coalesce(role_name, source::text), role_name IS NOT NULL, blocked_until,
                        created_by = 'tradeguard' AND reason IN ($1, $2), reason = $2
                   FROM tradeguard_audit.blocked_sources
                  WHERE lifted_at IS NULL AND blocked_until > pg_catalog.now()",
                None,
                &[LOCKOUT_REASON.into(), LOCKOUT_EXEMPT_REASON.into()],
            )?;
            let mut rows = Vec::new();
            for r in t {
                let until: Option<TimestampWithTimeZone> = r.get(3)?;
                rows.push(security::StoredBlock {
                    key: r.get::<String>(1)?.unwrap_or_default(),
                    is_role: r.get::<bool>(2)?.unwrap_or(false),
                    until: until.map(|u| u.into_inner()).unwrap_or(0),
                    lockout: r.get::<bool>(4)?.unwrap_or(false),
                    exempt_too: r.get::<bool>(5)?.unwrap_or(false),
                });
            }
            let frozen = c
                .select("SELECT frozen FROM tradeguard_audit.decryption_freeze WHERE id = 1", Some(1), &[])?
                .first()
                .get::<bool>(1)
                .ok()
                .flatten()
                .unwrap_or(false);
            Ok::<_, pgrx::spi::Error>((rows, frozen))
        })
    })??;
    let left_out = security::load_state(&rows, frozen);
    // Raised once for each set of blocks left out (the state is synced every few seconds).
    thread_local!(static LEFT_OUT: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) });
    LEFT_OUT.with(|last| {
        if *last.borrow() != left_out {
            if let Some(key) = left_out.first() {
                security::push(security::block_table_full_event(key));
            }
            *last.borrow_mut() = left_out;
        }
    });
    Ok(())
}

/// `tradeguard_audit.sync_state()`: reload blocks and the decryption freeze into shared memory.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn sync_state() {
    use crate::error::OrRaise;
    sync_state_impl().or_raise();
}

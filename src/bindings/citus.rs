//! Citus, where it is installed: is a table distributed, let a trigger onto one, and count the
//! changes its shards recorded on the other nodes. Nothing here needs Citus to be present: every
//! query first asks the catalog whether Citus's objects exist.

use super::sql_error;
use pgrx::pg_sys;
use pgrx::prelude::*;

fn spi_error(what: &str, e: impl std::fmt::Display) -> ! {
    sql_error(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("{what}: {e}"),
    )
}

/// True when `rel` is a Citus distributed or reference table (its rows live in shards).
pub fn is_distributed(rel: pg_sys::Oid) -> bool {
    let installed = Spi::get_one::<bool>(
        "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
    )
    .unwrap_or_else(|e| spi_error("checking for Citus", e))
    .unwrap_or(false);
    installed
        && Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)",
            &[rel.into()],
        )
        .unwrap_or_else(|e| spi_error("checking for Citus", e))
        .unwrap_or(false)
}

/// Run `f` with `citus.enable_unsafe_triggers` on when `rel` is distributed (Citus then creates a
/// trigger on every shard), restoring the setting afterwards.
pub fn with_triggers_allowed<R>(rel: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    if !is_distributed(rel) {
        return f();
    }
    let set = |value: &str| {
        Spi::run_with_args(
            "SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', $1, true)",
            &[value.into()],
        )
        .unwrap_or_else(|e| spi_error("citus.enable_unsafe_triggers", e))
    };
    let before =
        Spi::get_one::<String>("SELECT pg_catalog.current_setting('citus.enable_unsafe_triggers')")
            .unwrap_or_else(|e| spi_error("citus.enable_unsafe_triggers", e))
            .unwrap_or_else(|| "off".into());
    set("on");
    let result = f();
    set(&before);
    result
}

/// Statements that changed shards of the table of skeleton layer or heat pyramid `name` (`kind`
/// "skeleton" or "pyramid"), counted on every node of the cluster (see `shard_change`).
pub fn shard_changes(kind: &str, name: &str) -> i64 {
    // One literal, quoted by format('%L'): the command text carries no other input.
    let (changes, answered) = Spi::get_two_with_args::<i64, bool>(
        "SELECT coalesce(sum(r.result::int8) FILTER (WHERE r.success), 0)::int8, coalesce(bool_and(r.success), true) \
         FROM pg_catalog.run_command_on_all_nodes(pg_catalog.format(\
           'SELECT coalesce(sum(changes), 0) FROM vasttile.shard_changes WHERE kind = %L AND name = %L', \
           $1::text, $2::text)) r",
        &[kind.into(), name.into()],
    )
    .unwrap_or_else(|e| spi_error("counting the changes of a distributed table", e));
    // A node that did not answer may hold changes: better no tile than a stale one.
    if answered != Some(true) {
        sql_error(
            PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION,
            format!("{kind} \"{name}\": a Citus node did not report the changes to its table"),
        );
    }
    changes.unwrap_or(0)
}

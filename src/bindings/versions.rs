//! SQL family: data versions. A tile server caches a layer's tiles under the layer's version and
//! answers `If-None-Match` without drawing: the version changes in the transaction that changes
//! what the layer draws (versions.sql). Versions are opaque numbers; NULL means "not versioned,
//! draw every time".

use super::security::{self, Access};
use super::{sql_error, OrSpiError, Relation};
use pgrx::pg_sys;
use pgrx::prelude::*;

pgrx::extension_sql_file!("versions.sql", name = "version_tables");

/// The name of the statement trigger that counts a table's changes.
const TRIGGER: &str = "vasttile_version";

/// Tell tile servers listening on `vasttile_data` that versions changed (at commit).
pub fn notify() {
    Spi::run("SELECT pg_catalog.pg_notify('vasttile_data', '')").or_spi_error("notifying");
}

/// Mix numbers into one opaque version (splitmix64 steps): equal inputs, equal versions.
pub fn mix(parts: &[i64]) -> i64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &p in parts {
        h ^= p as u64;
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
    }
    h as i64
}

/// Put the version trigger on table `rel` when the caller owns it; returns whether the table is
/// versioned. Tables of other owners, temporary, partitioned and distributed tables (whose changes
/// happen on the workers), views and foreign tables stay unversioned: their layers are drawn
/// every time.
pub fn track_table(rel: pg_sys::Oid) -> bool {
    // Plain tables only: views, materialized views and foreign tables change without triggers,
    // and a statement on a partition or child does not fire its parent's statement triggers.
    let trackable = security::with_fixed_search_path(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') AND c.relpersistence <> 't' \
                    AND c.relkind = 'r' AND NOT c.relispartition \
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid) \
             FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[rel.into()],
        )
    })
    .or_spi_error("reading the table");
    if trackable != Some(true) || super::citus::is_distributed(rel) {
        return tracked(rel).is_some();
    }
    let table = security::qualified_name(rel);
    security::with_fixed_search_path(|| {
        Spi::run(&format!(
            "CREATE OR REPLACE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION vasttile.data_changed()"
        ))
    })
    .or_spi_error("creating the version trigger");
    true
}

/// When table `rel` has an enabled version trigger on every kind of change and is still a
/// table whose every write fires it (a plain table, neither a partition nor a parent of
/// inheritance children, whose own writes do not fire it, nor distributed since): the
/// transaction ids that last wrote its catalog row and its trigger's, so that DDL on the table
/// and a trigger disabled and enabled again (writes meanwhile were not counted) give new
/// versions.
fn tracked(rel: pg_sys::Oid) -> Option<i64> {
    // tgtype: statement level (bit 0 clear), after, and insert | delete | update | truncate.
    let epoch = security::with_fixed_search_path(|| {
        Spi::get_one_with_args::<i64>(
            "SELECT (c.xmin::text::int8 << 32) # g.xmin::text::int8 \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_trigger g ON g.tgrelid = c.oid \
             WHERE c.oid = $1 AND c.relkind = 'r' AND NOT c.relispartition \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid) \
               AND g.tgfoid = 'vasttile.data_changed()'::pg_catalog.regprocedure \
               AND g.tgenabled IN ('O', 'A') AND g.tgtype & 1 = 0 AND g.tgtype & 2 = 0 \
               AND g.tgtype & 60 = 60 \
             LIMIT 1",
            &[rel.into()],
        )
    });
    let epoch = match epoch {
        Ok(e) => e,
        Err(pgrx::spi::SpiError::InvalidPosition) => None,
        Err(e) => sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("reading the table's triggers: {e}"),
        ),
    }?;
    (!super::citus::is_distributed(rel)).then_some(epoch)
}

/// The version of table `rel` for a caller with SELECT on it (42501 otherwise); None when the
/// table has no version trigger.
pub fn table_version_of(rel: pg_sys::Oid) -> Option<i64> {
    if security::source_access(rel) == Access::Denied {
        security::require_full_access(rel, "the table's version");
    }
    let epoch = tracked(rel)?;
    let changes = security::as_catalog_owner(|| {
        Spi::get_one_with_args::<i64>(
            "SELECT coalesce(sum(changes), 0)::int8 FROM vasttile.data_changes WHERE rel = $1",
            &[rel.into()],
        )
    })
    .or_spi_error("reading the table's version")
    .unwrap_or(0);
    Some(mix(&[rel.to_u32() as i64, epoch, changes]))
}

/// The version of table `tbl`: a number that changes whenever a statement changes its rows
/// (INSERT, UPDATE, DELETE, TRUNCATE), NULL when the table is not versioned (layers and
/// pyramids version the tables their creator owns).
#[pg_extern(stable, strict, parallel_safe, requires = ["version_tables"])]
fn table_version(tbl: Relation) -> Option<i64> {
    table_version_of(tbl.oid())
}

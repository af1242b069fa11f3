//! Refreshing a pyramid over a distributed (Citus) table as on one node: the changed rows are
//! logged where they change, on the nodes holding the shards (`shard_pyramid_log`, by the
//! pyramid's triggers, with the definition each build leaves on every node), and a refresh on
//! the coordinator takes them into its own log, then applies them as deltas.
//!
//! The nodes answer outside the coordinator's transaction, so taking is two-phase: a refresh
//! claims the rows it takes with a new number and records that number in its build report; the
//! next refresh deletes the rows of the recorded (committed) claim and claims everything else
//! again. A refresh that fails leaves its rows to the next one.

use super::definition::*;
use crate::bindings::security;
use crate::bindings::{sql_error, Jsonb, OrRaise, OrSpiError};
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;

/// Most rows a node hands over in one refresh, and most bytes of their text from all nodes
/// together; past either, the pyramid is rebuilt (cheaper than shipping the changes, and the
/// coordinator's memory stays bounded).
const MAX_ROWS: i64 = 100_000;
const MAX_BYTES: i64 = 64 << 20;

/// The table `source` (a name) the caller owns, found without locking it (the coordinator's
/// transaction may hold it): 42P01 when there is none, 42501 when the caller does not own it.
fn owned_table(source: &str, action: &str) -> Oid {
    // The caller's own name for the table, resolved as the caller would (the coordinator
    // passes it schema-qualified).
    let oid =
        Spi::get_one_with_args::<Oid>("SELECT pg_catalog.to_regclass($1)::oid", &[source.into()]);
    let oid = match oid {
        Ok(Some(o)) => o,
        _ => sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "source: relation \"{}\" does not exist",
                source.escape_default()
            ),
        ),
    };
    security::require_table_owner(oid, action);
    oid
}

/// Node side: keep the definition of pyramid `name` over distributed table `source` for its
/// shards' triggers (the caller must own the table, as for create_heat_pyramid).
#[pg_extern(volatile, strict, parallel_unsafe, requires = ["pyramid_tables"])]
fn shard_pyramid_define(name: &str, source: &str, options: Jsonb) {
    security::check_name(name);
    let oid = owned_table(source, "log its changes for a heat pyramid");
    // Options as create_heat_pyramid leaves them: an object, read by the pyramid's columns of
    // this table (the trigger builds its select list of them, and a bad one would fail writes).
    if !options.0.is_object() {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "options must be a JSON object",
        );
    }
    let options = normalised(name, oid, &options.0);
    // The select list the trigger will build must build.
    Spi::get_one_with_args::<String>(
        "SELECT vasttile.heat_pyramid_select_list($1)",
        &[pgrx::JsonB(options.clone()).into()],
    )
    .or_spi_error("options");
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "INSERT INTO vasttile.shard_pyramids (name, source, options) VALUES ($1, $2, $3) \
             ON CONFLICT (name, source) DO UPDATE SET options = excluded.options",
            &[name.into(), oid.into(), pgrx::JsonB(options).into()],
        )
    })
    .or_spi_error("shard_pyramid_define");
}

/// `options` as create_heat_pyramid completes and checks them, over table `oid`.
fn normalised(name: &str, oid: Oid, options: &serde_json::Value) -> serde_json::Value {
    let qualified = security::qualified_name(oid);
    let p = Pyramid::from_options(name, &qualified, options).or_raise();
    super::store::check_columns(oid, &p.options, &qualified);
    p.options
}

/// The names of the shards of distributed table `rel` (none without Citus).
fn shards_of(rel: Oid) -> Vec<String> {
    let citus = Spi::get_one::<bool>(
        "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_shard') IS NOT NULL",
    )
    .or_spi_error("checking for Citus")
    .unwrap_or(false);
    if !citus {
        return Vec::new();
    }
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT coalesce(array_agg(c.relname || '_' || s.shardid), '{}') \
         FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid \
         WHERE s.logicalrelid = $1",
        &[rel.into()],
    )
    .or_spi_error("listing the table's shards")
    .unwrap_or_default()
}

/// Node side: forget pyramid `name` over `source` (its definition and the rows logged in the
/// table's shards).
#[pg_extern(volatile, strict, parallel_unsafe, requires = ["pyramid_tables"])]
fn shard_pyramid_forget(name: &str, source: &str) {
    let oid = owned_table(source, "drop a heat pyramid");
    let shards = shards_of(oid);
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "DELETE FROM vasttile.shard_pyramid_log WHERE pyramid = $1 AND shard = ANY ($2::name[])",
            &[name.into(), shards.into()],
        )?;
        Spi::run_with_args(
            "DELETE FROM vasttile.shard_pyramids WHERE name = $1 AND source = $2",
            &[name.into(), oid.into()],
        )
    })
    .or_spi_error("shard_pyramid_forget");
}

/// Node side: delete the rows of claim `applied` (committed on the coordinator; 0: none yet),
/// claim every other row logged for pyramid `name` in shards of `source` with `claim`, and
/// return them as a JSON array. `'rebuild'` (the rows claimed all the same) when this node's
/// definition is missing or not `options` (a build or drop rolled back after it reached the
/// nodes), when rows of shards that are gone remain (a split or move), or past `max_rows` rows
/// or `max_bytes` of text (`max_rows` 0: the caller rebuilds and only wants them claimed).
#[pg_extern(volatile, strict, parallel_unsafe, requires = ["pyramid_tables"])]
fn shard_pyramid_take(
    name: &str,
    source: &str,
    options: Jsonb,
    applied: i64,
    claim: i64,
    max_rows: i64,
    max_bytes: i64,
) -> String {
    let oid = owned_table(source, "refresh a heat pyramid");
    let options = normalised(name, oid, &options.0);
    let shards = shards_of(oid);
    security::as_catalog_owner(|| {
        let args = |extra: Vec<pgrx::datum::DatumWithOid<'static>>| {
            let mut a: Vec<pgrx::datum::DatumWithOid<'static>> =
                vec![name.to_string().into(), shards.clone().into()];
            a.extend(extra);
            a
        };
        Spi::run_with_args(
            "DELETE FROM vasttile.shard_pyramid_log \
             WHERE pyramid = $1 AND shard = ANY ($2::name[]) AND claim = $3",
            &args(vec![applied.into()]),
        )?;
        let same_definition = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM vasttile.shard_pyramids \
                            WHERE name = $1 AND source = $2 AND options = $3)",
            &[name.into(), oid.into(), pgrx::JsonB(options.clone()).into()],
        )?
        .unwrap_or(false);
        // Rows of shards the table no longer has, when no other table's pyramid shares the name.
        let orphans = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM vasttile.shard_pyramid_log \
                            WHERE pyramid = $1 AND NOT (shard = ANY ($2::name[]))) \
                AND NOT EXISTS (SELECT 1 FROM vasttile.shard_pyramids WHERE name = $1 AND source <> $3)",
            &args(vec![oid.into()]),
        )?
        .unwrap_or(false);
        let (rows, bytes) = Spi::get_two_with_args::<i64, i64>(
            "SELECT count(*), coalesce(sum(64 + octet_length(path::text) + coalesce(octet_length(times::text), 0) \
                                          + coalesce(octet_length(kind), 0)), 0)::int8 \
             FROM vasttile.shard_pyramid_log WHERE pyramid = $1 AND shard = ANY ($2::name[])",
            &args(vec![]),
        )?;
        let rebuild = !same_definition
            || orphans
            || max_rows <= 0
            || rows.unwrap_or(0) > max_rows
            || bytes.unwrap_or(0) > max_bytes;
        if rebuild {
            Spi::run_with_args(
                "UPDATE vasttile.shard_pyramid_log SET claim = $3 \
                 WHERE pyramid = $1 AND (shard = ANY ($2::name[]) OR $4)",
                &args(vec![claim.into(), orphans.into()]),
            )?;
            return Ok("rebuild".to_string());
        }
        Spi::get_one_with_args::<String>(
            "WITH t AS (UPDATE vasttile.shard_pyramid_log SET claim = $3 \
                        WHERE pyramid = $1 AND shard = ANY ($2::name[]) \
                        RETURNING sign, id, path, times, kind, is_virtual, is_private, weight) \
             SELECT coalesce(json_agg(t), '[]')::text FROM t",
            &args(vec![claim.into()]),
        )
        .map(|t| t.unwrap_or_else(|| "[]".into()))
    })
    .or_spi_error("shard_pyramid_take")
}

/// Run `SELECT vasttile.<call>` on every node of the cluster as the caller (the nodes check the
/// caller's rights); each node's answer, or an error naming `what` when one did not answer.
fn on_every_node(what: &str, call: &str, args: Vec<String>) -> Vec<String> {
    let rows = Spi::connect(|client| {
        let placeholders: Vec<String> = (1..=args.len()).map(|i| format!("${i}::text")).collect();
        // Every argument quoted by format('%L'): the command holds no other input.
        let sql = format!(
            "SELECT success, result FROM pg_catalog.run_command_on_all_nodes(pg_catalog.format(\
               'SELECT vasttile.{call}({}) AS r', {}))",
            vec!["%L"; args.len()].join(", "),
            placeholders.join(", ")
        );
        let datums: Vec<pgrx::datum::DatumWithOid<'_>> =
            args.iter().map(|a| a.as_str().into()).collect();
        let mut out = Vec::new();
        for row in client.select(&sql, None, &datums)? {
            out.push((row.get::<bool>(1)?, row.get::<String>(2)?));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .or_spi_error(what);
    rows.into_iter()
        .map(|(ok, result)| match ok {
            Some(true) => result.unwrap_or_default(),
            _ => sql_error(
                PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION,
                format!(
                    "{what}: a Citus node failed: {}",
                    result
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect::<String>()
                ),
            ),
        })
        .collect()
}

/// The claim the last build or refresh recorded (committed), if any.
fn applied_claim(p: &Pyramid) -> Option<i64> {
    security::as_catalog_owner(|| {
        Spi::get_one_with_args::<i64>(
            "SELECT (last_build ->> 'shard_claim')::int8 FROM vasttile.heat_pyramids WHERE name = $1",
            &[p.name.as_str().into()],
        )
    })
    .or_spi_error("reading the pyramid")
}

/// The nodes `run_command_on_all_nodes` reaches (the coordinator among them).
fn nodes() -> i64 {
    Spi::get_one::<i64>(
        "SELECT count(*) + 1 FROM pg_catalog.pg_dist_node WHERE isactive AND noderole = 'primary'",
    )
    .or_spi_error("counting the Citus nodes")
    .unwrap_or(1)
    .max(1)
}

fn next_claim() -> i64 {
    security::as_catalog_owner(|| Spi::get_one::<i64>("SELECT nextval('vasttile.shard_claim_seq')"))
        .or_spi_error("claiming changes")
        .unwrap_or(0)
}

/// Coordinator, building: leave the definition on every node and claim (and so drop, once this
/// build commits) every change logged so far, which the build reads from the table. The table
/// is locked against writers first. Returns the claim for the build report.
pub(super) fn claim_for_build(p: &Pyramid) -> i64 {
    on_every_node(
        "leaving the pyramid's definition on the nodes",
        "shard_pyramid_define",
        vec![p.name.clone(), p.source.clone(), p.options.to_string()],
    );
    let claim = next_claim();
    take(p, applied_claim(p), claim, 0);
    claim
}

/// Coordinator, refreshing: take the changes logged on the nodes into this node's log. Returns
/// the claim, or None when the pyramid must be rebuilt (never built with logs on the nodes, or
/// more changes than a refresh ships).
pub(super) fn take_changes(p: &Pyramid) -> Option<i64> {
    let applied = applied_claim(p)?;
    let claim = next_claim();
    take(p, Some(applied), claim, MAX_ROWS).then_some(claim)
}

/// Claim the nodes' rows (dropping those of the committed claim `applied`); insert them into
/// this node's log unless a node answered 'rebuild' (false then).
fn take(p: &Pyramid, applied: Option<i64>, claim: i64, max_rows: i64) -> bool {
    let answers = on_every_node(
        "taking the changes logged on the nodes",
        "shard_pyramid_take",
        vec![
            p.name.clone(),
            p.source.clone(),
            p.options.to_string(),
            applied.unwrap_or(0).to_string(),
            claim.to_string(),
            max_rows.to_string(),
            (MAX_BYTES / nodes()).to_string(),
        ],
    );
    if answers.iter().any(|a| a == "rebuild") {
        return false;
    }
    for rows in answers {
        // Node answers are parsed as JSON into typed columns; signs other than +-1 are dropped.
        security::as_catalog_owner(|| {
            Spi::run_with_args(
                "INSERT INTO vasttile.heat_pyramid_log \
                   (pyramid, sign, id, path, times, kind, is_virtual, is_private, weight) \
                 SELECT $1, r.sign, r.id, r.path, r.times, r.kind, r.is_virtual, r.is_private, r.weight \
                 FROM pg_catalog.json_populate_recordset(NULL::vasttile.shard_pyramid_log, $2::json) r \
                 WHERE r.sign IN (-1, 1)",
                &[p.name.as_str().into(), rows.into()],
            )
        })
        .or_spi_error("logging the nodes' changes");
    }
    true
}

/// Coordinator, dropping or moving a pyramid off distributed table `source` (a qualified name):
/// forget it on every node. A node that does not answer keeps a definition that only logs rows
/// nobody takes: a warning, not an error.
pub(super) fn forget_everywhere(name: &str, source: &str) {
    let sql = "SELECT count(*) FILTER (WHERE NOT success) FROM pg_catalog.run_command_on_all_nodes(\
               pg_catalog.format('SELECT vasttile.shard_pyramid_forget(%L, %L)', $1::text, $2::text))";
    let failed = Spi::get_one_with_args::<i64>(sql, &[name.into(), source.into()])
        .or_spi_error("forgetting the pyramid on the nodes")
        .unwrap_or(0);
    if failed > 0 {
        pgrx::warning!(
            "heat pyramid \"{name}\": {failed} Citus node(s) did not forget it; their shards' triggers log rows until it is made again there"
        );
    }
}

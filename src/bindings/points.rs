//! SQL family: point tiles (each distinct pixel drawn once as a dot).
//!
//! `dot_tile_agg(...)` is an aggregate over any query; `dot_tile(table, z, x, y, ...)` reads a
//! table through its Morton key ranges and runs that aggregate. The aggregate's state is
//! `internal` with combine/serialise/deserialise, so PostgreSQL's parallel query can split it.

use super::{quoted_relation_name, sql_error, OrRaise, RawJsonb};
use crate::core::dots::{DotStyle, DotTileState};
use crate::core::vcs::{tile_key_ranges, Tile};
use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The aggregate's memory context: states must live there, not in the per-row context.
unsafe fn aggregate_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut context = std::ptr::null_mut();
    if fcinfo.is_null() || unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut context) } == 0 {
        sql_error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "dot_tile_agg support functions can only be called by the aggregate",
        );
    }
    context
}

/// Store a new state in the aggregate's memory context; it is dropped when that context is reset.
unsafe fn new_state(fcinfo: pg_sys::FunctionCallInfo, state: DotTileState) -> Internal {
    let context = unsafe { aggregate_context(fcinfo) };
    unsafe { pgrx::PgMemoryContexts::For(context).switch_to(|_| Internal::new(state)) }
}

/// Shared transition: skip rows with a NULL argument (as a STRICT aggregate would), create the
/// state on the first row, then check the tile and add the point.
fn transition(
    mut state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    tile: (Option<i32>, Option<i32>, Option<i32>),
    style: Option<RawJsonb>,
    add: impl FnOnce(&mut DotTileState) -> Result<(), crate::core::error::CoreError>,
) -> Internal {
    let (Some(z), Some(x), Some(y), Some(style)) = (tile.0, tile.1, tile.2, style) else {
        return state;
    };
    // SAFETY: this aggregate's state is only ever a DotTileState.
    match unsafe { state.get_mut::<DotTileState>() } {
        Some(s) => s.check_tile(z, x, y).or_raise(),
        None => {
            let fresh = DotTileState::new(z, x, y, &style.to_value()).or_raise();
            state = unsafe { new_state(fcinfo, fresh) };
        }
    }
    let s = unsafe { state.get_mut::<DotTileState>() }.expect("state was just initialised");
    add(s).or_raise();
    state
}

#[pg_extern(immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
fn dot_tile_trans(
    state: Internal,
    x: Option<i32>,
    y: Option<i32>,
    z: Option<i32>,
    tile_x: Option<i32>,
    tile_y: Option<i32>,
    style: Option<RawJsonb>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let (Some(x), Some(y)) = (x, y) else {
        return state;
    };
    transition(state, fcinfo, (z, tile_x, tile_y), style, |s| {
        s.add_point(x, y)
    })
}

#[pg_extern(immutable, parallel_safe)]
fn dot_tile_trans_key(
    state: Internal,
    key: Option<i64>,
    z: Option<i32>,
    tile_x: Option<i32>,
    tile_y: Option<i32>,
    style: Option<RawJsonb>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let Some(key) = key else {
        return state;
    };
    transition(state, fcinfo, (z, tile_x, tile_y), style, |s| {
        s.add_key(key)
    })
}

#[pg_extern(immutable, parallel_safe)]
fn dot_tile_final(state: Internal) -> Option<Vec<u8>> {
    // SAFETY: this aggregate's state is only ever a DotTileState.
    let state = unsafe { state.get::<DotTileState>() }?;
    state
        .render_png(&mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise()
}

#[pg_extern(immutable, parallel_safe)]
fn dot_tile_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: this aggregate's states are only ever DotTileStates.
    let mut a = a;
    match (unsafe { a.get_mut::<DotTileState>() }, unsafe {
        b.get::<DotTileState>()
    }) {
        (_, None) => a,
        (None, Some(b)) => unsafe { new_state(fcinfo, b.clone()) },
        (Some(sa), Some(sb)) => {
            sa.merge(sb).or_raise();
            a
        }
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn dot_tile_serial(state: Internal) -> Vec<u8> {
    // SAFETY: this aggregate's state is only ever a DotTileState.
    match unsafe { state.get::<DotTileState>() } {
        Some(s) => s.to_bytes(),
        None => Vec::new(),
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn dot_tile_deserial(bytes: &[u8], _unused: Internal) -> Internal {
    Internal::new(DotTileState::from_bytes(bytes).or_raise())
}

pgrx::extension_sql!(
    r#"
CREATE AGGREGATE dot_tile_agg(x int4, y int4, z int4, tile_x int4, tile_y int4, style jsonb) (
    SFUNC = dot_tile_trans,
    STYPE = internal,
    FINALFUNC = dot_tile_final,
    COMBINEFUNC = dot_tile_combine,
    SERIALFUNC = dot_tile_serial,
    DESERIALFUNC = dot_tile_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dot_tile_agg(int4, int4, int4, int4, int4, jsonb) IS
    'PNG point tile (z, tile_x, tile_y) from VCS points (x, y): each distinct pixel drawn once as a dot; NULL when no dot shows';

CREATE AGGREGATE dot_tile_agg(key int8, z int4, tile_x int4, tile_y int4, style jsonb) (
    SFUNC = dot_tile_trans_key,
    STYPE = internal,
    FINALFUNC = dot_tile_final,
    COMBINEFUNC = dot_tile_combine,
    SERIALFUNC = dot_tile_serial,
    DESERIALFUNC = dot_tile_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dot_tile_agg(int8, int4, int4, int4, jsonb) IS
    'PNG point tile (z, tile_x, tile_y) from Morton keys: each distinct pixel drawn once as a dot; NULL when no dot shows';
"#,
    name = "dot_tile_aggregates",
    requires = [
        dot_tile_trans,
        dot_tile_trans_key,
        dot_tile_final,
        dot_tile_combine,
        dot_tile_serial,
        dot_tile_deserial
    ],
);

/// Point tile of a table or view through its Morton key column: one B-tree range scan for the
/// tile (plus a bounded set of ranges for the ring its dots reach into), then `dot_tile_agg`.
#[pg_extern(stable, parallel_safe)]
fn dot_tile(
    tbl: pgrx::PgRelation,
    z: i32,
    x: i32,
    y: i32,
    style: default!(pgrx::JsonB, "'{}'"),
    key_column: default!(&str, "'vcs_key'"),
) -> Option<Vec<u8>> {
    let tile = Tile::new(z, x, y).or_raise();
    let dot_style = DotStyle::from_json(&style.0).or_raise();
    let ranges = tile_key_ranges(tile, dot_style.size, dot_style.reach() as i64).or_raise();
    let sql = format!(
        "SELECT vasttile.dot_tile_agg({key}, $1, $2, $3, $4) FROM {table} WHERE {filter}",
        key = spi::quote_identifier(key_column),
        table = quoted_relation_name(&tbl),
        filter = key_range_filter(&spi::quote_identifier(key_column), &ranges),
    );
    Spi::get_one_with_args::<Vec<u8>>(&sql, &[z.into(), x.into(), y.into(), style.into()])
        .unwrap_or_else(|e| {
            sql_error(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("dot_tile: {e}"),
            )
        })
}

/// `key >= lo AND key < hi` over the whole span, then the ranges ORed, so that a B-tree answers
/// with range scans (a BitmapOr for several) and a table without an index still scans once.
/// The bounds are integers we computed, never user text.
pub(crate) fn key_range_filter(key: &str, ranges: &[(i64, i64)]) -> String {
    let (lo, hi) = (ranges[0].0, ranges[ranges.len() - 1].1);
    let mut sql = format!("{key} >= {lo} AND {key} < {hi}");
    if ranges.len() > 1 {
        let parts: Vec<String> = ranges
            .iter()
            .map(|(lo, hi)| format!("({key} >= {lo} AND {key} < {hi})"))
            .collect();
        sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
    }
    sql
}

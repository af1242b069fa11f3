//! Building a pyramid over a distributed (Citus) table without pulling its rows to the
//! coordinator: each row's path is split into per-tile runs where the row lives
//! (`pyramid_tile_runs`), the workers draw the base tiles of their shards with the aggregate
//! `pyramid_base_grid` (exact sums, so partial grids add up to what one node draws), and the
//! coordinator adds each tile's partial grids, sums the parents 2x2 and normalises, as on one node.

use super::definition::*;
use super::store::*;
use crate::bindings::aggregate::{self, float8, int4, int8, v1_function};
use crate::bindings::{Bytes, OrRaise};
use pgrx::pg_sys;
use pgrx::prelude::*;
use vasttile_core::error::{CoreError, CoreResult};
use vasttile_core::geometry::vcs::{morton_deinterleave, Tile, TileSize};
use vasttile_core::pyramid::build::Rollup;
use vasttile_core::raster::heat::HeatGrid;

/// The base tile of Morton `code` at zoom `z`.
fn base_tile(code: i64, z: i32) -> CoreResult<Tile> {
    if code < 0 {
        return Err(CoreError::out_of_range(
            "tile",
            format!("must be a Morton code >= 0, got {code}"),
        ));
    }
    let (x, y) = morton_deinterleave(code as u64);
    Tile::new(z, x as i32, y as i32)
}

/// # Safety
/// `fcinfo` must be a call of `pyramid_base_trans(heat_state, tile int8, runs int8[], weight
/// float8, base_zoom int4, tile_size int4)`.
unsafe fn base_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let spec = |row: &[pg_sys::NullableDatum]| -> CoreResult<(Tile, TileSize)> {
        Ok((
            base_tile(int8(&row[0]), int4(&row[3]))?,
            TileSize::from_px(int4(&row[4]) as i64)?,
        ))
    };
    // SAFETY: argument 0 is NULL or a heat_state, then tile, runs, weight, base_zoom and
    // tile_size as declared below, none NULL (rows with NULLs are skipped).
    unsafe {
        aggregate::transition(
            fcinfo,
            |row| {
                let (tile, size) = spec(row)?;
                HeatGrid::new(tile, size)
            },
            |grid, row| {
                let (tile, size) = spec(row)?;
                grid.check_tile(tile.z as i32, tile.x as i32, tile.y as i32, size)?;
                let runs = <pgrx::Array<'_, i64> as FromDatum>::from_datum(row[1].value, false)
                    .expect("not null");
                let keys: Vec<i64> = runs.iter().map(|k| k.unwrap_or(-1)).collect();
                vasttile_core::raster::lines::add_tile_runs(grid, &keys, float8(&row[2]))
                    .map(|_| ())
            },
        )
    }
}

v1_function!(
    /// Transition of `pyramid_base_grid(tile, runs, weight, base_zoom, tile_size)`.
    vasttile_pyramid_base_trans,
    pg_finfo_vasttile_pyramid_base_trans,
    base_trans
);

pgrx::extension_sql!(
    r#"
CREATE FUNCTION pyramid_base_trans(heat_state, tile int8, runs int8[], weight float8, base_zoom int4, tile_size int4)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_pyramid_base_trans';
CREATE AGGREGATE pyramid_base_grid(tile int8, runs int8[], weight float8, base_zoom int4, tile_size int4) (
    SFUNC = pyramid_base_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE pyramid_base_grid(int8, int8[], float8, int4, int4) IS
    'base tile of a heat pyramid from the rows of pyramid_tile_runs: one per path per tile';
"#,
    name = "pyramid_base_aggregate",
    requires = ["heat_state_type"],
);

/// The base tiles of a pyramid over a distributed table, drawn where its rows live, each tile
/// added up on the coordinator, then rolled up into every zoom below in Morton order; `on_tile`
/// receives every finished tile. Returns (rows left out by the filters, points, base tiles).
pub(super) fn distributed_counts(
    p: &Pyramid,
    on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
) -> (u64, u64, u64) {
    // The select list is the pyramid's (quoted identifiers and casts); the table is read as the
    // caller. Rows a filter leaves out come back as tile -1 and are only counted.
    let query = format!(
        "SELECT r.tile, vasttile.pyramid_base_grid(r.tile, r.runs, w.weight, $1, $3)::bytea, \
                count(*), sum(r.points) \
         FROM (SELECT {list}, 1::int2 FROM {src} t) \
              AS w(id, path, times, kind, is_virtual, is_private, weight, sign), \
              LATERAL vasttile.pyramid_tile_runs(w.path, $1, w.id, w.times, w.kind, w.is_virtual, \
                                                 w.is_private, $2) r \
         GROUP BY r.tile ORDER BY r.tile",
        list = p.select_list,
        src = p.source
    );
    let filters = p.filters.as_ref().map(|f| pgrx::JsonB(filters_json(f)));
    let args = [
        (p.base_zoom as i32).into(),
        filters.into(),
        (p.size.px() as i32).into(),
    ];
    let mut rollup = Rollup::new(p.base_zoom, p.size);
    let mut done = Vec::new();
    let (mut left_out, mut points, mut base) = (0u64, 0u64, 0u64);
    // Grouped by sorting, in the build's memory: hash aggregation would hold a grid per tile
    // and spill them over and over.
    let work_mem = format!("{}kB", (memory_budget() / 4 / 1024).max(64));
    with_settings(
        &[("work_mem", &work_mem), ("enable_hashagg", "off")],
        || {
            for_each_row(&query, &args, &mut |row| {
                let tile = row.get::<i64>(1)?.unwrap_or(-1);
                points += row.get::<i64>(4)?.unwrap_or(0) as u64;
                if tile < 0 {
                    left_out += row.get::<i64>(3)?.unwrap_or(0) as u64;
                    return Ok(());
                }
                let Some(bytes) = row.get::<Bytes>(2)? else {
                    return Ok(());
                };
                let grid = HeatGrid::from_bytes(&bytes.0).or_raise();
                base += 1;
                if !grid.is_empty() {
                    rollup.push(grid, &mut done).or_raise();
                }
                for g in done.drain(..) {
                    on_tile(g).or_raise();
                }
                Ok(())
            })
        },
    );
    rollup.finish(&mut done).or_raise();
    for g in done.drain(..) {
        on_tile(g).or_raise();
    }
    (left_out, points, base)
}

//! Building a pyramid over a distributed (Citus) table without pulling its rows to the
//! coordinator: each row's path is split into per-tile runs where the row lives
//! (`pyramid_tile_runs`), the workers draw the base tiles of their shards with the aggregate
//! `pyramid_base_grid` (exact sums, so partial grids add up to what one node draws), and the
//! coordinator adds each tile's partial grids, sums the parents 2x2 and normalises, as on one node.

use super::definition::*;
use super::store::*;
use crate::bindings::aggregate::{self, float8, int4, int8, v1_function};
use crate::bindings::{Bytes, OrRaise, OrSpiError};
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
    parallel_workers: bool,
    on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
) -> SetBasedStats {
    // The select list is the pyramid's (quoted identifiers and casts); the table is read as the
    // caller. Rows a filter leaves out come back as tile -1 and are only counted.
    let select = format!(
        "SELECT r.tile, vasttile.pyramid_base_grid(r.tile, r.runs, w.weight, $1, $3)::bytea AS grid, \
                count(*) AS rows, sum(r.points) AS points \
         FROM (SELECT {list}, 1::int2 FROM {src} t) \
              AS w(id, path, times, kind, is_virtual, is_private, weight, sign), \
              LATERAL vasttile.pyramid_tile_runs(w.path, $1, w.id, w.times, w.kind, w.is_virtual, \
                                                 w.is_private, $2) r \
         GROUP BY r.tile",
        list = p.select_list,
        src = p.source
    );
    let args = || {
        [
            (p.base_zoom as i32).into(),
            p.filters
                .as_ref()
                .map(|f| pgrx::JsonB(filters_json(f)))
                .into(),
            (p.size.px() as i32).into(),
        ]
    };
    let mut rollup = Rollup::new(p.base_zoom, p.size);
    let mut done = Vec::new();
    let mut stats = SetBasedStats::default();
    // Grouped by sorting, in the build's memory: hash aggregation would hold a grid per tile
    // and spill them over and over. (On Citus this is the coordinator's plan; each worker
    // plans its shards' part with its own settings.)
    let work_mem = format!("{}kB", (memory_budget() / 4 / 1024).max(64));
    let compression = lz4_or_pglz();
    with_settings(
        &[
            ("work_mem", &work_mem),
            ("enable_hashagg", "off"),
            ("default_toast_compression", compression),
        ],
        || {
            let query = if parallel_workers {
                // PostgreSQL runs a query in parallel workers only when it runs to completion
                // at once (not fetched by a cursor) and writes nothing else meanwhile: the base
                // tiles go to a temporary table first (as CREATE INDEX writes its output), then
                // are read back in order while the tiles are stored. The table lives and dies in
                // the build's transaction.
                stats.workers_planned = workers_planned(&select, &args());
                Spi::run_with_args(
                    &format!("CREATE TEMP TABLE vasttile_pyramid_base AS {select}"),
                    &args(),
                )
                .or_spi_error("drawing the base tiles");
                "SELECT tile, grid, rows, points FROM pg_temp.vasttile_pyramid_base ORDER BY tile"
                    .to_string()
            } else {
                format!("{select} ORDER BY r.tile")
            };
            let read_args: Vec<pgrx::datum::DatumWithOid<'_>> = if parallel_workers {
                Vec::new()
            } else {
                args().into_iter().collect()
            };
            for_each_row(&query, &read_args, &mut |row| {
                let tile = row.get::<i64>(1)?.unwrap_or(-1);
                stats.points += row.get::<i64>(4)?.unwrap_or(0) as u64;
                if tile < 0 {
                    stats.left_out += row.get::<i64>(3)?.unwrap_or(0) as u64;
                    return Ok(());
                }
                let Some(bytes) = row.get::<Bytes>(2)? else {
                    return Ok(());
                };
                let grid = HeatGrid::from_bytes(&bytes.0).or_raise();
                stats.base_tiles += 1;
                if !grid.is_empty() {
                    rollup.push(grid, &mut done).or_raise();
                }
                for g in done.drain(..) {
                    on_tile(g).or_raise();
                }
                Ok(())
            });
            if parallel_workers {
                Spi::run("DROP TABLE pg_temp.vasttile_pyramid_base")
                    .or_spi_error("dropping the base tiles' table");
            }
        },
    );
    rollup.finish(&mut done).or_raise();
    for g in done.drain(..) {
        on_tile(g).or_raise();
    }
    stats
}

/// What a set-based build read and drew.
#[derive(Default)]
pub(super) struct SetBasedStats {
    /// Rows the filters left out.
    pub(super) left_out: u64,
    /// Points of the rows drawn.
    pub(super) points: u64,
    pub(super) base_tiles: u64,
    /// Parallel workers the plan of the base tiles asked for (one node, `parallel_query`).
    pub(super) workers_planned: u64,
}

/// The largest "Workers Planned" in the plan of `select`.
fn workers_planned(select: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> u64 {
    fn walk(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| match (k.as_str(), v.as_u64()) {
                    ("Workers Planned", Some(n)) => n,
                    _ => walk(v),
                })
                .max()
                .unwrap_or(0),
            serde_json::Value::Array(a) => a.iter().map(walk).max().unwrap_or(0),
            _ => 0,
        }
    }
    Spi::get_one_with_args::<pgrx::Json>(&format!("EXPLAIN (FORMAT JSON) {select}"), args)
        .or_spi_error("planning the base tiles")
        .map_or(0, |plan| walk(&plan.0))
}

/// lz4 where the server has it (pglz is several times slower to compress).
fn lz4_or_pglz() -> &'static str {
    let lz4 = Spi::get_one::<bool>(
        "SELECT 'lz4' = ANY (enumvals) FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression'",
    )
    .or_spi_error("reading the compression methods");
    if lz4 == Some(true) {
        "lz4"
    } else {
        "pglz"
    }
}

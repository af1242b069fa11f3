//! SQL family: heat tiles.
//!
//! Two steps, like the best aggregate extensions: `heat_grid(...)` aggregates rows into a
//! `heatgrid` (a domain over `bytea`: counts or weighted sums per pixel of one tile), then
//! `heat_render(grid, style)` normalises, colours and encodes it. `heat_merge` adds grids of one
//! tile; `heat_grid_from_pixels` builds one from `GROUP BY pixel_key` pairs (the path that
//! distributes on Citus); `heat_tile` does it all over a table; `create_heat_layer` publishes a
//! `(z, x, y, query_params)` function for tile servers. `heat_stats` and `heat_preview` let a
//! person in psql see a tile without an image viewer.

use super::aggregate::{self, float8, int4, int8, v1_function, v1_transition};
use super::{
    check_name, quoted_relation_name, required, sql_error, with_saved_scan_plan, GeoJsonb,
    HeatGridBytes, OrRaise, Relation, StyleJsonb,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi;
use vasttile_core::encoding::preview::shade_blocks;
use vasttile_core::error::{CoreError, CoreResult};
use vasttile_core::geometry::vcs::{Tile, TileSize};
use vasttile_core::raster::heat::HeatGrid;
use vasttile_core::shading::shade::{levels, shade, HeatStyle};

pgrx::extension_sql!(
    r#"
-- Counts or weighted sums per pixel of one tile, as written by heat_grid(...) and read by
-- heat_render(...). A domain over bytea: it travels anywhere bytea does (COPY, Citus, caches).
CREATE DOMAIN heatgrid AS bytea;
COMMENT ON DOMAIN heatgrid IS 'vasttile heat grid: counts or weighted sums per pixel of one tile';
"#,
    name = "heatgrid_domain",
    bootstrap
);

// ---------------------------------------------------------------------------------------------
// The heat_grid aggregates.

/// Transition body of the `heat_grid` overloads: after the state come the point (`point_args`
/// values), z, tile_x, tile_y, then optionally the weight and the tile size (told by the number
/// of arguments).
///
/// # Safety
/// `fcinfo` must be a call of one of the transition functions declared below.
unsafe fn heat_transition(
    fcinfo: pg_sys::FunctionCallInfo,
    point_args: usize,
    add: impl FnOnce(&mut HeatGrid, &[pg_sys::NullableDatum], f64) -> CoreResult<()>,
) -> pg_sys::Datum {
    let size_of = |t: &[pg_sys::NullableDatum]| match t.get(4) {
        Some(s) => TileSize::from_px(int4(s) as i64),
        None => Ok(TileSize::Px256),
    };
    // SAFETY: `fcinfo` is a heat_grid transition call (the caller's promise): argument 0 is null
    // or a `HeatGrid` (the only type its support functions store), and the closures read point,
    // z, tile_x, tile_y and the optional float8 weight and int4 size as the SQL declares them.
    unsafe {
        aggregate::transition(
            fcinfo,
            |row| {
                let t = &row[point_args..];
                HeatGrid::new(
                    Tile::new(int4(&t[0]), int4(&t[1]), int4(&t[2]))?,
                    size_of(t)?,
                )
            },
            |g, row| {
                let w = heat_row(g, &row[point_args..])?;
                add(g, row, w)
            },
        )
    }
}

/// # Safety
/// `fcinfo` must be a call of the transition function declared below.
unsafe fn trans_xy(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is a call of heat_grid_trans(internal, x int4, y int4, ...) (the caller's
    // promise), whose point is the two int4 values read here.
    unsafe {
        heat_transition(fcinfo, 2, |g, p, w| {
            g.add_point(int4(&p[0]), int4(&p[1]), w)
        })
    }
}

/// The row of a heat_grid transition after its point (`point_args` values): the tile checked
/// against the grid's, and the weight.
#[inline(always)]
fn heat_row(g: &HeatGrid, t: &[pg_sys::NullableDatum]) -> CoreResult<f64> {
    let size = match t.get(4) {
        Some(s) => TileSize::from_px(int4(s) as i64)?,
        None => TileSize::Px256,
    };
    g.check_tile(int4(&t[0]), int4(&t[1]), int4(&t[2]), size)?;
    Ok(t.get(3).map_or(1.0, float8))
}

v1_transition!(
    /// Transition of `heat_grid(x int4, y int4, z, tile_x, tile_y [, weight [, tile_size]])`.
    vasttile_heat_grid_trans,
    pg_finfo_vasttile_heat_grid_trans,
    HeatGrid,
    |g: &mut HeatGrid, row: &[pg_sys::NullableDatum]| {
        let w = heat_row(g, &row[2..])?;
        g.add_point(int4(&row[0]), int4(&row[1]), w)
    },
    trans_xy
);

/// # Safety
/// `fcinfo` must be a call of the transition function declared below.
unsafe fn trans_key(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is a call of heat_grid_trans(internal, key int8, ...) (the caller's
    // promise), whose point is the one int8 value read here.
    unsafe { heat_transition(fcinfo, 1, |g, p, w| g.add_key(int8(&p[0]), w)) }
}

v1_transition!(
    /// Transition of `heat_grid(key int8, z, tile_x, tile_y [, weight [, tile_size]])`.
    vasttile_heat_grid_trans_key,
    pg_finfo_vasttile_heat_grid_trans_key,
    HeatGrid,
    |g: &mut HeatGrid, row: &[pg_sys::NullableDatum]| {
        if let [key, z, x, y] = row {
            // heat_grid(key, z, x, y), the form heat_tile uses: a count per row at 256 px.
            g.check_tile(int4(z), int4(x), int4(y), TileSize::Px256)?;
            return g.add_key_count(int8(key));
        }
        let w = heat_row(g, &row[1..])?;
        g.add_key(int8(&row[0]), w)
    },
    trans_key
);

/// # Safety
/// `fcinfo` must be a call of `heat_grid_final(heat_state)`.
unsafe fn grid_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: heat_grid_final's argument 0 is NULL or a heat_state (the caller's promise).
    unsafe {
        let grid = aggregate::state_arg::<HeatGrid>(fcinfo, 0);
        // No row fell in the tile: NULL, like any aggregate over nothing.
        let bytes = grid.filter(|g| g.rows > 0).map(|g| g.to_bytes());
        aggregate::result(fcinfo, bytes)
    }
}

v1_function!(
    /// Final function of heat_grid, heat_merge and heat_grid_paths: the `heatgrid` bytes.
    vasttile_heat_grid_final,
    pg_finfo_vasttile_heat_grid_final,
    grid_final
);

v1_function!(
    /// Combine function of heat_grid, heat_merge and heat_grid_paths.
    vasttile_heat_grid_combine,
    pg_finfo_vasttile_heat_grid_combine,
    aggregate::combine::<HeatGrid>
);

/// # Safety
/// `fcinfo` must be a call of `heat_merge_trans(heat_state, heatgrid)`.
unsafe fn merge_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let grid_of = |row: &[pg_sys::NullableDatum]| {
        // SAFETY: argument 1 is a non-null heatgrid (rows with NULLs are skipped).
        HeatGrid::from_bytes(unsafe { aggregate::bytea_arg(&row[0]) })
    };
    // SAFETY: argument 0 is NULL or a heat_state, argument 1 a heatgrid (the caller's promise).
    unsafe {
        aggregate::transition(
            fcinfo,
            |row| {
                let g = grid_of(row)?;
                HeatGrid::new(g.tile, g.size)
            },
            |acc, row| acc.merge(&grid_of(row)?),
        )
    }
}

v1_function!(
    /// Transition of `heat_merge(heatgrid)`.
    vasttile_heat_merge_trans,
    pg_finfo_vasttile_heat_merge_trans,
    merge_trans
);

v1_function!(
    /// Input of `heat_state`.
    vasttile_heat_state_in,
    pg_finfo_vasttile_heat_state_in,
    aggregate::state_in::<HeatGrid>
);
v1_function!(
    /// Output of `heat_state`.
    vasttile_heat_state_out,
    pg_finfo_vasttile_heat_state_out,
    aggregate::state_out::<HeatGrid>
);

pgrx::extension_sql!(
    r#"
-- The running state of the heat aggregates: a grid of exact sums, updated in place. Its text
-- form (hex of the grid's bytes) is how Citus ships partial grids from workers.
CREATE TYPE heat_state;
CREATE FUNCTION heat_state_in(cstring) RETURNS heat_state
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_state_in';
CREATE FUNCTION heat_state_out(heat_state) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_state_out';
CREATE TYPE heat_state (INPUT = heat_state_in, OUTPUT = heat_state_out, INTERNALLENGTH = VARIABLE, STORAGE = extended);
COMMENT ON TYPE heat_state IS 'vasttile: running state of heat_grid, heat_merge and heat_grid_paths';
CREATE FUNCTION heat_grid_final(heat_state) RETURNS heatgrid
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_final';
CREATE FUNCTION heat_grid_combine(heat_state, heat_state) RETURNS heat_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_combine';
CREATE FUNCTION heat_merge_trans(heat_state, heatgrid) RETURNS heat_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_merge_trans';
"#,
    name = "heat_state_type",
);

pgrx::extension_sql!(
    r#"
CREATE FUNCTION heat_grid_trans(heat_state, x int4, y int4, z int4, tile_x int4, tile_y int4)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans';
CREATE FUNCTION heat_grid_trans(heat_state, x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans';
CREATE FUNCTION heat_grid_trans(heat_state, x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans';
CREATE FUNCTION heat_grid_trans(heat_state, key int8, z int4, tile_x int4, tile_y int4)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans_key';
CREATE FUNCTION heat_grid_trans(heat_state, key int8, z int4, tile_x int4, tile_y int4, weight float8)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans_key';
CREATE FUNCTION heat_grid_trans(heat_state, key int8, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans_key';

CREATE AGGREGATE heat_grid(x int4, y int4, z int4, tile_x int4, tile_y int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE AGGREGATE heat_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE AGGREGATE heat_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE AGGREGATE heat_grid(key int8, z int4, tile_x int4, tile_y int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE AGGREGATE heat_grid(key int8, z int4, tile_x int4, tile_y int4, weight float8) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE AGGREGATE heat_grid(key int8, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE heat_grid(int8, int4, int4, int4) IS
    'heat grid of tile (z, tile_x, tile_y): count of points per pixel; NULL when no row falls in the tile';

CREATE AGGREGATE heat_merge(heatgrid) (
    SFUNC = heat_merge_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE heat_merge(heatgrid) IS 'sum of heat grids of one tile, pixel by pixel';
"#,
    name = "heat_grid_aggregates",
    requires = ["heat_state_type"],
);

// ---------------------------------------------------------------------------------------------
// Paths drawn as lines.

/// Transition of both `heat_grid_paths` forms: after the state come the path (Morton keys in
/// order), z, tile_x, tile_y, then optionally the weight and the tile size.
///
/// # Safety
/// `fcinfo` must be a call of one of the path transition functions declared below.
unsafe fn paths_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let spec = |t: &[pg_sys::NullableDatum]| -> CoreResult<(Tile, TileSize)> {
        let size = match t.get(4) {
            Some(s) => TileSize::from_px(int4(s) as i64)?,
            None => TileSize::Px256,
        };
        Ok((Tile::new(int4(&t[0]), int4(&t[1]), int4(&t[2]))?, size))
    };
    // SAFETY: argument 0 is NULL or a heat_state; then an int8[] path, three int4, and
    // optionally a float8 weight and an int4 size, none NULL (rows with NULLs are skipped).
    unsafe {
        aggregate::transition(
            fcinfo,
            |row| {
                let (tile, size) = spec(&row[1..])?;
                HeatGrid::new(tile, size)
            },
            |grid, row| {
                let (tile, size) = spec(&row[1..])?;
                grid.check_tile(tile.z as i32, tile.x as i32, tile.y as i32, size)?;
                let path = <pgrx::Array<'_, i64> as FromDatum>::from_datum(row[0].value, false)
                    .expect("not null");
                let weight = row.get(4).map_or(1.0, float8);
                // A path's NULL points are skipped (as 0.1.0 did); most paths have none and
                // are read in place.
                let keys = match path.as_slice() {
                    Ok(keys) => std::borrow::Cow::Borrowed(keys),
                    Err(_) => std::borrow::Cow::Owned(path.iter().flatten().collect()),
                };
                vasttile_core::raster::lines::add_path_keys(grid, &keys, weight).map(|_| ())
            },
        )
    }
}

v1_function!(
    /// Transition of `heat_grid_paths(path int8[], z, tile_x, tile_y [, weight, tile_size])`.
    vasttile_heat_paths_trans,
    pg_finfo_vasttile_heat_paths_trans,
    paths_trans
);

pgrx::extension_sql!(
    r#"
CREATE FUNCTION heat_paths_trans(heat_state, path int8[], z int4, tile_x int4, tile_y int4)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_paths_trans';
CREATE FUNCTION heat_paths_trans_sized(heat_state, path int8[], z int4, tile_x int4, tile_y int4, weight float8, tile_size int4)
    RETURNS heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_paths_trans';
CREATE AGGREGATE heat_grid_paths(path int8[], z int4, tile_x int4, tile_y int4) (
    SFUNC = heat_paths_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE AGGREGATE heat_grid_paths(path int8[], z int4, tile_x int4, tile_y int4, weight float8, tile_size int4) (
    SFUNC = heat_paths_trans_sized, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE heat_grid_paths(int8[], int4, int4, int4) IS
    'heat grid of tile (z, tile_x, tile_y) from paths (Morton keys in order) drawn as lines: one per path per pixel';
"#,
    name = "heat_paths_aggregates",
    requires = ["heat_state_type"],
);

fn keys_of(path: &[(u32, u32)]) -> Vec<i64> {
    path.iter()
        .map(|&(x, y)| vasttile_core::geometry::vcs::morton_interleave(x, y) as i64)
        .collect()
}

/// The paths (Morton keys in order) of a GeoJSON LineString or MultiLineString, one row per line.
#[pg_extern(immutable, strict, parallel_safe)]
fn paths_from_geojson(geojson: GeoJsonb) -> SetOfIterator<'static, Vec<i64>> {
    let paths = vasttile_core::geometry::polygon::paths_from_geojson(&geojson.0).or_raise();
    SetOfIterator::new(paths.into_iter().map(|p| keys_of(&p)))
}

/// The line features of one object of a TopoJSON topology, one row per line part.
#[pg_extern(immutable, strict, parallel_safe)]
fn paths_from_topojson(
    topojson: &str,
    object: &str,
) -> TableIterator<
    'static,
    (
        name!(id, Option<String>),
        name!(properties, pgrx::JsonB),
        name!(path, Vec<i64>),
    ),
> {
    let rows = vasttile_core::geometry::polygon::paths_from_topojson(topojson, object).or_raise();
    TableIterator::new(
        rows.into_iter()
            .map(|(id, p, path)| (id, pgrx::JsonB(p), keys_of(&path))),
    )
}

// ---------------------------------------------------------------------------------------------
// Rendering and looking at grids.

/// Normalise, colour and encode a heat grid as PNG; NULL when nothing shows.
#[pg_extern(immutable, strict, parallel_safe)]
fn heat_render(grid: HeatGridBytes, style: default!(StyleJsonb, "'{}'")) -> Option<Vec<u8>> {
    let style = HeatStyle::from_json(&style.0, HeatStyle::heat_defaults()).or_raise();
    shade(&grid.grid(), &style).or_raise()
}

/// Rows, lit pixels, total and maximum heat, and percentiles of the lit pixels' heat.
#[pg_extern(immutable, strict, parallel_safe)]
#[allow(clippy::type_complexity)]
fn heat_stats(
    grid: HeatGridBytes,
) -> TableIterator<
    'static,
    (
        name!(z, i32),
        name!(x, i32),
        name!(y, i32),
        name!(tile_size, i32),
        name!(rows, i64),
        name!(lit_pixels, i64),
        name!(total, f64),
        name!(max, f64),
        name!(p50, f64),
        name!(p90, f64),
        name!(p99, f64),
    ),
> {
    let g = grid.grid();
    let s = g.stats();
    TableIterator::once((
        g.tile.z as i32,
        g.tile.x as i32,
        g.tile.y as i32,
        g.size.px() as i32,
        s.rows as i64,
        s.lit as i64,
        s.total,
        s.max,
        s.p50,
        s.p90,
        s.p99,
    ))
}

/// Every pixel with heat: its column and row inside the tile, and its heat.
#[pg_extern(immutable, strict, parallel_safe)]
fn heat_pixels(
    grid: HeatGridBytes,
) -> TableIterator<'static, (name!(px, i32), name!(py, i32), name!(heat, f64))> {
    let g = grid.grid();
    let side = g.side() as usize;
    let lit: Vec<(i32, i32, f64)> = g
        .values()
        .iter()
        .enumerate()
        .filter(|(_, &h)| h > 0.0)
        .map(|(i, &h)| ((i % side) as i32, (i / side) as i32, h))
        .collect();
    TableIterator::new(lit)
}

/// The grid drawn with Unicode shade blocks, `width` characters wide, normalised by `style`.
#[pg_extern(immutable, strict, parallel_safe)]
fn heat_preview(
    grid: HeatGridBytes,
    style: default!(StyleJsonb, "'{}'"),
    width: default!(i32, 64),
) -> String {
    let style = HeatStyle::from_json(&style.0, HeatStyle::heat_defaults()).or_raise();
    let g = grid.grid();
    if !(8..=512).contains(&width) {
        super::raise(CoreError::out_of_range(
            "width",
            format!("must be between 8 and 512, got {width}"),
        ));
    }
    shade_blocks(&levels(&g, &style), g.side(), width as u32)
}

/// A heat grid from (pixel key, heat) pairs, as `GROUP BY vasttile.pixel_key(key, z)` with
/// `count(*)` or `sum(weight)` gives them: the aggregation runs anywhere, Citus included, and
/// only the pairs meet here. A pixel outside the tile is an error (22023); NULL keys or heat
/// skip the pair.
#[pg_extern(immutable, parallel_safe)]
fn heat_grid_from_pixels(
    z: i32,
    x: i32,
    y: i32,
    pixel_keys: Vec<Option<i64>>,
    heat: Vec<Option<f64>>,
    tile_size: default!(i32, 256),
) -> Option<HeatGridBytes> {
    if pixel_keys.len() != heat.len() {
        super::raise(CoreError::out_of_range(
            "pixel_keys and heat",
            format!(
                "must have the same length, got {} and {}",
                pixel_keys.len(),
                heat.len()
            ),
        ));
    }
    let size = TileSize::from_px(tile_size as i64).or_raise();
    let mut grid = HeatGrid::new(Tile::new(z, x, y).or_raise(), size).or_raise();
    for (k, h) in pixel_keys.into_iter().zip(heat) {
        if let (Some(k), Some(h)) = (k, h) {
            grid.add_pixel_key(k, h, 1).or_raise();
        }
    }
    (grid.rows > 0).then(|| HeatGridBytes(grid.to_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Tiles from tables, and layers for tile servers.

/// Heat tile of a table or view: one B-tree range scan for the tile into `heat_grid`, then
/// `heat_render`. Style keys are `heat_render`'s plus `size` (256 or 512). When a built heat
/// pyramid over the same points (key and weight columns, tile size) reaches zoom z, the tile
/// comes from the pyramid instead (as of its last build or refresh).
#[pg_extern(stable, parallel_safe)]
fn heat_tile(
    tbl: Relation,
    z: Option<i32>,
    x: Option<i32>,
    y: Option<i32>,
    style: default!(StyleJsonb, "'{}'"),
    key_column: default!(Option<&str>, "'vcs_key'"),
    weight_column: default!(Option<&str>, "NULL"),
) -> Option<Vec<u8>> {
    // Not STRICT (weight_column may be NULL): the other arguments are checked here.
    let (z, x, y) = (required(z, "z"), required(x, "x"), required(y, "y"));
    let key_column = check_name(required(key_column, "key_column"), "key_column");
    let weight_column = weight_column.map(|w| check_name(w, "weight_column"));
    let tile = Tile::new(z, x, y).or_raise();
    let (size, heat_style, ()) =
        HeatStyle::read_tile(&style.0, HeatStyle::heat_defaults(), &[], |_| Ok(())).or_raise();
    // A pyramid over the same points serves its zooms with one row read.
    if let Some(pyramid) =
        super::pyramid::points_pyramid_for(tbl.oid(), key_column, weight_column, size, tile.z)
    {
        return super::pyramid::pyramid_tile(&pyramid, tile, &heat_style, size);
    }
    let (lo, hi) = tile.key_range();
    let args = [
        z.into(),
        x.into(),
        y.into(),
        (size.px() as i32).into(),
        lo.into(),
        hi.into(),
    ];
    let grid = Spi::connect(|client| {
        with_heat_plan(client, &tbl, key_column, weight_column, size, |plan| {
            client
                .select(plan, Some(1), &args)?
                .first()
                .get_one::<Vec<u8>>()
        })
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("heat_tile: {e}"),
        )
    })?;
    shade(&HeatGrid::from_bytes(&grid).or_raise(), &heat_style).or_raise()
}

fn with_heat_plan<R>(
    client: &spi::SpiClient<'_>,
    tbl: &pgrx::PgRelation,
    key_column: &str,
    weight_column: Option<&str>,
    size: TileSize,
    f: impl FnOnce(&spi::OwnedPreparedStatement) -> spi::SpiResult<R>,
) -> spi::SpiResult<R> {
    let key = spi::quote_identifier(key_column);
    // Counts at 256 px take the four-argument form: fewer arguments to evaluate per row.
    let extra = match (weight_column, size) {
        (None, TileSize::Px256) => String::new(),
        (None, TileSize::Px512) => ", 1.0::float8, $4".to_string(),
        (Some(w), _) => format!(", t.{}::float8, $4", spi::quote_identifier(w)),
    };
    let sql = format!(
        "SELECT vasttile.heat_grid(t.{key}, $1, $2, $3{extra}) FROM {table} AS t \
         WHERE t.{key} >= $5 AND t.{key} < $6",
        table = quoted_relation_name(tbl),
    );
    use pgrx::PgBuiltInOids as T;
    let types = [
        T::INT4OID,
        T::INT4OID,
        T::INT4OID,
        T::INT4OID,
        T::INT8OID,
        T::INT8OID,
    ];
    with_saved_scan_plan(client, tbl.oid(), sql, &types, f)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::bindings::test_support::sqlstate_of;
    use pgrx::prelude::*;

    fn bytes(sql: &str) -> Option<Vec<u8>> {
        Spi::get_one::<Vec<u8>>(sql).unwrap()
    }

    #[pg_test]
    fn parallel_heat_grid_equals_serial_and_the_tile_is_byte_identical() {
        // 400,000 points inside tile (2, 1, 1).
        Spi::run(
            "CREATE TABLE pts AS SELECT vasttile.vcs_key(((1::int8 << 29) + (g::int8 * 2654435761) % (1 << 29))::int4, \
                                                    ((1::int8 << 29) + (g::int8 * 40503 * g) % (1 << 29))::int4) AS vcs_key \
             FROM generate_series(1, 400000) g; ANALYZE pts;",
        )
        .unwrap();
        let grid = "SELECT vasttile.heat_grid(vcs_key, 2, 1, 1) FROM pts";
        Spi::run(
            "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; \
             SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2",
        )
        .unwrap();
        let plan = Spi::explain(grid).unwrap().0.to_string();
        assert!(plan.contains(r#""Partial Mode":"Partial""#), "{plan}");
        assert!(plan.contains(r#""Workers Planned":2"#), "{plan}");
        let parallel = bytes(grid);
        let parallel_tile = bytes(&format!("SELECT vasttile.heat_render(({grid}))"));
        Spi::run("SET max_parallel_workers_per_gather = 0").unwrap();
        let serial = bytes(grid);
        assert!(serial.is_some());
        assert_eq!(parallel, serial);
        assert_eq!(
            parallel_tile,
            bytes(&format!("SELECT vasttile.heat_render(({grid}))"))
        );
    }

    #[pg_test]
    fn tile_scans_leave_plan_cache_mode_as_it_was() {
        Spi::run(
            "CREATE TABLE hp AS SELECT vasttile.lonlat_to_key(-87.6 + g * 1e-5, 41.8) AS vcs_key \
             FROM generate_series(1, 2000) g; CREATE INDEX ON hp (vcs_key); ANALYZE hp; \
             SET plan_cache_mode = force_generic_plan",
        )
        .unwrap();
        for _ in 0..3 {
            assert!(bytes("SELECT vasttile.heat_tile('hp', 10, 262, 380)").is_some());
        }
        let mode = || {
            Spi::get_one::<String>("SHOW plan_cache_mode")
                .unwrap()
                .unwrap()
        };
        assert_eq!(mode(), "force_generic_plan");
        // An error inside the scan (a weight out of range) restores it too.
        Spi::run("ALTER TABLE hp ADD COLUMN w float8 DEFAULT -1").unwrap();
        assert_eq!(
            sqlstate_of("SELECT vasttile.heat_tile('hp', 10, 262, 380, weight_column => 'w')"),
            "22023"
        );
        assert_eq!(mode(), "force_generic_plan");
    }

    #[pg_test]
    fn bad_heat_input_is_22023() {
        Spi::run("CREATE TABLE h AS SELECT vasttile.lonlat_to_key(-87.6, 41.8) AS vcs_key, 1.0::float8 AS w").unwrap();
        for sql in [
            "SELECT vasttile.heat_grid(vcs_key, 4, 4, 5, 'NaN') FROM h",
            "SELECT vasttile.heat_grid(vcs_key, 4, 4, 5, '-Infinity') FROM h",
            "SELECT vasttile.heat_grid(vcs_key, 4, 4, 5, -0.5) FROM h",
            "SELECT vasttile.heat_grid(vcs_key, 24, 4, 5) FROM h",
            "SELECT vasttile.heat_grid(vcs_key, 4, 16, 5) FROM h",
            "SELECT vasttile.heat_grid(-vcs_key, 4, 4, 5) FROM h",
            "SELECT vasttile.heat_tile('h', 4, 4, 5, '{\"normalize\": \"median\"}')",
            "SELECT vasttile.heat_tile('h', 4, 4, 5, '{\"colormap\": [\"#000\"]}')",
            "SELECT vasttile.heat_tile('h', 4, 4, 5, '{\"size\": 128}')",
            "SELECT vasttile.heat_tile('h', 4, 4, 5, '{\"opacity\": -1}')",
            "SELECT vasttile.heat_render('\\x00'::bytea::vasttile.heatgrid)",
            "SELECT vasttile.access_tile('h', 12, 1050, 1522, '{\"radius_km\": -1}')",
            "SELECT vasttile.create_heat_layer('bad_layer', 'h', '{\"nope\": 1}')",
        ] {
            assert_eq!(sqlstate_of(sql), "22023", "{sql}");
        }
        // Weights that are NULL skip the row, as STRICT would.
        let grid = Spi::get_one::<Vec<u8>>(
            "SELECT vasttile.heat_grid(vcs_key, 4, 4, 5, NULL::float8) FROM h",
        )
        .unwrap();
        assert_eq!(grid, None);
    }

    /// Hostile arguments to the heat, pyramid, layer and choropleth functions: clean errors
    /// (they ended in XX000: pgrx's JsonB, PgRelation and non-Option arguments of functions
    /// that are not STRICT).
    #[pg_test]
    fn hostile_heat_arguments_are_clean_errors() {
        Spi::run("CREATE TABLE hb AS SELECT vasttile.lonlat_to_key(-87.6, 41.8) AS vcs_key, 1.0::float8 AS w").unwrap();
        let deep = "(repeat('[', 10000) || repeat(']', 10000))::jsonb";
        let grid = "(SELECT vasttile.heat_grid(vcs_key, 4, 4, 5) FROM hb)";
        for (sql, state) in [
            ("SELECT vasttile.heat_tile('hb', 4, 4, 5, '{}', 'vcs_key', 'w')".to_string(), "ok"),
            ("SELECT vasttile.heat_tile(0::oid::regclass, 4, 4, 6)".into(), "42P01"),
            ("SELECT vasttile.heat_tile(NULL, 4, 4, 6)".into(), "22004"),
            ("SELECT vasttile.heat_tile('hb', NULL, 4, 6)".into(), "22004"),
            ("SELECT vasttile.heat_tile('hb', 4, 4, 6, '{}', NULL)".into(), "22004"),
            ("SELECT vasttile.heat_tile('hb', 4, 4, 6, NULL)".into(), "22004"),
            ("SELECT vasttile.heat_tile('hb', 4, 4, 6, '{}', '')".into(), "22023"),
            ("SELECT vasttile.heat_tile('hb', 4, 4, 6, '{}', 'vcs_key', '')".into(), "22023"),
            (r#"SELECT vasttile.heat_tile('hb', 4, 4, 6, '{"radius": 1e400}')"#.into(), "22023"),
            (format!("SELECT vasttile.heat_render({grid}, {deep})"), "22023"),
            (format!("SELECT vasttile.heat_preview({grid}, {deep})"), "22023"),
            (format!("SELECT vasttile.legend('heat', {deep})"), "22023"),
            (format!("SELECT vasttile.polygon_from_geojson({deep})"), "22023"),
            (format!("SELECT vasttile.paths_from_geojson({deep})"), "22023"),
            ("SELECT vasttile.create_heat_layer(NULL, 'hb')".into(), "22004"),
            ("SELECT vasttile.create_heat_layer('hb_layer', 'hb', '{}', 'vcs_key', NULL, NULL)".into(), "22004"),
            ("SELECT vasttile.create_heat_layer('', 'hb')".into(), "22023"),
            ("SELECT vasttile.create_heat_layer('hb_layer', 0::oid::regclass)".into(), "42P01"),
            ("SELECT vasttile.create_dot_layer('hb_dots', 'hb', '{}', 'vcs_key', '')".into(), "22023"),
            ("SELECT vasttile.create_access_layer('hb_access', 2147483647::oid::regclass)".into(), "42P01"),
            ("SELECT vasttile.create_skeleton_layer('hb_layer', 0::oid::regclass)".into(), "42P01"),
            ("SELECT vasttile.create_heat_pyramid('hb_pyr', 0::oid::regclass)".into(), "42P01"),
            (format!("SELECT vasttile.create_heat_pyramid('hb_pyr', 'hb', {deep})"), "22023"),
            (format!("SELECT vasttile.create_pyramid_layer('hb_pl', 'hb_pyr', {deep})"), "22023"),
            (format!("SELECT vasttile.create_choropleth_layer('hb_ch', 'l', 'SELECT 1, 1', {deep})"), "22023"),
            ("SELECT vasttile.activity_path(NULL, '{1}', NULL, 'ride')".into(), "22004"),
            ("SELECT vasttile.activity_path(1, '{1}', NULL, 'ride', NULL, NULL)".into(), "ok"),
            (format!("SELECT vasttile.activity_path(1, '{{1}}', NULL, 'ride', false, false, {deep})"), "22023"),
            ("SELECT vasttile.skeleton_render(NULL)".into(), "22004"),
            (r#"SELECT vasttile.heat_pyramid_select_list('{"geometry": "points"}')"#.into(), "22023"),
            (r#"SELECT vasttile.heat_pyramid_select_list('{"geometry": "activities", "column": "path"}')"#.into(), "22023"),
        ] {
            assert_eq!(sqlstate_of(&sql), state, "{sql}");
        }
    }
}

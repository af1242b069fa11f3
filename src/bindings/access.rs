//! SQL family: accessibility heat (the Numba article's walking-distance heat around points of
//! interest). `access_grid(...)` gathers the POIs that can reach a tile and computes a
//! `heatgrid` of sum(max(0, R - d)) in km; `heat_render` colours it (use the article's style, or
//! `access_tile`, whose defaults are the article's); `access_tile` reads POIs from a table.

use super::aggregate::{self, float8, int4, int8, v1_function};
use super::{
    check_name, quoted_relation_name, sql_error, threads, with_saved_scan_plan, HeatGridBytes,
    OrRaise, Relation, StyleJsonb,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi;
use vasttile_core::error::{CoreError, CoreResult};
use vasttile_core::geometry::vcs::{Tile, TileSize};
use vasttile_core::raster::access::AccessState;
use vasttile_core::shading::shade::{shade, HeatStyle};

/// Transition body of the `access_grid` overloads: after the state come the point (`point_args`
/// values), z, tile_x, tile_y, radius_km and optionally the tile size.
///
/// # Safety
/// `fcinfo` must be a call of one of the transition functions declared below.
unsafe fn access_transition(
    fcinfo: pg_sys::FunctionCallInfo,
    point_args: usize,
    add: impl FnOnce(&mut AccessState, &[pg_sys::NullableDatum]) -> CoreResult<()>,
) -> pg_sys::Datum {
    let spec = |t: &[pg_sys::NullableDatum]| -> CoreResult<(Tile, TileSize, f64)> {
        let size = match t.get(4) {
            Some(s) => TileSize::from_px(int4(s) as i64)?,
            None => TileSize::Px256,
        };
        Ok((
            Tile::new(int4(&t[0]), int4(&t[1]), int4(&t[2]))?,
            size,
            float8(&t[3]),
        ))
    };
    // SAFETY: `fcinfo` is an access_grid transition call (the caller's promise): argument 0 is
    // null or an `AccessState` (the only type its support functions store), and the closures read
    // point, z, tile_x, tile_y, float8 radius and optional int4 size as the SQL declares them.
    unsafe {
        aggregate::transition(
            fcinfo,
            |row| {
                let (tile, size, radius) = spec(&row[point_args..])?;
                AccessState::new(tile, size, radius)
            },
            |st, row| {
                if spec(&row[point_args..])? != (st.tile, st.size, st.radius_km) {
                    return Err(CoreError::out_of_range(
                        "tile and radius",
                        "must be the same in every row of one accessibility grid",
                    ));
                }
                add(st, row)
            },
        )
    }
}

/// # Safety
/// `fcinfo` must be a call of the transition function declared below.
unsafe fn trans_xy(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is a call of access_grid_trans(access_state, x int4, y int4, ...) (the
    // caller's promise), whose point is the two int4 values read here.
    unsafe { access_transition(fcinfo, 2, |s, p| s.add_point(int4(&p[0]), int4(&p[1]))) }
}

v1_function!(
    /// Transition of `access_grid(x int4, y int4, z, tile_x, tile_y, radius_km [, tile_size])`.
    vasttile_access_grid_trans,
    pg_finfo_vasttile_access_grid_trans,
    trans_xy
);

/// # Safety
/// `fcinfo` must be a call of the transition function declared below.
unsafe fn trans_key(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is a call of access_grid_trans(access_state, key int8, ...) (the caller's
    // promise), whose point is the one int8 value read here.
    unsafe {
        access_transition(fcinfo, 1, |s, p| {
            let (x, y) = vasttile_core::geometry::vcs::vcs_from_key(int8(&p[0]))?;
            s.add_point(x, y)
        })
    }
}

v1_function!(
    /// Transition of `access_grid(key int8, z, tile_x, tile_y, radius_km [, tile_size])`.
    vasttile_access_grid_trans_key,
    pg_finfo_vasttile_access_grid_trans_key,
    trans_key
);

/// # Safety
/// `fcinfo` must be a call of `access_grid_final(access_state)`.
unsafe fn state_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: argument 0 is NULL or an access_state (the caller's promise).
    unsafe {
        let grid = aggregate::state_arg::<AccessState>(fcinfo, 0).map(|s| {
            s.compute(threads(), &mut || {
                pgrx::check_for_interrupts!();
            })
            .or_raise()
            .to_bytes()
        });
        aggregate::result(fcinfo, grid)
    }
}
v1_function!(
    /// Final function of the access_grid aggregates: the `heatgrid` of sums.
    vasttile_access_grid_final,
    pg_finfo_vasttile_access_grid_final,
    state_final
);

v1_function!(
    /// Combine function of the access_grid aggregates.
    vasttile_access_grid_combine,
    pg_finfo_vasttile_access_grid_combine,
    aggregate::combine::<AccessState>
);
v1_function!(
    /// Input of `access_state`.
    vasttile_access_state_in,
    pg_finfo_vasttile_access_state_in,
    aggregate::state_in::<AccessState>
);
v1_function!(
    /// Output of `access_state`.
    vasttile_access_state_out,
    pg_finfo_vasttile_access_state_out,
    aggregate::state_out::<AccessState>
);

pgrx::extension_sql!(
    r#"
-- The running state of access_grid: the POIs that can reach the tile. Its text form (hex of its bytes) is how Citus ships partial states from workers.
CREATE TYPE access_state;
CREATE FUNCTION access_state_in(cstring) RETURNS access_state
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_state_in';
CREATE FUNCTION access_state_out(access_state) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_state_out';
CREATE TYPE access_state (INPUT = access_state_in, OUTPUT = access_state_out, INTERNALLENGTH = VARIABLE, STORAGE = extended);
COMMENT ON TYPE access_state IS 'vasttile: running state of the access_grid aggregates';
CREATE FUNCTION access_grid_final(access_state) RETURNS heatgrid
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_final';
CREATE FUNCTION access_grid_combine(access_state, access_state) RETURNS access_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_combine';
"#,
    name = "access_state_type",
);

pgrx::extension_sql!(
    r#"
CREATE FUNCTION access_grid_trans(access_state, x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8)
    RETURNS access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans';
CREATE FUNCTION access_grid_trans(access_state, x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4)
    RETURNS access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans';
CREATE FUNCTION access_grid_trans(access_state, key int8, z int4, tile_x int4, tile_y int4, radius_km float8)
    RETURNS access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans_key';
CREATE FUNCTION access_grid_trans(access_state, key int8, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4)
    RETURNS access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans_key';

CREATE AGGREGATE access_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
CREATE AGGREGATE access_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
CREATE AGGREGATE access_grid(key int8, z int4, tile_x int4, tile_y int4, radius_km float8) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
CREATE AGGREGATE access_grid(key int8, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE access_grid(int8, int4, int4, int4, float8) IS
    'accessibility grid of tile (z, tile_x, tile_y): per pixel, sum over POIs of max(0, radius_km - distance in km)';
"#,
    name = "access_grid_aggregates",
    requires = ["access_state_type", "heatgrid_domain"],
);

/// Accessibility tile of a table or view of POIs through its Morton key column. Style keys are
/// `heat_render`'s (defaults: the article's linear to 4, jet, alpha = clamp(2t, 0, 0.95)) plus
/// `radius_km` (1.2) and `size` (256 or 512).
#[pg_extern(stable, parallel_safe)]
fn access_tile(
    tbl: Relation,
    z: i32,
    x: i32,
    y: i32,
    style: default!(StyleJsonb, "'{}'"),
    key_column: default!(&str, "'vcs_key'"),
) -> Option<Vec<u8>> {
    let key_column = check_name(key_column, "key_column");
    let tile = Tile::new(z, x, y).or_raise();
    let (size, radius, heat_style) =
        vasttile_core::raster::access::read_tile_style(&style.0).or_raise();
    let ranges = AccessState::new(tile, size, radius).or_raise().key_ranges();
    let (lo, hi): (Vec<i64>, Vec<i64>) = ranges.into_iter().unzip();
    let args = [
        z.into(),
        x.into(),
        y.into(),
        radius.into(),
        (size.px() as i32).into(),
        lo.into(),
        hi.into(),
    ];
    let key = spi::quote_identifier(key_column);
    let sql = format!(
        "SELECT vasttile.access_grid(t.{key}, $1, $2, $3, $4, $5) \
         FROM unnest($6::int8[], $7::int8[]) AS r(lo, hi) \
         JOIN {table} AS t ON t.{key} >= r.lo AND t.{key} < r.hi",
        table = quoted_relation_name(&tbl),
    );
    use pgrx::PgBuiltInOids as T;
    let types = [
        T::INT4OID,
        T::INT4OID,
        T::INT4OID,
        T::FLOAT8OID,
        T::INT4OID,
        T::INT8ARRAYOID,
        T::INT8ARRAYOID,
    ];
    let grid = Spi::connect(|client| {
        with_saved_scan_plan(client, tbl.oid(), sql, &types, |plan| {
            client
                .select(plan, Some(1), &args)?
                .first()
                .get_one::<Vec<u8>>()
        })
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("access_tile: {e}"),
        )
    })?;
    let grid = vasttile_core::raster::heat::HeatGrid::from_bytes(&grid).or_raise();
    shade(&grid, &heat_style).or_raise()
}

/// `heat_render` with the article's defaults (linear to 4, jet, alpha = clamp(2t, 0, 0.95)).
#[pg_extern(immutable, strict, parallel_safe)]
fn access_render(grid: HeatGridBytes, style: default!(StyleJsonb, "'{}'")) -> Option<Vec<u8>> {
    let style = HeatStyle::from_json(&style.0, HeatStyle::accessibility_defaults()).or_raise();
    let grid = vasttile_core::raster::heat::HeatGrid::from_bytes(&grid.0).or_raise();
    shade(&grid, &style).or_raise()
}

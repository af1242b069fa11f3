//! SQL family: accessibility heat (the Numba article's walking-distance heat around points of
//! interest). `access_grid(...)` gathers the POIs that can reach a tile and computes a
//! `heatgrid` of sum(max(0, R - d)) in km; `heat_render` colours it (use the article's style, or
//! `access_tile`, whose defaults are the article's); `access_tile` reads POIs from a table.

use super::heat::HeatGridBytes;
use super::{aggregate_context, quoted_relation_name, sql_error, with_saved_plan, OrRaise};
use crate::core::access::AccessState;
use crate::core::error::CoreResult;
use crate::core::parallel::available_threads;
use crate::core::shade::{shade, HeatStyle};
use crate::core::style::StyleReader;
use crate::core::vcs::{Tile, TileSize};
use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi;

/// Threads for kernel work: none besides our own inside a parallel worker (rule: no thread pools
/// in parallel workers), else the machine's.
fn threads() -> usize {
    // SAFETY: reading a backend-local global.
    if unsafe { pg_sys::ParallelWorkerNumber } >= 0 {
        1
    } else {
        available_threads()
    }
}

/// Per-row transition of the `access_grid` overloads (raw V1, as for heat): after the state, the
/// point (`point_args` values), z, tile_x, tile_y, radius_km and optionally tile_size.
///
/// # Safety
/// `fcinfo` must be a call of one of the transition functions declared below.
unsafe fn transition(
    fcinfo: pg_sys::FunctionCallInfo,
    point_args: usize,
    add: impl FnOnce(&mut AccessState, &[pg_sys::NullableDatum]) -> CoreResult<()>,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL passes the declared arguments.
    let args = unsafe { (*fcinfo).args.as_slice((*fcinfo).nargs as usize) };
    let mut state = args[0].value.cast_mut_ptr::<AccessState>();
    if args[0].isnull {
        state = std::ptr::null_mut();
    }
    if !args[1..].iter().any(|a| a.isnull) {
        let rest = &args[1 + point_args..];
        let (z, x, y) = (
            rest[0].value.value() as i32,
            rest[1].value.value() as i32,
            rest[2].value.value() as i32,
        );
        // SAFETY: float8 is passed by value.
        let radius = unsafe { f64::from_datum(rest[3].value, false) }.unwrap_or(f64::NAN);
        let size = match rest.get(4) {
            Some(s) => TileSize::from_px(s.value.value() as i32 as i64).or_raise(),
            None => TileSize::Px256,
        };
        if state.is_null() {
            let fresh = AccessState::new(Tile::new(z, x, y).or_raise(), size, radius).or_raise();
            let context = unsafe { aggregate_context(fcinfo) };
            state = pgrx::PgMemoryContexts::For(context).leak_and_drop_on_delete(fresh);
        }
        // SAFETY: a non-null state of these aggregates is an AccessState in the aggregate context.
        let st = unsafe { &mut *state };
        let t = st.tile;
        if (t.z as i32, t.x as i32, t.y as i32, st.size, st.radius_km) != (z, x, y, size, radius) {
            super::raise(crate::core::error::CoreError::out_of_range(
                "tile and radius",
                "must be the same in every row of one accessibility grid".to_string(),
            ));
        }
        add(st, &args[1..1 + point_args]).or_raise();
    }
    if state.is_null() {
        unsafe { (*fcinfo).isnull = true };
    }
    pg_sys::Datum::from(state)
}

#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_vasttile_access_grid_trans() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// Transition of `access_grid(x int4, y int4, z, tile_x, tile_y, radius_km [, tile_size])`.
///
/// # Safety
/// Called by PostgreSQL through the functions declared below.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vasttile_access_grid_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        transition(fcinfo, 2, |s, p| {
            s.add_point(p[0].value.value() as i32, p[1].value.value() as i32)
        })
    }
}

#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_vasttile_access_grid_trans_key() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// Transition of `access_grid(key int8, z, tile_x, tile_y, radius_km [, tile_size])`.
///
/// # Safety
/// Called by PostgreSQL through the functions declared below.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vasttile_access_grid_trans_key(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        transition(fcinfo, 1, |s, p| {
            let (x, y) = crate::core::vcs::vcs_from_key(p[0].value.value() as i64)?;
            s.add_point(x, y)
        })
    }
}

#[pg_extern(immutable, parallel_safe)]
fn access_grid_final(state: Internal) -> Option<HeatGridBytes> {
    // SAFETY: these aggregates' state is only ever an AccessState.
    let st = unsafe { state.get::<AccessState>() }?;
    let grid = st
        .compute(threads(), &mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise();
    Some(HeatGridBytes(grid.to_bytes()))
}

#[pg_extern(immutable, parallel_safe)]
fn access_grid_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let mut a = a;
    // SAFETY: these aggregates' states are only ever AccessStates.
    match (unsafe { a.get_mut::<AccessState>() }, unsafe {
        b.get::<AccessState>()
    }) {
        (_, None) => a,
        (None, Some(b)) => {
            let context = unsafe { aggregate_context(fcinfo) };
            unsafe { pgrx::PgMemoryContexts::For(context).switch_to(|_| Internal::new(b.clone())) }
        }
        (Some(sa), Some(sb)) => {
            sa.merge(sb).or_raise();
            a
        }
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn access_grid_serial(state: Internal) -> Vec<u8> {
    // SAFETY: these aggregates' state is only ever an AccessState.
    unsafe { state.get::<AccessState>() }
        .map(AccessState::to_bytes)
        .unwrap_or_default()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn access_grid_deserial(bytes: &[u8], _unused: Internal) -> Internal {
    Internal::new(AccessState::from_bytes(bytes).or_raise())
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION access_grid_trans(internal, x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8)
    RETURNS internal IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans';
CREATE FUNCTION access_grid_trans(internal, x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4)
    RETURNS internal IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans';
CREATE FUNCTION access_grid_trans(internal, key int8, z int4, tile_x int4, tile_y int4, radius_km float8)
    RETURNS internal IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans_key';
CREATE FUNCTION access_grid_trans(internal, key int8, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4)
    RETURNS internal IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans_key';

CREATE AGGREGATE access_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8) (
    SFUNC = access_grid_trans, STYPE = internal, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine, SERIALFUNC = access_grid_serial, DESERIALFUNC = access_grid_deserial,
    PARALLEL = SAFE);
CREATE AGGREGATE access_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4) (
    SFUNC = access_grid_trans, STYPE = internal, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine, SERIALFUNC = access_grid_serial, DESERIALFUNC = access_grid_deserial,
    PARALLEL = SAFE);
CREATE AGGREGATE access_grid(key int8, z int4, tile_x int4, tile_y int4, radius_km float8) (
    SFUNC = access_grid_trans, STYPE = internal, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine, SERIALFUNC = access_grid_serial, DESERIALFUNC = access_grid_deserial,
    PARALLEL = SAFE);
CREATE AGGREGATE access_grid(key int8, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4) (
    SFUNC = access_grid_trans, STYPE = internal, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine, SERIALFUNC = access_grid_serial, DESERIALFUNC = access_grid_deserial,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE access_grid(int8, int4, int4, int4, float8) IS
    'accessibility grid of tile (z, tile_x, tile_y): per pixel, sum over POIs of max(0, radius_km - distance in km)';
"#,
    name = "access_grid_aggregates",
    requires = [
        access_grid_final,
        access_grid_combine,
        access_grid_serial,
        access_grid_deserial,
        "heatgrid_domain"
    ],
);

/// Accessibility tile of a table or view of POIs through its Morton key column. Style keys are
/// `heat_render`'s (defaults: the article's linear to 4, jet, alpha = clamp(2t, 0, 0.95)) plus
/// `radius_km` (1.2) and `size` (256 or 512).
#[pg_extern(stable, parallel_safe)]
fn access_tile(
    tbl: pgrx::PgRelation,
    z: i32,
    x: i32,
    y: i32,
    style: default!(pgrx::JsonB, "'{}'"),
    key_column: default!(&str, "'vcs_key'"),
) -> Option<Vec<u8>> {
    let tile = Tile::new(z, x, y).or_raise();
    let mut reader = StyleReader::new(&style.0).or_raise();
    let size = reader.tile_size("size").or_raise();
    let radius = reader
        .number(
            "radius_km",
            1.2,
            f64::MIN_POSITIVE,
            crate::core::access::MAX_RADIUS_KM,
        )
        .or_raise();
    let heat_style = HeatStyle::read(&mut reader, HeatStyle::accessibility_defaults()).or_raise();
    let mut known = HeatStyle::KEYS.to_vec();
    known.extend(["radius_km", "size"]);
    reader.finish(&known).or_raise();
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
        with_saved_plan(client, tbl.oid(), sql, &types, |plan| {
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
    let grid = crate::core::heat::HeatGrid::from_bytes(&grid).or_raise();
    shade(&grid, &heat_style).or_raise()
}

/// `heat_render` with the article's defaults (linear to 4, jet, alpha = clamp(2t, 0, 0.95)).
#[pg_extern(immutable, strict, parallel_safe)]
fn access_render(grid: HeatGridBytes, style: default!(pgrx::JsonB, "'{}'")) -> Option<Vec<u8>> {
    let style = HeatStyle::from_json(&style.0, HeatStyle::accessibility_defaults()).or_raise();
    let grid = crate::core::heat::HeatGrid::from_bytes(&grid.0).or_raise();
    shade(&grid, &style).or_raise()
}

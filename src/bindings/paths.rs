//! SQL family: paths and activities. The filters of an activity, a path's per-tile runs, its box
//! and tiles, and the synthetic city of activities for demos.

use super::{required, sql_error, Jsonb, OrRaise};
use pgrx::prelude::*;
use vasttile_core::demo::SyntheticCity;
use vasttile_core::error::{CoreError, CoreResult};
use vasttile_core::geometry::activity::{self, Activity, ActivityFilters};
use vasttile_core::geometry::vcs::{
    lat_to_vcs, lon_to_vcs, morton_deinterleave, morton_interleave, vcs_from_key,
    vcs_points_of_keys,
};
use vasttile_core::pyramid::build::{path_runs, tiles_of_path};
use vasttile_core::raster::lines::path_bounds;

/// An activity's path after the filters (Morton keys), or NULL when they leave it out. Filters
/// as in `create_heat_pyramid`'s `filters` option; NULL `is_virtual` / `is_private` count as
/// false.
#[pg_extern(immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
fn activity_path(
    id: Option<i64>,
    path: Option<Vec<Option<i64>>>,
    times: Option<Vec<Option<f64>>>,
    kind: Option<String>,
    is_virtual: default!(Option<bool>, false),
    is_private: default!(Option<bool>, false),
    filters: default!(Jsonb, "'{}'"),
) -> Option<Vec<i64>> {
    // Not STRICT (path, times and kind may be NULL): the id is checked here; NULL flags are
    // false, as pyramids read them (coalesce(flag, false)).
    let id = required(id, "id");
    let (is_virtual, is_private) = (is_virtual.unwrap_or(false), is_private.unwrap_or(false));
    let filters = ActivityFilters::from_json(&filters.0).or_raise();
    row_path(
        Some(filters).as_ref(),
        Some(id),
        path,
        times,
        kind,
        is_virtual,
        is_private,
    )
    .or_raise()
    .map(|pts| {
        pts.iter()
            .map(|&(x, y)| morton_interleave(x, y) as i64)
            .collect()
    })
}

/// The runs of segments a path (after the activity `filters`, when given) draws into each tile
/// of zoom z, as a pyramid build sorts them: (tile Morton code, run number, points of the path
/// on the first run, the run's points as Morton keys). A path the filters leave out, or NULL or
/// empty, is one row with tile -1.
#[pg_extern(immutable, parallel_safe, requires = ["pyramid_tables"])]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn pyramid_runs(
    path: Option<Vec<Option<i64>>>,
    z: Option<i32>,
    id: default!(Option<i64>, "NULL"),
    times: default!(Option<Vec<Option<f64>>>, "NULL"),
    kind: default!(Option<String>, "NULL"),
    is_virtual: default!(Option<bool>, "false"),
    is_private: default!(Option<bool>, "false"),
    filters: default!(Option<Jsonb>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(tile, i64),
        name!(seq, i32),
        name!(points, i32),
        name!(run, Option<Vec<i64>>),
    ),
> {
    let z = vasttile_core::geometry::vcs::check_zoom(crate::bindings::required(z, "z")).or_raise();
    let filters = filters
        .map(|f| ActivityFilters::from_json(&f.0))
        .transpose()
        .or_raise();
    let filtered = row_path(
        filters.as_ref(),
        id,
        path,
        times,
        kind,
        is_virtual.unwrap_or(false),
        is_private.unwrap_or(false),
    )
    .or_raise();
    let rows: Vec<(i64, i32, i32, Option<Vec<i64>>)> = match filtered {
        Some(pts) if !pts.is_empty() => path_runs(&pts, z)
            .or_raise()
            .into_iter()
            .enumerate()
            .map(|(seq, (code, run))| {
                let keys = run
                    .iter()
                    .map(|&(x, y)| morton_interleave(x, y) as i64)
                    .collect();
                let n = if seq == 0 { pts.len() as i32 } else { 0 };
                (code as i64, seq as i32, n, Some(keys))
            })
            .collect(),
        _ => vec![(-1, 0, 0, None)],
    };
    TableIterator::new(rows)
}

/// The runs of `pyramid_runs` gathered by tile: one row per base tile the path draws into,
/// (tile Morton code, points of the path on its first tile, the tile's runs as Morton keys, one
/// after another with -1 between them). A distributed pyramid build aggregates these where the
/// rows live (`pyramid_base_grid`): one row per path and tile, so the path counts once per tile.
#[pg_extern(immutable, parallel_safe, requires = ["pyramid_tables"])]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn pyramid_tile_runs(
    path: Option<Vec<Option<i64>>>,
    z: Option<i32>,
    id: default!(Option<i64>, "NULL"),
    times: default!(Option<Vec<Option<f64>>>, "NULL"),
    kind: default!(Option<String>, "NULL"),
    is_virtual: default!(Option<bool>, "false"),
    is_private: default!(Option<bool>, "false"),
    filters: default!(Option<Jsonb>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(tile, i64),
        name!(points, i32),
        name!(runs, Option<Vec<i64>>),
    ),
> {
    let mut tiles: Vec<(i64, i32, Option<Vec<i64>>)> = Vec::new();
    let mut index: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    for (tile, _, points, run) in
        pyramid_runs(path, z, id, times, kind, is_virtual, is_private, filters)
    {
        let Some(run) = run else {
            tiles.push((tile, points, None));
            continue;
        };
        match index.get(&tile).and_then(|&i| tiles[i].2.as_mut()) {
            Some(keys) => {
                keys.push(vasttile_core::raster::lines::RUN_BREAK);
                keys.extend(run);
            }
            None => {
                index.insert(tile, tiles.len());
                tiles.push((tile, points, Some(run)));
            }
        }
    }
    // The first tile of the path carries its point count, as in pyramid_runs.
    let total: i32 = tiles.iter().map(|t| t.1).sum();
    for (i, t) in tiles.iter_mut().enumerate() {
        t.1 = if i == 0 { total } else { 0 };
    }
    TableIterator::new(tiles)
}

/// The VCS bounding box of a path, for a GiST index: `CREATE INDEX ON t USING gist
/// (vasttile.path_box(path))` and `WHERE vasttile.path_box(path) && box(...)`. A path with a
/// segment across the antimeridian gets the whole width of the world (it draws at both edges).
#[pg_extern(immutable, strict, parallel_safe)]
fn path_box(path: pgrx::Array<'_, i64>) -> Option<pgrx::pg_sys::BOX> {
    let points: Vec<(u32, u32)> = path
        .iter()
        .flatten()
        .map(|key| {
            let (x, y) = vcs_from_key(key).or_raise();
            (x as u32, y as u32)
        })
        .collect();
    let (x0, y0, x1, y1) = path_bounds(points)?;
    Some(pgrx::pg_sys::BOX {
        high: pgrx::pg_sys::Point {
            x: x1 as f64,
            y: y1 as f64,
        },
        low: pgrx::pg_sys::Point {
            x: x0 as f64,
            y: y0 as f64,
        },
    })
}

/// The base tiles of zoom z a path draws into (tile x, y), e.g. to see what a change dirties.
#[pg_extern(immutable, strict, parallel_safe)]
fn path_tiles(
    path: Vec<Option<i64>>,
    z: i32,
) -> TableIterator<'static, (name!(tile_x, i32), name!(tile_y, i32))> {
    let z = vasttile_core::geometry::vcs::check_zoom(z).or_raise();
    let points: Vec<(u32, u32)> = path
        .iter()
        .map(|&k| {
            let k =
                k.ok_or_else(|| CoreError::out_of_range("path", "must not hold NULL points"))?;
            vcs_from_key(k).map(|(x, y)| (x as u32, y as u32))
        })
        .collect::<CoreResult<_>>()
        .or_raise();
    TableIterator::new(tiles_of_path(&points, z).or_raise().into_iter().map(|c| {
        let (x, y) = morton_deinterleave(c);
        (x as i32, y as i32)
    }))
}

/// A synthetic city of `n` activities around (lon, lat): runs, rides and walks along a
/// jittered street grid with GPS noise and stops at junctions, about 5% virtual rides, 3% car
/// trips labelled as rides and 2% private. Reproducible for a seed.
#[pg_extern(immutable, strict, parallel_safe)]
#[allow(clippy::type_complexity)]
fn synthetic_activities(
    n: i64,
    seed: default!(i64, 1),
    lon: default!(f64, "-0.1"),
    lat: default!(f64, 51.5),
    radius_m: default!(f64, 8000.0),
    points: default!(i32, 200),
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(kind, String),
        name!(is_virtual, bool),
        name!(is_private, bool),
        name!(path, Vec<i64>),
        name!(times, Vec<f64>),
    ),
> {
    if !(0..=10_000_000).contains(&n) || !(2..=100_000).contains(&points) {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "n must be between 0 and 10,000,000 and points between 2 and 100,000",
        );
    }
    if !(radius_m.is_finite() && (100.0..=1_000_000.0).contains(&radius_m)) {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "radius_m must be between 100 and 1,000,000",
        );
    }
    let city = SyntheticCity {
        centre: (
            lon_to_vcs(lon).or_raise() as u32,
            lat_to_vcs(lat).or_raise() as u32,
        ),
        radius_m,
        block_m: 120.0,
        points_per_activity: points as usize,
    };
    TableIterator::new((1..=n).map(move |id| {
        if id % 1024 == 0 {
            pgrx::check_for_interrupts!();
        }
        let a = city.activity(seed as u64, id as u64);
        (
            id,
            a.kind.to_string(),
            a.is_virtual,
            a.is_private,
            a.points
                .iter()
                .map(|&(x, y)| morton_interleave(x, y) as i64)
                .collect(),
            a.times,
        )
    }))
}

/// The path a row of SQL values draws (Morton keys to VCS points), after the activity
/// `filters` when given; `None` when the filters leave it out or there is no path.
#[allow(clippy::too_many_arguments)]
pub(crate) fn row_path(
    filters: Option<&ActivityFilters>,
    id: Option<i64>,
    keys: Option<Vec<Option<i64>>>,
    times: Option<Vec<Option<f64>>>,
    kind: Option<String>,
    is_virtual: bool,
    is_private: bool,
) -> CoreResult<Option<Vec<(u32, u32)>>> {
    let Some(keys) = keys else { return Ok(None) };
    let points = keys
        .into_iter()
        .map(|k| {
            let k = k.ok_or_else(null_points)?;
            vcs_from_key(k).map(|(x, y)| (x as u32, y as u32))
        })
        .collect::<CoreResult<Vec<_>>>()?;
    let Some(filters) = filters else {
        return Ok(Some(points));
    };
    let times = times
        .map(|t| {
            t.into_iter()
                .map(|v| v.ok_or_else(null_times))
                .collect::<CoreResult<Vec<f64>>>()
        })
        .transpose()?;
    filtered(
        filters,
        id,
        points,
        times.as_deref(),
        kind.as_deref(),
        is_virtual,
        is_private,
    )
}

/// A path holding a NULL point.
pub(crate) fn null_points() -> CoreError {
    CoreError::out_of_range("path", "must not hold NULL points")
}

/// Activity times holding a NULL.
pub(crate) fn null_times() -> CoreError {
    CoreError::out_of_range("activity times", "must not hold NULL")
}

/// [`row_path`] of arrays without NULLs (as a build reads them, slices of the rows' arrays).
pub(crate) fn path_of(
    filters: Option<&ActivityFilters>,
    id: Option<i64>,
    keys: &[i64],
    times: Option<&[f64]>,
    kind: Option<&str>,
    is_virtual: bool,
    is_private: bool,
) -> CoreResult<Option<Vec<(u32, u32)>>> {
    let mut points = Vec::new();
    vcs_points_of_keys(keys, &mut points)?;
    match filters {
        None => Ok(Some(points)),
        Some(f) => filtered(f, id, points, times, kind, is_virtual, is_private),
    }
}

/// An activity's points after the filters.
fn filtered(
    filters: &ActivityFilters,
    id: Option<i64>,
    points: Vec<(u32, u32)>,
    times: Option<&[f64]>,
    kind: Option<&str>,
    is_virtual: bool,
    is_private: bool,
) -> CoreResult<Option<Vec<(u32, u32)>>> {
    activity::filter(
        &Activity {
            id: id.unwrap_or(0),
            kind: kind.unwrap_or(""),
            is_virtual,
            is_private,
            points: &points,
            times,
        },
        filters,
    )
}

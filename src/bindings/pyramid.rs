//! SQL family: heat pyramids (the Strava global heatmap inside PostgreSQL).
//!
//! `create_heat_pyramid(name, table, options)` registers a table of points, paths or activities,
//! puts statement triggers on it that log changed rows, and builds the pyramid: count tiles at a
//! base zoom drawn in parallel, summed 2x2 down to z0, each tile normalised by its
//! neighbourhood's CDF with bilinear interpolation and stored as one byte per pixel.
//! `heat_pyramid_tile` serves a tile with one row read and a colour lookup (any zoom up to the
//! base; deeper tiles are drawn on the fly from the table), `heat_pyramid_refresh` applies the
//! logged changes to the tiles they touch. Builds and refreshes run in the caller's transaction,
//! so a failed, cancelled or killed one leaves the last good pyramid (and the log) as it was.

use super::access::threads;
use super::heat::HeatGridBytes;
use super::security::{self, Access};
use super::{check_name, required, sql_error, Bytes, Jsonb, OrRaise, Relation, StyleJsonb};
use crate::core::activity::{self, Activity, ActivityFilters, SyntheticCity};
use crate::core::cdf::Cdf;
use crate::core::error::{CoreError, CoreResult};
use crate::core::heat::HeatGrid;
use crate::core::parallel;
use crate::core::png::Effort;
use crate::core::pyramid::{
    path_runs, seam_stats, tiles_of_path, Normalisation, PathSet, SeamTile, StreamBuild,
};
use crate::core::shade::{encode_levels, shade, HeatStyle, Normalize};
use crate::core::style::StyleReader;
use crate::core::vcs::{
    lat_to_vcs, lon_to_vcs, morton_deinterleave, morton_interleave, vcs_from_key, Tile, TileSize,
};
use pgrx::prelude::*;
use pgrx::spi;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

pgrx::extension_sql_file!(
    "pyramid.sql",
    name = "pyramid_tables",
    requires = ["heatgrid_domain"]
);

// ---------------------------------------------------------------------------------------------
// A pyramid's definition.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Geometry {
    Points,
    Paths,
    Activities,
}

struct Pyramid {
    name: String,
    /// The source table, quoted, and its OID.
    source: String,
    source_oid: pgrx::pg_sys::Oid,
    /// The role that created the pyramid.
    owner: pgrx::pg_sys::Oid,
    geometry: Geometry,
    column: String,
    /// Columns read per row, in the order of `heat_pyramid_log`'s from `id` on, made from the
    /// options by `vasttile.heat_pyramid_select_list` (every identifier quoted).
    select_list: String,
    filters: Option<ActivityFilters>,
    base_zoom: u32,
    size: TileSize,
    norm: Normalisation,
    options: Value,
}

impl Pyramid {
    /// Read and check the options, filling in every default (stored that way, so a pyramid's
    /// definition is explicit).
    fn from_options(name: &str, source: &str, options: &Value) -> CoreResult<Pyramid> {
        Self::read_options(name, source, options).map_err(|e| match e {
            CoreError::Style { key, detail } if !key.is_empty() => {
                CoreError::out_of_range("pyramid option", format!("\"{key}\": {detail}"))
            }
            other => other,
        })
    }

    fn read_options(name: &str, source: &str, options: &Value) -> CoreResult<Pyramid> {
        let mut r = StyleReader::new(options)?;
        let text = |r: &mut StyleReader, key: &'static str, default: &str| -> CoreResult<String> {
            match r.take(key) {
                None => Ok(default.to_string()),
                Some(Value::String(s)) if !s.is_empty() => Ok(s),
                Some(v) => Err(CoreError::style(
                    key,
                    format!("must be a column name, got {v}"),
                )),
            }
        };
        let geometry = match text(&mut r, "geometry", "points")?.as_str() {
            "points" => Geometry::Points,
            "paths" => Geometry::Paths,
            "activities" => Geometry::Activities,
            other => {
                return Err(CoreError::style(
                    "geometry",
                    format!("must be \"points\", \"paths\" or \"activities\", got \"{other}\""),
                ))
            }
        };
        let default_column = if geometry == Geometry::Points {
            "vcs_key"
        } else {
            "path"
        };
        let column = text(&mut r, "column", default_column)?;
        let weight = match r.take("weight_column") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if geometry != Geometry::Activities && !s.is_empty() => Some(s),
            Some(v) => {
                return Err(CoreError::style(
                    "weight_column",
                    format!("must be a column name of a points or paths table, got {v}"),
                ))
            }
        };
        let mut names = json!({});
        let filters = match geometry {
            Geometry::Points | Geometry::Paths => None,
            Geometry::Activities => {
                for (key, default) in [
                    ("id_column", "id"),
                    ("times_column", "times"),
                    ("kind_column", "kind"),
                    ("virtual_column", "is_virtual"),
                    ("private_column", "is_private"),
                ] {
                    names[key] = json!(text(&mut r, key, default)?);
                }
                Some(ActivityFilters::from_json(
                    &r.take("filters").unwrap_or(json!({})),
                )?)
            }
        };
        let base_zoom = r.number("base_zoom", 14.0, 0.0, 22.0)? as u32;
        let size = r.tile_size("tile_size")?;
        if size == TileSize::Px512 && base_zoom > 21 {
            return Err(CoreError::style(
                "base_zoom",
                "must be at most 21 for 512-px tiles",
            ));
        }
        let norm = Normalisation {
            radius: r.number("radius", 5.0, 0.0, 20.0)? as u32,
            low_heat: r.number("low_heat", 4.0, 0.0, 1e12)?,
            ..Normalisation::default()
        };
        r.finish(&[
            "geometry",
            "column",
            "weight_column",
            "id_column",
            "times_column",
            "kind_column",
            "virtual_column",
            "private_column",
            "filters",
            "base_zoom",
            "tile_size",
            "radius",
            "low_heat",
        ])?;
        let geometry_name = ["points", "paths", "activities"][geometry as usize];
        let mut options = json!({
            "geometry": geometry_name,
            "column": column,
            "base_zoom": base_zoom,
            "tile_size": size.px(),
            "radius": norm.radius,
            "low_heat": norm.low_heat,
        });
        if let Some(w) = weight {
            options["weight_column"] = json!(w);
        }
        if let (Some(f), Value::Object(m)) = (&filters, names) {
            for (k, v) in m {
                options[k] = v;
            }
            options["filters"] = filters_json(f);
        }
        Ok(Pyramid {
            name: name.to_string(),
            source: source.to_string(),
            source_oid: pgrx::pg_sys::Oid::INVALID,
            owner: pgrx::pg_sys::Oid::INVALID,
            geometry,
            column: options["column"].as_str().unwrap_or_default().to_string(),
            select_list: String::new(),
            filters,
            base_zoom,
            size,
            norm,
            options,
        })
    }

    /// A pyramid's definition from the catalog (read as the extension's owner: the caller's
    /// rights are checked by each use).
    fn load(name: &str) -> Pyramid {
        let row = security::as_catalog_owner(|| {
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT p.source::oid, p.owner::oid, p.options, \
                            vasttile.heat_pyramid_select_list(p.options), \
                            (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
                             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p.source) \
                     FROM vasttile.heat_pyramids p WHERE p.name = $1",
                    Some(1),
                    &[name.into()],
                )?;
                let Some(row) = rows.into_iter().next() else {
                    return Ok(None);
                };
                Ok::<_, spi::SpiError>(Some((
                    row.get::<pgrx::pg_sys::Oid>(1)?,
                    row.get::<pgrx::pg_sys::Oid>(2)?,
                    row.get::<pgrx::JsonB>(3)?,
                    row.get::<String>(4)?,
                    row.get::<String>(5)?,
                )))
            })
            .or_spi_error("reading the heat pyramid")
        });
        match row {
            Some((Some(oid), Some(owner), Some(options), Some(list), source)) => {
                let Some(source) = source else {
                    sql_error(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                        format!("the table of heat pyramid \"{name}\" no longer exists"),
                    )
                };
                let mut p = Pyramid::from_options(name, &source, &options.0).or_raise();
                p.source_oid = oid;
                p.owner = owner;
                p.select_list = list;
                p
            }
            _ => sql_error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("heat pyramid \"{name}\" does not exist"),
            ),
        }
    }

    /// The path a row draws, or `None` when the filters leave it out.
    #[allow(clippy::too_many_arguments)]
    fn row_path(
        &self,
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
                let k =
                    k.ok_or_else(|| CoreError::out_of_range("path", "must not hold NULL points"))?;
                vcs_from_key(k).map(|(x, y)| (x as u32, y as u32))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        let Some(filters) = &self.filters else {
            return Ok(Some(points));
        };
        let times = times
            .map(|t| {
                t.into_iter()
                    .map(|v| {
                        v.ok_or_else(|| {
                            CoreError::out_of_range("activity times", "must not hold NULL")
                        })
                    })
                    .collect::<CoreResult<Vec<f64>>>()
            })
            .transpose()?;
        activity::filter(
            &Activity {
                id: id.unwrap_or(0),
                kind: kind.as_deref().unwrap_or(""),
                is_virtual,
                is_private,
                points: &points,
                times: times.as_deref(),
            },
            filters,
        )
    }
}

fn filters_json(f: &ActivityFilters) -> Value {
    json!({
        "exclude_flagged": f.exclude_virtual,
        "speed_limits": f.speed_limits,
        "stops": f.stops.map_or(json!(false), |s| json!({"window_s": s.window_s, "speed": s.speed, "radius_m": s.radius_m})),
        "offset_m": f.offset_m,
        "seed": f.seed,
    })
}

/// SPI failures inside a build are internal errors, reported with what was being done.
trait OrSpiError<T> {
    fn or_spi_error(self, what: &str) -> T;
}

impl<T> OrSpiError<T> for spi::SpiResult<T> {
    fn or_spi_error(self, what: &str) -> T {
        self.unwrap_or_else(|e| {
            sql_error(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("{what}: {e}"),
            )
        })
    }
}

/// Rows read and what became of them.
#[derive(Default)]
struct ReadStats {
    rows: u64,
    drawn: u64,
    left_out: u64,
}

/// Run `query` through a cursor and hand `f` its rows in batches of 2,000, checking for
/// interrupts between batches; what a batch's values allocate is freed with it.
fn for_each_row(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: &mut dyn FnMut(&spi::SpiHeapTupleData<'_>) -> spi::SpiResult<()>,
) {
    Spi::connect_mut(|client| {
        let mut cursor = client.try_open_cursor_mut(query, args)?;
        loop {
            pgrx::check_for_interrupts!();
            let table = cursor.fetch(2000)?;
            if table.is_empty() {
                break;
            }
            super::with_row_memory(|| -> spi::SpiResult<()> {
                for row in table {
                    f(&row)?;
                }
                Ok(())
            })?;
            // SAFETY: the batch's rows were read above and are not used again.
            unsafe { pgrx::pg_sys::SPI_freetuptable(pgrx::pg_sys::SPI_tuptable) };
        }
        Ok::<_, spi::SpiError>(())
    })
    .or_spi_error("reading the pyramid's rows");
}

/// The paths (after the filters) of `query`, whose columns are the select list: the rows of one
/// tile drawn on the fly.
fn read_paths(p: &Pyramid, query: &str) -> PathSet {
    let mut paths = PathSet::default();
    for_each_row(query, &[], &mut |row| {
        let path = p
            .row_path(
                row.get::<i64>(1)?,
                row.get::<Vec<Option<i64>>>(2)?,
                row.get::<Vec<Option<f64>>>(3)?,
                row.get::<String>(4)?,
                row.get::<bool>(5)?.unwrap_or(false),
                row.get::<bool>(6)?.unwrap_or(false),
            )
            .or_raise();
        let weight = row.get::<f64>(7)?.unwrap_or(1.0);
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            paths.push(&path, weight).or_raise();
        }
        Ok(())
    });
    paths
}

// ---------------------------------------------------------------------------------------------
// Building and refreshing.

fn tile_args<'a>(name: &'a str, t: Tile) -> [pgrx::datum::DatumWithOid<'a>; 4] {
    [
        name.into(),
        (t.z as i32).into(),
        (t.x as i32).into(),
        (t.y as i32).into(),
    ]
}

fn read_counts(p: &Pyramid, t: Tile) -> Option<HeatGrid> {
    security::as_catalog_owner(|| {
        Spi::get_one_with_args::<Bytes>(
            "SELECT (SELECT counts::bytea FROM vasttile.heat_pyramid_tiles \
         WHERE pyramid = $1 AND z = $2 AND x = $3 AND y = $4)",
            &tile_args(&p.name, t),
        )
    })
    .or_spi_error("reading pyramid counts")
    .map(|b| HeatGrid::from_bytes(&b.0).or_raise())
}

fn write_counts(p: &Pyramid, g: &HeatGrid) -> Cdf {
    let summary = p.norm.summary(g);
    // Parameters are made inside the closure, in its memory context (freed per tile).
    security::as_catalog_owner(|| {
        let [a, b, c, d] = tile_args(&p.name, g.tile);
        Spi::run_with_args(
            "INSERT INTO vasttile.heat_pyramid_tiles (pyramid, z, x, y, counts, summary) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (pyramid, z, x, y) DO UPDATE SET counts = excluded.counts, summary = excluded.summary, levels = NULL",
            &[a, b, c, d, g.to_bytes().into(), summary.to_bytes().into()],
        )
    })
    .or_spi_error("writing pyramid counts");
    summary
}

/// The CDF summaries of the tiles of zoom z in rows `y0..=y1`.
fn summaries_in_rows(p: &Pyramid, z: u32, y0: u32, y1: u32) -> HashMap<(u32, u32), Cdf> {
    let mut out = HashMap::new();
    security::as_catalog_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT x, y, summary FROM vasttile.heat_pyramid_tiles \
                 WHERE pyramid = $1 AND z = $2 AND y BETWEEN $3 AND $4",
                None,
                &[
                    p.name.as_str().into(),
                    (z as i32).into(),
                    (y0 as i32).into(),
                    (y1 as i32).into(),
                ],
            )?;
            for row in rows {
                let (Some(x), Some(y), Some(s)) =
                    (row.get::<i32>(1)?, row.get::<i32>(2)?, row.get::<Bytes>(3)?)
                else {
                    continue;
                };
                out.insert((x as u32, y as u32), Cdf::from_bytes(&s.0).or_raise());
            }
            Ok::<_, spi::SpiError>(())
        })
    })
    .or_spi_error("reading pyramid summaries");
    out
}

/// The (x, y) of every stored tile of zoom z (8 bytes a tile).
fn tiles_at(p: &Pyramid, z: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    security::as_catalog_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT x, y FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1 AND z = $2",
                None,
                &[p.name.as_str().into(), (z as i32).into()],
            )?;
            for row in rows {
                if let (Some(x), Some(y)) = (row.get::<i32>(1)?, row.get::<i32>(2)?) {
                    out.push((x as u32, y as u32));
                }
            }
            Ok::<_, spi::SpiError>(())
        })
    })
    .or_spi_error("listing pyramid tiles");
    out
}

/// Recompute and store the levels of `targets` (tiles of zoom z), 1,024 at a time in order of
/// row, each group with the summaries of its rows and of the rows within the neighbourhood's
/// reach (radius + 1): the memory of one group, not of the whole zoom.
fn normalise(p: &Pyramid, z: u32, targets: &mut [(u32, u32)]) {
    targets.sort_unstable_by_key(|&(x, y)| (y, x));
    let reach = p.norm.radius + 1;
    for part in targets.chunks(1024) {
        pgrx::check_for_interrupts!();
        let (y0, y1) = (part[0].1, part[part.len() - 1].1);
        let summaries = summaries_in_rows(p, z, y0.saturating_sub(reach), y1 + reach);
        normalise_part(p, z, part, &summaries);
    }
}

/// Recompute and store the levels of `targets` (tiles of zoom z) from `summaries` (holding
/// every tile their neighbourhoods reach).
fn normalise_part(
    p: &Pyramid,
    z: u32,
    targets: &[(u32, u32)],
    summaries: &HashMap<(u32, u32), Cdf>,
) {
    let threads = threads();
    for part in targets.chunks(1024) {
        let cdfs =
            p.norm
                .neighbourhood_cdfs(z, &Normalisation::cdf_tiles(z, part), summaries, threads);
        for chunk in part.chunks(threads * 2) {
            pgrx::check_for_interrupts!();
            let grids: Vec<HeatGrid> = chunk
                .iter()
                .filter_map(|&(x, y)| read_counts(p, Tile { z, x, y }))
                .collect();
            let levels: Vec<Vec<u8>> = parallel::run(threads, || {
                grids.par_iter().map(|g| p.norm.levels(g, &cdfs)).collect()
            });
            for (g, l) in grids.iter().zip(levels) {
                security::as_catalog_owner(|| {
                    let [a, b, c, d] = tile_args(&p.name, g.tile);
                    Spi::run_with_args(
                        "UPDATE vasttile.heat_pyramid_tiles SET levels = $5 WHERE pyramid = $1 AND z = $2 AND x = $3 AND y = $4",
                        &[a, b, c, d, l.into()],
                    )
                })
                .or_spi_error("writing pyramid levels");
            }
        }
    }
}

fn lock(name: &str) {
    let found = security::as_catalog_owner(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT true FROM vasttile.heat_pyramids WHERE name = $1 FOR UPDATE",
            &[name.into()],
        )
    });
    if !matches!(found, Ok(Some(true))) {
        sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("heat pyramid \"{name}\" does not exist"),
        );
    }
}

fn record_build(p: &Pyramid, report: &Value) {
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "UPDATE vasttile.heat_pyramids SET built_at = now(), last_build = $2 WHERE name = $1",
            &[p.name.as_str().into(), pgrx::JsonB(report.clone()).into()],
        )
    })
    .or_spi_error("recording the build");
}

/// The memory budget of a build or refresh: `maintenance_work_mem`, as for `CREATE INDEX`.
fn memory_budget() -> usize {
    Spi::get_one::<i64>(
        "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem'))",
    )
    .or_spi_error("reading maintenance_work_mem")
    .unwrap_or(64 << 20)
    .max(1 << 20) as usize
}

/// Run `f` with `work_mem` at `bytes` for this transaction, then put it back (an error aborts
/// the transaction, which puts it back too).
fn with_work_mem<R>(bytes: usize, f: impl FnOnce() -> R) -> R {
    let old = Spi::get_one::<String>("SELECT pg_catalog.current_setting('work_mem')")
        .or_spi_error("reading work_mem")
        .unwrap_or_else(|| "4MB".to_string());
    let set = |value: &str| {
        Spi::run_with_args(
            "SELECT pg_catalog.set_config('work_mem', $1, true)",
            &[value.into()],
        )
        .or_spi_error("setting work_mem");
    };
    set(&format!("{}kB", (bytes / 1024).max(64)));
    let r = f();
    set(&old);
    r
}

/// What a stream of rows drew.
#[derive(Default)]
struct StreamStats {
    read: ReadStats,
    points: u64,
    draw: crate::core::pyramid::DrawStats,
    /// A TRUNCATE was logged: the pyramid must be rebuilt.
    rebuild: bool,
}

/// Draw the rows of `rows_sql` (columns: id, path, times, kind, is_virtual, is_private, weight,
/// sign; after the optional `with_sql` clause, their parameters from $3 on, `args`) in bounded
/// memory: each row's path, after the
/// pyramid's filters, is split into per-tile runs in SQL (`pyramid_runs`), PostgreSQL sorts the
/// runs by sign (adds first), tile and row, and the tiles are drawn in that order a batch at a
/// time. The budget is shared in quarters: the sort and the row numbering each get one as
/// `work_mem` (spilling to disk beyond it), the batch another. `on_tile` receives every
/// finished tile (base and ancestors) with the sign of its rows.
fn stream_counts(
    p: &Pyramid,
    with_sql: &str,
    rows_sql: &str,
    args: Vec<pgrx::datum::DatumWithOid<'_>>,
    on_tile: &mut dyn FnMut(HeatGrid, f64) -> CoreResult<()>,
) -> StreamStats {
    let budget = memory_budget();
    let query = format!(
        "{with_sql} SELECT r.tile, w.row_id, r.seq, r.points, r.run, w.weight, w.sign \
         FROM (SELECT row_number() OVER () AS row_id, s.* FROM ({rows_sql}) \
               AS s(id, path, times, kind, is_virtual, is_private, weight, sign)) w, \
              LATERAL vasttile.pyramid_runs(w.path, $1, w.id, w.times, w.kind, w.is_virtual, w.is_private, $2) r \
         ORDER BY w.sign DESC, r.tile, w.row_id, r.seq"
    );
    let filters = p.filters.as_ref().map(|f| pgrx::JsonB(filters_json(f)));
    let mut all_args: Vec<pgrx::datum::DatumWithOid<'_>> =
        vec![(p.base_zoom as i32).into(), filters.into()];
    all_args.extend(args);
    let mut stats = StreamStats::default();
    let mut sign = 1.0;
    let mut build = StreamBuild::new(p.base_zoom, p.size, threads(), budget / 4);
    let mut run: Vec<(u32, u32)> = Vec::new();
    with_work_mem(budget / 4, || {
        for_each_row(&query, &all_args, &mut |row| {
            let row_sign = row.get::<i16>(7)?.unwrap_or(1);
            if row_sign == 0 {
                stats.rebuild = true;
                return Ok(());
            }
            let row_sign = if row_sign > 0 { 1.0 } else { -1.0 };
            if row_sign != sign {
                // The removes follow the adds: finish the adds' tiles first.
                let done = std::mem::replace(
                    &mut build,
                    StreamBuild::new(p.base_zoom, p.size, threads(), budget / 4),
                );
                let s = sign;
                let d = done.finish(&mut |g| on_tile(g, s)).or_raise();
                stats.draw.pixels += d.pixels;
                stats.draw.draw_seconds += d.draw_seconds;
                stats.draw.base_tiles += d.base_tiles;
                sign = row_sign;
            }
            let tile = row.get::<i64>(1)?.unwrap_or(-1);
            let seq = row.get::<i32>(3)?.unwrap_or(0);
            if seq == 0 {
                stats.read.rows += 1;
            }
            if tile < 0 {
                stats.read.left_out += 1;
                return Ok(());
            }
            if seq == 0 {
                stats.read.drawn += 1;
                stats.points += row.get::<i32>(4)?.unwrap_or(0) as u64;
            }
            run.clear();
            for key in row.get::<Vec<i64>>(5)?.unwrap_or_default() {
                let (x, y) = vcs_from_key(key).or_raise();
                run.push((x as u32, y as u32));
            }
            let row_id = row.get::<i64>(2)?.unwrap_or(0) as u64;
            let weight = row.get::<f64>(6)?.unwrap_or(1.0);
            let s = sign;
            build
                .push(tile as u64, row_id, weight, &run, &mut |g| on_tile(g, s))
                .or_raise();
            Ok(())
        })
    });
    let s = sign;
    let d = build.finish(&mut |g| on_tile(g, s)).or_raise();
    stats.draw.pixels += d.pixels;
    stats.draw.draw_seconds += d.draw_seconds;
    stats.draw.base_tiles += d.base_tiles;
    stats
}

/// Rebuild every tile from the table in memory bounded by `maintenance_work_mem`, whatever the
/// table's size (`stream_counts`).
fn build_all(p: &Pyramid) -> Value {
    let started = Instant::now();
    // Readers of the table run no code of a user-defined type's casts; and writers wait, as
    // for CREATE INDEX, so no change is both drawn and logged.
    check_columns(p.source_oid, &p.options, &p.source);
    Spi::run(&format!("LOCK TABLE {} IN SHARE MODE", p.source))
        .or_spi_error("locking the pyramid's table");
    for sql in [
        "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1",
        "DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $1",
    ] {
        security::as_catalog_owner(|| Spi::run_with_args(sql, &[p.name.as_str().into()]))
            .or_spi_error("clearing the pyramid");
    }
    let mut tiles_of: Vec<Vec<(u32, u32)>> = vec![Vec::new(); p.base_zoom as usize + 1];
    // The table is read as the caller.
    let rows_sql = format!(
        "SELECT {list}, 1::int2 FROM {src} t",
        list = p.select_list,
        src = p.source
    );
    let stats = stream_counts(p, "", &rows_sql, Vec::new(), &mut |g, _| {
        write_counts(p, &g);
        tiles_of[g.tile.z as usize].push((g.tile.x, g.tile.y));
        Ok(())
    });
    let counts_s = started.elapsed().as_secs_f64();
    let mut tiles = 0;
    for (z, targets) in tiles_of.iter_mut().enumerate() {
        tiles += targets.len();
        normalise(p, z as u32, targets);
    }
    let drawn = stats.draw;
    let report = json!({
        "rows": stats.read.rows,
        "drawn": stats.read.drawn,
        "left_out": stats.read.left_out,
        "points": stats.points,
        "tiles": tiles,
        "base_tiles": tiles_of[p.base_zoom as usize].len(),
        "threads": threads(),
        "memory_budget_bytes": memory_budget(),
        "line_pixels": drawn.pixels,
        "line_pixels_per_core_second": drawn.pixels as f64 / drawn.draw_seconds.max(1e-9),
        "seconds": {
            "draw_cpu": drawn.draw_seconds,
            "counts": counts_s,
            "levels": started.elapsed().as_secs_f64() - counts_s,
            "total": started.elapsed().as_secs_f64(),
        },
    });
    record_build(p, &report);
    report
}

/// Apply the logged changes: redraw them as deltas into the base tiles they touch and their
/// ancestors, then renormalise every tile whose levels read a changed tile's CDF.
fn refresh(p: &Pyramid) -> Value {
    let started = Instant::now();
    let (built, truncated) = security::as_catalog_owner(|| {
        Spi::get_two_with_args::<bool, bool>(
            "SELECT built_at IS NOT NULL, EXISTS (SELECT 1 FROM vasttile.heat_pyramid_log l \
                                                  WHERE l.pyramid = $1 AND l.sign = 0) \
             FROM vasttile.heat_pyramids WHERE name = $1",
            &[p.name.as_str().into()],
        )
    })
    .or_spi_error("reading the pyramid");
    if truncated == Some(true) || built != Some(true) {
        let mut report = build_all(p);
        report["refresh"] = json!("full rebuild");
        return report;
    }
    let mut changed: Vec<HashSet<(u32, u32)>> = vec![HashSet::new(); p.base_zoom as usize + 1];
    let mut base_tiles = HashSet::new();
    // The log is taken (deleted and read in one statement, so rows logged meanwhile stay for
    // the next refresh) and drawn as deltas: adds, then removes.
    let stats = security::as_catalog_owner(|| {
        stream_counts(
            p,
            "WITH gone AS (DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $3 \
                           RETURNING id, path, times, kind, is_virtual, is_private, weight, sign)",
            "SELECT * FROM gone",
            vec![p.name.as_str().into()],
            &mut |delta, sign| {
                let t = delta.tile;
                let mut g = read_counts(p, t).unwrap_or(HeatGrid::new(t, p.size)?);
                g.add_signed(&delta, sign)?;
                if g.is_empty() {
                    security::as_catalog_owner(|| Spi::run_with_args(
                        "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1 AND z = $2 AND x = $3 AND y = $4",
                        &tile_args(&p.name, t),
                    ))
                    .or_spi_error("removing an empty tile");
                } else {
                    write_counts(p, &g);
                }
                if t.z == p.base_zoom {
                    base_tiles.insert((t.x, t.y));
                }
                changed[t.z as usize].insert((t.x, t.y));
                Ok(())
            },
        )
    });
    if stats.rebuild {
        // A TRUNCATE logged while this refresh started.
        let mut report = build_all(p);
        report["refresh"] = json!("full rebuild");
        return report;
    }
    // A tile's levels read the CDFs of itself and its eight neighbours, each mixing the
    // summaries within the radius: changes reach tiles up to radius + 1 away.
    let reach = p.norm.radius as i64 + 1;
    let mut renormalised = 0;
    for (z, tiles) in changed.iter().enumerate() {
        if tiles.is_empty() {
            continue;
        }
        let n = 1i64 << z;
        let mut near = HashSet::new();
        for &(x, y) in tiles {
            for dy in -reach..=reach {
                for dx in -reach..=reach {
                    near.insert(((x as i64 + dx).rem_euclid(n) as u32, y as i64 + dy));
                }
            }
        }
        let mut targets: Vec<(u32, u32)> = tiles_at(p, z as u32)
            .into_iter()
            .filter(|&(x, y)| near.contains(&(x, y as i64)))
            .collect();
        renormalised += targets.len();
        normalise(p, z as u32, &mut targets);
    }
    let report = json!({
        "refresh": "incremental",
        "rows": stats.read.rows,
        "drawn": stats.read.drawn,
        "left_out": stats.read.left_out,
        "base_tiles": base_tiles.len(),
        "tiles_changed": changed.iter().map(|c| c.len()).sum::<usize>(),
        "tiles_renormalised": renormalised,
        "seconds": {"total": started.elapsed().as_secs_f64()},
    });
    record_build(p, &report);
    report
}

/// Register `tbl` as heat pyramid `name` and build it. Options (all optional):
/// `geometry` ("points", "paths" or "activities"), `column` (vcs_key or path), `weight_column`,
/// for activities `id_column`, `times_column`, `kind_column`, `virtual_column`,
/// `private_column` and `filters`; `base_zoom` (14), `tile_size` (256), `radius` (5 tiles) and
/// `low_heat` (4). Paths get a GiST index on their box for drawing beyond the base zoom.
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn create_heat_pyramid(
    name: &str,
    tbl: Relation,
    options: default!(Jsonb, "'{}'"),
    build: default!(bool, true),
) -> pgrx::JsonB {
    security::check_name(name);
    security::lock_name("heat pyramid", name);
    let oid = tbl.oid();
    security::require_table_owner(oid, "create a heat pyramid over it");
    security::require_lasting_table(oid);
    if let Some((existing, old_source)) = owner_of(name) {
        security::require_role(
            existing,
            old_source,
            &format!("heat pyramid \"{name}\""),
            "replace",
        );
    }
    let source = super::quoted_relation_name(&tbl);
    let table_name = tbl.name().to_string();
    // Let go of the relation before DDL on it.
    drop(tbl);
    let mut p = Pyramid::from_options(name, &source, &options.0).or_raise();
    check_columns(oid, &p.options, &source);
    let old_source = security::as_catalog_owner(|| {
        Spi::get_one_with_args::<pgrx::pg_sys::Oid>(
            "SELECT (SELECT source::oid FROM vasttile.heat_pyramids WHERE name = $1)",
            &[name.into()],
        )
    })
    .or_spi_error("create_heat_pyramid");
    // The creator, read before switching to the extension's owner.
    let creator = security::current_user();
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "INSERT INTO vasttile.heat_pyramids (name, source, owner, options, base_zoom, tile_size) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET source = excluded.source, options = excluded.options, \
             base_zoom = excluded.base_zoom, tile_size = excluded.tile_size, built_at = NULL, last_build = NULL",
            &[
                name.into(),
                oid.into(),
                creator.into(),
                pgrx::JsonB(p.options.clone()).into(),
                (p.base_zoom as i32).into(),
                (p.size.px() as i32).into(),
            ],
        )?;
        // A definition changed: its old tiles and log must not be served or drawn.
        for sql in [
            "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1",
            "DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $1",
        ] {
            Spi::run_with_args(sql, &[name.into()])?;
        }
        Ok::<_, spi::SpiError>(())
    })
    .or_spi_error("create_heat_pyramid");
    p = Pyramid::load(name);
    if let Some(old) = old_source {
        security::drop_triggers("vasttile.heat_pyramid_log_rows()", name, old);
    }
    for (event, tables) in [
        ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
        (
            "UPDATE",
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("TRUNCATE", ""),
    ] {
        let trigger = spi::quote_identifier(security::trigger_name("pyramid", name, event));
        Spi::run(&format!(
            "CREATE TRIGGER {trigger} AFTER {event} ON {source} {tables} \
             FOR EACH STATEMENT EXECUTE FUNCTION vasttile.heat_pyramid_log_rows({lit})",
            lit = spi::quote_literal(name)
        ))
        .or_spi_error("create_heat_pyramid");
    }
    if p.geometry != Geometry::Points {
        let index = truncate_identifier(format!("{table_name}_{}_vasttile_box", p.column));
        Spi::run(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON {source} USING gist (vasttile.path_box({}))",
            spi::quote_identifier(index),
            spi::quote_identifier(&p.column),
        ))
        .or_spi_error("create_heat_pyramid");
    }
    if build {
        pgrx::JsonB(build_all(&p))
    } else {
        pgrx::JsonB(json!({"built": false}))
    }
}

/// The longest prefix of `name` within 63 bytes (PostgreSQL's identifier limit), cut at a
/// character boundary, so the name created is the name looked up.
fn truncate_identifier(mut name: String) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// The role that created pyramid `name` and its table, if it exists.
fn owner_of(name: &str) -> Option<(pgrx::pg_sys::Oid, pgrx::pg_sys::Oid)> {
    let row = security::as_catalog_owner(|| {
        Spi::get_two_with_args::<pgrx::pg_sys::Oid, pgrx::pg_sys::Oid>(
            "SELECT (SELECT owner::oid FROM vasttile.heat_pyramids WHERE name = $1), \
                    (SELECT source::oid FROM vasttile.heat_pyramids WHERE name = $1)",
            &[name.into()],
        )
    })
    .or_spi_error("looking up the heat pyramid");
    match row {
        (Some(owner), Some(source)) => Some((owner, source)),
        _ => None,
    }
}

/// Every column the options name exists in `rel` (`42703`) and has a built-in type (`42804`:
/// the log trigger would run a user-defined cast with the extension owner's rights).
fn check_columns(rel: pgrx::pg_sys::Oid, options: &Value, source: &str) {
    let row = security::with_fixed_search_path(|| Spi::get_two_with_args::<String, String>(
        "SELECT (SELECT c FROM unnest(vasttile.heat_pyramid_columns($2)) c \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 \
                                   AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped) LIMIT 1), \
                (SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 \
                 AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid >= 16384 \
                 AND a.attname = ANY (vasttile.heat_pyramid_columns($2)) LIMIT 1)",
        &[rel.into(), pgrx::JsonB(options.clone()).into()],
    ))
    .or_spi_error("checking the pyramid's columns");
    match row {
        (Some(missing), _) => sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{missing}\" of the pyramid's options does not exist in {source}"),
        ),
        (None, Some(typed)) => sql_error(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("column \"{typed}\" of {source} has a user-defined type: pyramids read columns of built-in types"),
        ),
        (None, None) => {}
    }
}

/// The caller may rebuild, refresh or drop pyramid `p`: it has the privileges of its creator
/// and of its table's owner.
fn require_manage(p: &Pyramid, action: &str) {
    security::require_role(
        p.owner,
        p.source_oid,
        &format!("heat pyramid \"{}\"", p.name),
        action,
    );
    security::require_table_owner(
        p.source_oid,
        &format!("{action} heat pyramid \"{}\"", p.name),
    );
}

/// Rebuild a pyramid from its table.
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn heat_pyramid_build(name: &str) -> pgrx::JsonB {
    lock(name);
    let p = Pyramid::load(name);
    require_manage(&p, "rebuild");
    pgrx::JsonB(build_all(&p))
}

/// Apply the changes logged since the last build or refresh (a full build after a TRUNCATE).
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn heat_pyramid_refresh(name: &str) -> pgrx::JsonB {
    lock(name);
    let p = Pyramid::load(name);
    require_manage(&p, "refresh");
    pgrx::JsonB(refresh(&p))
}

/// Drop a pyramid: its tiles, log and triggers (the table and its index stay).
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn drop_heat_pyramid(name: &str) -> bool {
    security::lock_name("heat pyramid", name);
    let Some((owner, source)) = owner_of(name) else {
        return false;
    };
    security::require_role(owner, source, &format!("heat pyramid \"{name}\""), "drop");
    let source = security::as_catalog_owner(|| {
        for sql in [
            "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1",
            "DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $1",
        ] {
            Spi::run_with_args(sql, &[name.into()])?;
        }
        Spi::get_one_with_args::<pgrx::pg_sys::Oid>(
            "WITH gone AS (DELETE FROM vasttile.heat_pyramids WHERE name = $1 RETURNING source::oid AS source) \
             SELECT (SELECT source FROM gone)",
            &[name.into()],
        )
    })
    .or_spi_error("drop_heat_pyramid");
    if let Some(source) = source {
        security::drop_triggers("vasttile.heat_pyramid_log_rows()", name, source);
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Serving tiles.

/// A tile of a pyramid. Up to the base zoom: the stored levels coloured with the style's
/// colormap and alpha (`normalize` other than eq_hist shades the stored counts instead); beyond
/// it: drawn on the fly from the table. Style key `size` 512 on a 256-px pyramid gives retina
/// tiles. NULL when the tile holds no heat.
#[pg_extern(stable, parallel_safe, requires = ["pyramid_tables"])]
fn heat_pyramid_tile(
    name: &str,
    z: i32,
    x: i32,
    y: i32,
    style: default!(StyleJsonb, "'{}'"),
) -> Option<Vec<u8>> {
    let tile = Tile::new(z, x, y).or_raise();
    let (size, style, ()) =
        HeatStyle::read_tile(&style.0, HeatStyle::heat_defaults(), &[], |_| Ok(())).or_raise();
    pyramid_tile(name, tile, &style, size)
}

/// The pyramid over a points table that `heat_tile` can serve from: same key and weight
/// columns, same tile size, built, and reaching zoom `z`.
pub(crate) fn points_pyramid_for(
    table: pgrx::pg_sys::Oid,
    key_column: &str,
    weight_column: Option<&str>,
    size: TileSize,
    z: u32,
) -> Option<String> {
    let sql = "SELECT name FROM vasttile.heat_pyramids WHERE source = $1 \
               AND options->>'geometry' = 'points' AND options->>'column' = $2 \
               AND (options->>'weight_column') IS NOT DISTINCT FROM $3 \
               AND tile_size = $4 AND base_zoom >= $5 AND built_at IS NOT NULL \
               ORDER BY name LIMIT 1";
    // Stored tiles hold every row: only a caller who may read them all is served from them.
    if security::source_access(table) != Access::Full {
        return None;
    }
    security::as_catalog_owner(|| {
        Spi::connect(|client| {
            use pgrx::PgBuiltInOids as T;
            let types = [T::OIDOID, T::TEXTOID, T::TEXTOID, T::INT4OID, T::INT4OID];
            let args: [pgrx::datum::DatumWithOid<'_>; 5] = [
                table.into(),
                key_column.into(),
                weight_column.into(),
                (size.px() as i32).into(),
                (z as i32).into(),
            ];
            super::with_saved_plan(
                client,
                pgrx::pg_sys::Oid::INVALID,
                sql.to_string(),
                &types,
                |plan| match client
                    .select(plan, Some(1), &args)?
                    .first()
                    .get_one::<String>()
                {
                    Err(spi::SpiError::InvalidPosition) => Ok(None),
                    other => other,
                },
            )
        })
    })
    .or_spi_error("looking up heat pyramids")
}

/// One stored tile of a pyramid: the pyramid's base zoom, tile size and table, and the tile's
/// levels (`stored`) or counts, when it has any heat. Read as the extension's owner: the caller
/// checks access to the table before using the bytes.
fn stored_tile(
    name: &str,
    tile: Tile,
    stored: bool,
) -> (u32, u32, pgrx::pg_sys::Oid, Option<Vec<u8>>) {
    let column = if stored {
        "t.levels"
    } else {
        "t.counts::bytea"
    };
    let sql = format!(
        "SELECT p.base_zoom, p.tile_size, p.source::oid, {column} FROM vasttile.heat_pyramids p \
         LEFT JOIN vasttile.heat_pyramid_tiles t ON t.pyramid = p.name AND t.z = $2 AND t.x = $3 AND t.y = $4 \
         WHERE p.name = $1"
    );
    let row = security::as_catalog_owner(|| {
        Spi::connect(|client| {
            use pgrx::PgBuiltInOids as T;
            let types = [T::TEXTOID, T::INT4OID, T::INT4OID, T::INT4OID];
            super::with_saved_plan(client, pgrx::pg_sys::Oid::INVALID, sql, &types, |plan| {
                let rows = client.select(plan, Some(1), &tile_args(name, tile))?;
                let Some(row) = rows.into_iter().next() else {
                    return Ok(None);
                };
                Ok(Some((
                    row.get::<i32>(1)?,
                    row.get::<i32>(2)?,
                    row.get::<pgrx::pg_sys::Oid>(3)?,
                    row.get::<Bytes>(4)?.map(|b| b.0),
                )))
            })
        })
    })
    .or_spi_error("heat_pyramid_tile");
    match row {
        Some((Some(base), Some(side), Some(source), bytes)) => {
            (base as u32, side as u32, source, bytes)
        }
        _ => sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("heat pyramid \"{name}\" does not exist"),
        ),
    }
}

/// Tile `tile` of pyramid `name` in `style` at `size`: stored levels up to the base zoom (or
/// the counts shaded, for normalisations other than eq_hist), drawn on the fly beyond. A 512-px
/// tile of a 256-px pyramid is its four children side by side (the same pixels).
pub(crate) fn pyramid_tile(
    name: &str,
    tile: Tile,
    style: &HeatStyle,
    size: TileSize,
) -> Option<Vec<u8>> {
    let stored = style.normalize == Normalize::EqHist;
    let (base, side, source, bytes) = stored_tile(name, tile, stored);
    let may_serve_stored = || {
        security::require_full_access(source, &format!("heat pyramid \"{name}\""));
    };
    let on_the_fly = || {
        let grid = draw_on_the_fly(&Pyramid::load(name), tile, size);
        shade(&grid, style).or_raise()
    };
    if size.px() == side {
        if tile.z > base {
            return on_the_fly();
        }
        may_serve_stored();
        let bytes = bytes?;
        if !stored {
            return shade(&HeatGrid::from_bytes(&bytes).or_raise(), style).or_raise();
        }
        return encode_stored(&bytes, side, style);
    }
    if size.px() != 2 * side {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("heat pyramid \"{name}\" has {side}-px tiles: size must be {side}"),
        );
    }
    if tile.z >= base {
        return on_the_fly();
    }
    may_serve_stored();
    // Four children at z + 1, stitched row by row into one tile of twice the side.
    let half = side as usize;
    let full = 2 * half;
    let mut levels = vec![0u8; full * full];
    let mut values = vec![0.0f64; full * full];
    let mut rows = 0;
    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let child = Tile {
            z: tile.z + 1,
            x: 2 * tile.x + dx,
            y: 2 * tile.y + dy,
        };
        let Some(b) = stored_tile(name, child, stored).3 else {
            continue;
        };
        let (ox, oy) = (dx as usize * half, dy as usize * half);
        if stored {
            // Stored bytes are not trusted to have the pyramid's size.
            if b.len() != half * half {
                sql_error(
                    PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                    format!(
                        "a stored tile of heat pyramid \"{name}\" has the wrong size: rebuild it"
                    ),
                );
            }
            for (r, row) in b.chunks_exact(half).enumerate() {
                levels[(oy + r) * full + ox..][..half].copy_from_slice(row);
            }
        } else {
            let g = HeatGrid::from_bytes(&b).or_raise();
            if g.values().len() != half * half {
                sql_error(
                    PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                    format!(
                        "a stored tile of heat pyramid \"{name}\" has the wrong size: rebuild it"
                    ),
                );
            }
            rows += g.rows;
            for (r, row) in g.values().chunks_exact(half).enumerate() {
                values[(oy + r) * full + ox..][..half].copy_from_slice(row);
            }
        }
    }
    if stored {
        encode_stored(&levels, full as u32, style)
    } else {
        let grid = HeatGrid::from_values(tile, size, rows, values).or_raise();
        shade(&grid, style).or_raise()
    }
}

/// Stored levels through the style's palette; `None` when nothing shows.
fn encode_stored(levels: &[u8], side: u32, style: &HeatStyle) -> Option<Vec<u8>> {
    let palette = style.palette();
    if levels.iter().all(|&l| palette[l as usize][3] == 0) {
        return None;
    }
    Some(encode_levels(levels, side, &palette, Effort::Fast).or_raise())
}

/// Counts of a tile beyond the base zoom, from the rows that reach it (index scans: the key
/// range of points, the GiST box index of paths).
fn draw_on_the_fly(p: &Pyramid, tile: Tile, size: TileSize) -> HeatGrid {
    check_columns(p.source_oid, &p.options, &p.source);
    let (x0, y0, x1, y1) = tile.vcs_bounds();
    let query = match p.geometry {
        Geometry::Points => {
            let (lo, hi) = tile.key_range();
            format!(
                "SELECT {list} FROM {src} t WHERE t.{c} >= {lo} AND t.{c} < {hi}",
                list = p.select_list,
                src = p.source,
                c = spi::quote_identifier(&p.column)
            )
        }
        _ => format!(
            "SELECT {list} FROM {src} t WHERE vasttile.path_box(t.{c}) && box(point({x0}, {y0}), point({}, {}))",
            x1 - 1,
            y1 - 1,
            list = p.select_list,
            src = p.source,
            c = spi::quote_identifier(&p.column)
        ),
    };
    let paths = read_paths(p, &query);
    let mut grid = HeatGrid::new(tile, size).or_raise();
    paths.draw_into(&mut grid).or_raise();
    grid
}

/// Publish a pyramid as a tile-server layer: `schema.name(z, x, y, query_params json)` calling
/// `heat_pyramid_tile` with `style` and the request's query parameters on top.
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn create_pyramid_layer(
    name: &str,
    pyramid: &str,
    style: default!(StyleJsonb, "'{}'"),
    schema: default!(&str, "'public'"),
) -> String {
    let name = check_name(name, "name");
    let schema = check_name(schema, "schema");
    HeatStyle::read_tile(&style.0, HeatStyle::heat_defaults(), &[], |_| Ok(())).or_raise();
    let p = Pyramid::load(pyramid);
    let function = spi::quote_qualified_identifier(schema, name);
    let body = format!(
        "SELECT vasttile.heat_pyramid_tile({pyr}, z, x, y, {style}::jsonb || coalesce(query_params::jsonb, '{{}}'))",
        pyr = spi::quote_literal(pyramid),
        style = spi::quote_literal(style.0.to_string()),
    );
    let comment = json!({
        "content_type": "image/png",
        "description": format!("vasttile heat pyramid {pyramid} over {}", p.source),
        "vasttile": {"kind": "heat_pyramid", "pyramid": pyramid, "base_zoom": p.base_zoom, "style": style.0},
    });
    super::publish_layer_function(&function, &body, "STABLE PARALLEL SAFE", comment);
    function
}

/// The seam measure of a pyramid's zoom z, one row per measure: the mean absolute level
/// difference of lit neighbouring pixels across tile edges against `near edge` pairs (one step
/// inside the same edges), `inside` pairs (all within tiles), and `equal heat` pairs inside
/// (where only the normalisation can make levels differ).
#[pg_extern(stable, parallel_safe, requires = ["pyramid_tables"])]
fn heat_pyramid_seams(
    name: &str,
    z: i32,
) -> TableIterator<
    'static,
    (
        name!(compared_with, String),
        name!(edge_mean, f64),
        name!(edge_pairs, i64),
        name!(inner_mean, f64),
        name!(inner_pairs, i64),
    ),
> {
    let p = Pyramid::load(name);
    security::require_full_access(p.source_oid, &format!("heat pyramid \"{name}\""));
    let mut tiles = HashMap::new();
    security::as_catalog_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT x, y, levels, counts::bytea FROM vasttile.heat_pyramid_tiles \
             WHERE pyramid = $1 AND z = $2 AND levels IS NOT NULL",
                None,
                &[name.into(), z.into()],
            )?;
            for row in rows {
                pgrx::check_for_interrupts!();
                if let (Some(x), Some(y), Some(levels), Some(counts)) = (
                    row.get::<i32>(1)?,
                    row.get::<i32>(2)?,
                    row.get::<Bytes>(3)?.map(|b| b.0),
                    row.get::<Bytes>(4)?,
                ) {
                    let heat = HeatGrid::from_bytes(&counts.0).or_raise().values();
                    tiles.insert((x as u32, y as u32), SeamTile { levels, heat });
                }
            }
            Ok::<_, spi::SpiError>(())
        })
    })
    .or_spi_error("heat_pyramid_seams");
    let s = seam_stats(&tiles, p.size.px() as usize);
    TableIterator::new(
        [
            ("near edge".to_string(), s.edge, s.near_edge),
            ("inside".to_string(), s.edge, s.inner),
            (
                "equal heat".to_string(),
                s.equal_heat_edge,
                s.equal_heat_inner,
            ),
        ]
        .into_iter()
        .map(|(k, e, i)| (k, e.mean, e.pairs as i64, i.mean, i.pairs as i64)),
    )
}

/// A child's counts summed 2x2 into its parent tile (the rest of the parent empty):
/// `heat_merge(heat_grid_parent(g))` over four children is the parent, as pyramids build it.
#[pg_extern(immutable, strict, parallel_safe)]
fn heat_grid_parent(grid: HeatGridBytes) -> HeatGridBytes {
    let child = HeatGrid::from_bytes(&grid.0).or_raise();
    let t = child.tile;
    if t.z == 0 {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a zoom-0 heat grid has no parent",
        );
    }
    let parent = Tile {
        z: t.z - 1,
        x: t.x >> 1,
        y: t.y >> 1,
    };
    let mut g = HeatGrid::new(parent, child.size).or_raise();
    g.add_child(&child).or_raise();
    HeatGridBytes(g.to_bytes())
}

// ---------------------------------------------------------------------------------------------
// Activities and paths.

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
    let mut options = json!({"geometry": "activities"});
    options["filters"] = filters.0;
    let p = Pyramid::from_options("", "", &options).or_raise();
    p.row_path(Some(id), path, times, kind, is_virtual, is_private)
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
    let z = crate::core::vcs::check_zoom(super::required(z, "z")).or_raise();
    let mut options = json!({"geometry": "activities"});
    let filtered = match filters {
        Some(f) => {
            options["filters"] = f.0;
            Pyramid::from_options("", "", &options).or_raise()
        }
        None => Pyramid::from_options("", "", &json!({"geometry": "paths"})).or_raise(),
    }
    .row_path(
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

/// The VCS bounding box of a path, for a GiST index: `CREATE INDEX ON t USING gist
/// (vasttile.path_box(path))` and `WHERE vasttile.path_box(path) && box(...)`.
#[pg_extern(immutable, strict, parallel_safe)]
fn path_box(path: pgrx::Array<'_, i64>) -> Option<pgrx::pg_sys::BOX> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for key in path.iter().flatten() {
        let (x, y) = vcs_from_key(key).or_raise();
        let (x, y) = (x as u32, y as u32);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    (x0 <= x1).then_some(pgrx::pg_sys::BOX {
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
    let z = crate::core::vcs::check_zoom(z).or_raise();
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

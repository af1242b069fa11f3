//! The pyramid's tables over SPI: rows of the source streamed in bounded memory, tiles, summaries
//! and levels read and written as the extension's owner.

use super::definition::*;
use crate::bindings::security::{self};
use crate::bindings::threads;
use crate::bindings::OrSpiError;
use crate::bindings::{sql_error, Bytes, OrRaise};
use pgrx::prelude::*;
use pgrx::spi;
use rayon::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use vasttile_core::error::CoreResult;
use vasttile_core::geometry::vcs::{vcs_from_key, Tile};
use vasttile_core::parallel;
use vasttile_core::pyramid::build::{tile_runs, PathSet, StreamBuild};
use vasttile_core::pyramid::cdf::Cdf;
use vasttile_core::pyramid::spill::SpillBuild;
use vasttile_core::pyramid::store::{EncodedCounts, TileStore};
use vasttile_core::raster::heat::HeatGrid;

/// Rows read and what became of them.
#[derive(Default)]
pub(super) struct ReadStats {
    pub(super) rows: u64,
    pub(super) drawn: u64,
    pub(super) left_out: u64,
}

/// Run `query` through a cursor and hand `f` its rows in batches of 2,000, checking for
/// interrupts between batches; what a batch's values allocate is freed with it.
pub(super) fn for_each_row(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: &mut dyn FnMut(&spi::SpiHeapTupleData<'_>) -> spi::SpiResult<()>,
) {
    for_each_row_until(query, args, &mut || false, f);
}

/// [`for_each_row`], stopping before the next batch once `stop` says so.
pub(super) fn for_each_row_until(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    stop: &mut dyn FnMut() -> bool,
    f: &mut dyn FnMut(&spi::SpiHeapTupleData<'_>) -> spi::SpiResult<()>,
) {
    Spi::connect_mut(|client| {
        let mut cursor = client.try_open_cursor_mut(query, args)?;
        loop {
            pgrx::check_for_interrupts!();
            if stop() {
                break;
            }
            let table = cursor.fetch(2000)?;
            if table.is_empty() {
                break;
            }
            crate::bindings::with_row_memory(|| -> spi::SpiResult<()> {
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
pub(super) fn read_paths(p: &Pyramid, query: &str) -> PathSet {
    let mut paths = PathSet::default();
    for_each_row(query, &[], &mut |row| {
        let path = crate::bindings::paths::row_path(
            p.filters.as_ref(),
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

pub(super) fn tile_args<'a>(name: &'a str, t: Tile) -> [pgrx::datum::DatumWithOid<'a>; 4] {
    [
        name.into(),
        (t.z as i32).into(),
        (t.x as i32).into(),
        (t.y as i32).into(),
    ]
}

/// A pyramid's rows of `vasttile.heat_pyramid_tiles`, read and written over SPI as the
/// extension's owner: the store of the core's build and refresh logic.
pub(super) struct SpiTiles<'a>(pub(super) &'a Pyramid);

impl TileStore for SpiTiles<'_> {
    fn read_counts(&mut self, t: Tile) -> CoreResult<Option<HeatGrid>> {
        security::as_catalog_owner(|| {
            Spi::get_one_with_args::<Bytes>(
                "SELECT (SELECT counts::bytea FROM vasttile.heat_pyramid_tiles \
                 WHERE pyramid = $1 AND z = $2 AND x = $3 AND y = $4)",
                &tile_args(&self.0.name, t),
            )
        })
        .or_spi_error("reading pyramid counts")
        .map(|b| HeatGrid::from_stored_bytes(&b.0))
        .transpose()
    }

    fn write_counts(&mut self, tiles: &[EncodedCounts]) -> CoreResult<()> {
        for e in tiles {
            // Parameters are made inside the closure, in its memory context (freed per tile).
            security::as_catalog_owner(|| {
                let [a, b, c, d] = tile_args(&self.0.name, e.tile);
                Spi::run_with_args(
                    "INSERT INTO vasttile.heat_pyramid_tiles (pyramid, z, x, y, counts, summary) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (pyramid, z, x, y) DO UPDATE SET counts = excluded.counts, summary = excluded.summary, levels = NULL",
                    &[a, b, c, d, e.counts.as_slice().into(), e.summary.as_slice().into()],
                )
            })
            .or_spi_error("writing pyramid counts");
        }
        Ok(())
    }

    fn remove(&mut self, t: Tile) -> CoreResult<()> {
        security::as_catalog_owner(|| {
            Spi::run_with_args(
                "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1 AND z = $2 AND x = $3 AND y = $4",
                &tile_args(&self.0.name, t),
            )
        })
        .or_spi_error("removing an empty tile");
        Ok(())
    }

    fn summaries_in_rows(
        &mut self,
        z: u32,
        y0: u32,
        y1: u32,
    ) -> CoreResult<HashMap<(u32, u32), Cdf>> {
        let mut out = HashMap::new();
        security::as_catalog_owner(|| {
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT x, y, summary FROM vasttile.heat_pyramid_tiles \
                     WHERE pyramid = $1 AND z = $2 AND y BETWEEN $3 AND $4",
                    None,
                    &[
                        self.0.name.as_str().into(),
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
        Ok(out)
    }

    fn tiles_at(&mut self, z: u32) -> CoreResult<Vec<(u32, u32)>> {
        let mut out = Vec::new();
        security::as_catalog_owner(|| {
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT x, y FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1 AND z = $2",
                    None,
                    &[self.0.name.as_str().into(), (z as i32).into()],
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
        Ok(out)
    }

    fn write_levels(&mut self, levels: &[(Tile, Vec<u8>)]) -> CoreResult<()> {
        for (t, bytes) in levels {
            security::as_catalog_owner(|| {
                let [a, b, c, d] = tile_args(&self.0.name, *t);
                Spi::run_with_args(
                    "UPDATE vasttile.heat_pyramid_tiles SET levels = $5 WHERE pyramid = $1 AND z = $2 AND x = $3 AND y = $4",
                    &[a, b, c, d, bytes.as_slice().into()],
                )
            })
            .or_spi_error("writing pyramid levels");
        }
        Ok(())
    }

    fn check_interrupts(&mut self) {
        pgrx::check_for_interrupts!();
    }
}

pub(super) fn lock(name: &str) {
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

pub(super) fn record_build(p: &Pyramid, report: &Value, tiles_changed: bool) {
    // A new version only when tiles changed: a refresh with nothing to do keeps every cached tile.
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "UPDATE vasttile.heat_pyramids SET built_at = now(), last_build = $2, \
             version = CASE WHEN $3 THEN nextval('vasttile.pyramid_version_seq') ELSE version END \
             WHERE name = $1",
            &[
                p.name.as_str().into(),
                pgrx::JsonB(report.clone()).into(),
                tiles_changed.into(),
            ],
        )
    })
    .or_spi_error("recording the build");
    if tiles_changed {
        crate::bindings::versions::notify();
    }
}

/// The memory budget of a build or refresh: `maintenance_work_mem`, as for `CREATE INDEX`.
pub(super) fn memory_budget() -> usize {
    Spi::get_one::<i64>(
        "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem'))",
    )
    .or_spi_error("reading maintenance_work_mem")
    .unwrap_or(64 << 20)
    .max(1 << 20) as usize
}

/// Run `f` with `work_mem` at `bytes` for this transaction, then put it back (an error aborts
/// the transaction, which puts it back too).
pub(super) fn with_work_mem<R>(bytes: usize, f: impl FnOnce() -> R) -> R {
    with_settings(&[("work_mem", &format!("{}kB", (bytes / 1024).max(64)))], f)
}

/// Run `f` with the settings `(name, value)`, undone however `f` ends (GUC nest levels, as a
/// function's `SET` clause).
pub(super) fn with_settings<R>(settings: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    match settings.split_first() {
        None => f(),
        Some((&(name, value), rest)) => {
            let c =
                |t: &str| std::ffi::CString::new(t).expect("setting names and values have no NUL");
            crate::bindings::security::with_setting(&c(name), &c(value), || with_settings(rest, f))
        }
    }
}

/// What a stream of rows drew.
#[derive(Default)]
pub(super) struct StreamStats {
    pub(super) read: ReadStats,
    pub(super) points: u64,
    pub(super) draw: vasttile_core::pyramid::build::DrawStats,
    /// A TRUNCATE was logged: the pyramid must be rebuilt.
    pub(super) rebuild: bool,
    /// Reading the rows and splitting them into runs (a build reading the table as it lies).
    pub(super) read_seconds: f64,
}

/// Draw the rows of `rows_sql` (columns: id, path, times, kind, is_virtual, is_private, weight,
/// sign; after the optional `with_sql` clause, their parameters from $3 on, `args`) in bounded
/// memory: each row's path, after the
/// pyramid's filters, is split into per-tile runs in SQL (`pyramid_runs`), PostgreSQL sorts the
/// runs by sign (adds first), tile and row, and the tiles are drawn in that order a batch at a
/// time. The budget is shared in quarters: the sort and the row numbering each get one as
/// `work_mem` (spilling to disk beyond it), the batch another. `on_tile` receives every
/// finished tile (base and ancestors) with the sign of its rows.
pub(super) fn stream_counts(
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
            HeatGrid::check_weight(weight).or_raise();
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

/// A PostgreSQL temporary file (`BufFile`, as sorts spill to): in `temp_tablespaces`, counted
/// by `temp_file_limit`, removed when the transaction ends however it ends.
pub(super) struct TempFile {
    file: *mut pgrx::pg_sys::BufFile,
    end: u64,
    /// The file's position is not at its end (a read moved it): the next append seeks first.
    moved: bool,
}

/// Bytes written by `BufFile` per physical segment file (`MAX_PHYSICAL_FILESIZE`, 1 GiB).
const SEGMENT_BYTES: u64 = 1 << 30;
/// `whence` of `BufFileSeek`: from the start of the segment.
const SEEK_SET: i32 = 0;

impl TempFile {
    pub(super) fn new() -> TempFile {
        // SAFETY: called on the backend's thread inside a transaction; the file belongs to the
        // current resource owner, which closes and deletes it at the transaction's end.
        let file = unsafe { pgrx::pg_sys::BufFileCreateTemp(false) };
        TempFile {
            file,
            end: 0,
            moved: false,
        }
    }

    /// Move to byte `at` of what was written (`BufFile` positions are a segment and an offset
    /// in it); false when the file refuses.
    fn seek(&mut self, at: u64) -> bool {
        let (segment, offset) = ((at / SEGMENT_BYTES) as i32, (at % SEGMENT_BYTES) as i64);
        // SAFETY: the file is open (made in `new`, closed only by `close`, which takes it).
        unsafe { pgrx::pg_sys::BufFileSeek(self.file, segment, offset, SEEK_SET) == 0 }
    }

    pub(super) fn close(self) {
        // SAFETY: the file was made by BufFileCreateTemp and is closed once, here.
        unsafe { pgrx::pg_sys::BufFileClose(self.file) };
    }
}

impl vasttile_core::pyramid::spill::SpillFile for TempFile {
    fn append(&mut self, bytes: &[u8]) -> CoreResult<u64> {
        if self.moved {
            self.seek(self.end);
            self.moved = false;
        }
        let at = self.end;
        // SAFETY: the file is open (made in `new`, closed only by `close`, which takes it);
        // BufFileWrite reads `bytes.len()` bytes from the slice and raises an error on failure.
        unsafe {
            pgrx::pg_sys::BufFileWrite(self.file, bytes.as_ptr() as *mut _, bytes.len());
        }
        self.end += bytes.len() as u64;
        Ok(at)
    }

    fn read_at(&mut self, at: u64, len: usize) -> CoreResult<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.moved = true;
        // SAFETY: the file is open, and BufFileRead writes at most `len` bytes into `out`,
        // which holds `len`.
        let read = if self.seek(at) {
            unsafe { pgrx::pg_sys::BufFileRead(self.file, out.as_mut_ptr() as *mut _, len) }
        } else {
            0
        };
        if read != len {
            return Err(vasttile_core::error::CoreError::out_of_range(
                "temporary file",
                "could not be read back",
            ));
        }
        Ok(out)
    }
}

/// Draw every row of `rows_sql` (the pyramid's select list and a sign, as `build_all` reads
/// the table) in memory bounded by `maintenance_work_mem`, reading the table once as it lies:
/// rows are filtered and split into runs a batch at a time on the build's threads (while the
/// next batch is read), runs are held by tile and, past three quarters of the budget (the rest
/// is for the batches in flight, one read, one split, one added, and the grids being drawn),
/// written to a temporary file (`SpillBuild`); the tiles are drawn at
/// the end. `on_tile` receives every finished tile. `None` (before any tile) when the rows
/// spread over so many tiles that the index of what was written would outgrow its share of the
/// budget: then the build sorts the runs through PostgreSQL instead (`stream_counts`).
pub(super) fn spill_counts(
    p: &Pyramid,
    rows_sql: &str,
    on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
) -> Option<(StreamStats, u64)> {
    /// A row's path after the filters, its runs per base tile, and its weight.
    type Drawn = (Vec<(u32, u32)>, Vec<(u64, u32, u32)>, f64);
    /// A row as read: plain data, filtered and split into runs on the build's threads.
    struct Raw {
        id: Option<i64>,
        keys: Option<Vec<i64>>,
        times: Option<Vec<f64>>,
        kind: Option<String>,
        is_virtual: bool,
        is_private: bool,
        weight: f64,
    }
    let started = std::time::Instant::now();
    let mut stats = StreamStats::default();
    let mut file = TempFile::new();
    let mut build = SpillBuild::new(p.base_zoom, p.size, threads(), memory_budget() / 4 * 3);
    let mut row = 0u64;
    let mut pending: Vec<Raw> = Vec::with_capacity(ROWS_AT_ONCE);
    // Each batch of rows is filtered and split on the pool while this thread reads the next
    // one; its runs are added when that one is read.
    let filters = std::sync::Arc::new(p.filters.clone());
    let z = p.base_zoom;
    let start = |rows: Vec<Raw>| -> parallel::Job<Vec<CoreResult<Option<Drawn>>>> {
        let filters = filters.clone();
        parallel::start(threads(), move || {
            rows.into_par_iter()
                .map(|r| {
                    let Some(keys) = r.keys else {
                        return Ok(None);
                    };
                    let path = crate::bindings::paths::path_of(
                        filters.as_ref().as_ref(),
                        r.id,
                        &keys,
                        r.times.as_deref(),
                        r.kind.as_deref(),
                        r.is_virtual,
                        r.is_private,
                    )?;
                    let Some(path) = path.filter(|p| !p.is_empty()) else {
                        return Ok(None);
                    };
                    // As a build in memory checks it (`PathSet::push`), for rows it draws.
                    HeatGrid::check_weight(r.weight)?;
                    let mut runs = Vec::new();
                    tile_runs(&path, z, &mut runs)?;
                    Ok(Some((path, runs, r.weight)))
                })
                .collect()
        })
    };
    let mut add = |job: parallel::Job<Vec<CoreResult<Option<Drawn>>>>,
                   build: &mut SpillBuild,
                   stats: &mut StreamStats| {
        for path in job.wait() {
            let Some((path, runs, weight)) = path.or_raise() else {
                stats.read.left_out += 1;
                continue;
            };
            stats.read.drawn += 1;
            stats.points += path.len() as u64;
            row += 1;
            build
                .push_runs(row, weight, &path, &runs, &mut file, &mut || {
                    pgrx::check_for_interrupts!();
                })
                .or_raise();
        }
    };
    let mut running: Option<parallel::Job<Vec<CoreResult<Option<Drawn>>>>> = None;
    let mut take = |pending: &mut Vec<Raw>, build: &mut SpillBuild, stats: &mut StreamStats| {
        let job = (!pending.is_empty()).then(|| start(std::mem::take(pending)));
        if let Some(done) = std::mem::replace(&mut running, job) {
            add(done, build, stats);
        }
    };
    let wide = std::cell::Cell::new(false);
    for_each_row_until(rows_sql, &[], &mut || wide.get(), &mut |r| {
        stats.read.rows += 1;
        // The arrays are copied as slices (as row_path reads them, NULLs are errors: a NULL
        // time only when there are filters to read times).
        let keys = r.get::<pgrx::Array<i64>>(2)?.map(|a| {
            a.as_slice()
                .map(<[i64]>::to_vec)
                .unwrap_or_else(|_| crate::bindings::raise(crate::bindings::paths::null_points()))
        });
        let times = r
            .get::<pgrx::Array<f64>>(3)?
            .and_then(|a| match a.as_slice() {
                Ok(t) => Some(t.to_vec()),
                Err(_) if p.filters.is_some() => {
                    crate::bindings::raise(crate::bindings::paths::null_times())
                }
                Err(_) => None,
            });
        pending.push(Raw {
            id: r.get::<i64>(1)?,
            keys,
            times,
            kind: r.get::<String>(4)?,
            is_virtual: r.get::<bool>(5)?.unwrap_or(false),
            is_private: r.get::<bool>(6)?.unwrap_or(false),
            weight: r.get::<f64>(7)?.unwrap_or(1.0),
        });
        if pending.len() == ROWS_AT_ONCE {
            take(&mut pending, &mut build, &mut stats);
            wide.set(build.too_wide());
        }
        Ok(())
    });
    // The last batch, then the one still running.
    take(&mut pending, &mut build, &mut stats);
    take(&mut pending, &mut build, &mut stats);
    if build.too_wide() {
        file.close();
        return None;
    }
    let spills = build.spills();
    stats.read_seconds = started.elapsed().as_secs_f64();
    stats.draw = build
        .finish(
            &mut file,
            &mut || {
                pgrx::check_for_interrupts!();
            },
            on_tile,
        )
        .or_raise();
    file.close();
    Some((stats, spills))
}

/// Rows a build filters and splits into runs at once, in parallel: a few MB of paths in each of
/// the batches in flight.
const ROWS_AT_ONCE: usize = 512;

/// The role that created pyramid `name` and its table, if it exists.
pub(super) fn owner_of(name: &str) -> Option<(pgrx::pg_sys::Oid, pgrx::pg_sys::Oid)> {
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
pub(super) fn check_columns(rel: pgrx::pg_sys::Oid, options: &Value, source: &str) {
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

//! Zoom pyramids of heat (the Strava post): count tiles drawn at a base zoom, summed 2x2 into
//! every lower zoom, then normalised per tile by the CDF of its neighbourhood and interpolated
//! bilinearly between the four nearest tiles' CDFs, so tiles join without seams.
//!
//! Everything here is plain data: the SQL layer reads the rows, hands them over as a `PathSet`,
//! and stores what comes back. Base tiles are drawn in parallel in chunks, in Morton order, so
//! the caller can check for cancellation between chunks and parents complete one after another
//! (only one open grid per zoom is ever held).

use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::{
    morton_deinterleave, morton_interleave, tile_at_zoom, Tile, TileSize, VCS_BITS,
};
use crate::parallel;
use crate::pyramid::cdf::Cdf;
use crate::pyramid::levels::{levels_from_table, StoredLevels, MAX_TABLE_VALUES};
use crate::raster::heat::HeatGrid;
use crate::raster::lines::{add_path, draw_segments, HALF_WORLD};
use crate::shading::shade::level_of;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Paths (a single point is a path of one) with a weight each, stored flat: 8 bytes a point.
#[derive(Clone, Debug, Default)]
pub struct PathSet {
    points: Vec<(u32, u32)>,
    ends: Vec<usize>,
    weights: Vec<f64>,
}

impl PathSet {
    /// Add a path of VCS points with its weight (finite and >= 0, else an error); an empty path is
    /// skipped.
    pub fn push(&mut self, path: &[(u32, u32)], weight: f64) -> CoreResult<()> {
        HeatGrid::check_weight(weight)?;
        if !path.is_empty() {
            self.points.extend_from_slice(path);
            self.ends.push(self.points.len());
            self.weights.push(weight);
        }
        Ok(())
    }

    /// Paths held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No paths held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Points over all paths (8 bytes each held).
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// Draw every path into one grid (tiles beyond a pyramid's base zoom, drawn on request).
    pub fn draw_into(&self, grid: &mut HeatGrid) -> CoreResult<()> {
        for i in 0..self.len() {
            add_path(grid, self.path(i), self.weights[i])?;
        }
        Ok(())
    }

    /// The weight of path `i`.
    pub fn weight(&self, i: usize) -> f64 {
        self.weights[i]
    }

    /// The points of path `i`.
    pub fn path(&self, i: usize) -> &[(u32, u32)] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.points[start..self.ends[i]]
    }
}

/// The runs of a path's segments per tile of zoom `z` whose box the segments touch: (tile
/// Morton code, first point, last point) with the run's points `path[first..=last]`, in order
/// of tile. Drawing a tile then visits only its own segments (the Strava post's split of paths
/// at tile boundaries).
///
/// A path whose segments' boxes cover more than [`MAX_TILE_HITS`] tiles is refused before any
/// of them is listed (a segment across the world at zoom 23 covers 2^46).
pub fn tile_runs(path: &[(u32, u32)], z: u32, out: &mut Vec<(u64, u32, u32)>) -> CoreResult<()> {
    let t = |v: u32| tile_at_zoom(v, z);
    // A segment goes the short way round (`raster::lines`): its x range, in tiles, may pass the
    // map's edge and continue from the other one.
    let tile_w = 1i64 << (VCS_BITS - z);
    let x_tiles = |a: (u32, u32), b: (u32, u32)| -> (i64, i64) {
        let (xa, mut xb) = (a.0 as i64, b.0 as i64);
        if xb - xa > HALF_WORLD {
            xb -= 1 << VCS_BITS;
        } else if xa - xb > HALF_WORLD {
            xb += 1 << VCS_BITS;
        }
        (xa.min(xb).div_euclid(tile_w), xa.max(xb).div_euclid(tile_w))
    };
    let box_tiles = |a: (u32, u32), b: (u32, u32)| -> u64 {
        let (x0, x1) = x_tiles(a, b);
        let w = (x1 - x0) as u64 + 1;
        let h = (t(a.1.max(b.1)) - t(a.1.min(b.1))) as u64 + 1;
        w * h
    };
    let mut total: u64 = 0;
    for w in path.windows(2) {
        total = total.saturating_add(box_tiles(w[0], w[1]));
        if total > MAX_TILE_HITS {
            return Err(CoreError::TooLarge {
                detail: format!(
                    "a path's segments cover more than {MAX_TILE_HITS} tiles at zoom {z} (segments span too far for this zoom)"
                ),
            });
        }
    }
    let mut hits: Vec<(u64, u32)> = Vec::new();
    let tiles_across = 1i64 << z;
    let mut add_box = |a: (u32, u32), b: (u32, u32), s: u32| {
        let (x0, x1) = x_tiles(a, b);
        for ty in t(a.1.min(b.1))..=t(a.1.max(b.1)) {
            for tx in x0..=x1 {
                hits.push((morton_interleave(tx.rem_euclid(tiles_across) as u32, ty), s));
            }
        }
    };
    match path {
        [] => return Ok(()),
        [p] => add_box(*p, *p, 0),
        _ => {
            for (s, w) in path.windows(2).enumerate() {
                add_box(w[0], w[1], s as u32);
            }
        }
    }
    hits.sort_unstable();
    let single = path.len() == 1;
    for run in hits.chunk_by(|a, b| a.0 == b.0 && b.1 == a.1 + 1) {
        let (code, first) = run[0];
        let last = run[run.len() - 1].1 + if single { 0 } else { 1 };
        out.push((code, first, last));
    }
    Ok(())
}

/// The most tiles the boxes of one path's segments may cover at a zoom (about 1 M: 16 MB of
/// runs at most).
pub const MAX_TILE_HITS: u64 = 1 << 20;

/// The tiles of zoom `z` a path's segments may draw into (Morton codes, ascending).
pub fn tiles_of_path(path: &[(u32, u32)], z: u32) -> CoreResult<Vec<u64>> {
    let mut runs = Vec::new();
    tile_runs(path, z, &mut runs)?;
    let mut out: Vec<u64> = runs.into_iter().map(|r| r.0).collect();
    out.dedup();
    Ok(out)
}

/// Folds tiles arriving in Morton order at the base zoom into their ancestors, emitting every
/// tile (base and ancestors) once it is complete.
pub struct Rollup {
    size: TileSize,
    /// The open (incomplete) tile of each zoom below the base.
    open: Vec<Option<HeatGrid>>,
    last: Option<u64>,
}

impl Rollup {
    /// A rollup for base tiles of zoom `base_zoom`, summed into zooms `0 .. base_zoom`.
    pub fn new(base_zoom: u32, size: TileSize) -> Rollup {
        Rollup {
            size,
            open: (0..base_zoom).map(|_| None).collect(),
            last: None,
        }
    }

    /// Add a base tile (strictly after the previous one in Morton order).
    pub fn push(&mut self, grid: HeatGrid, out: &mut Vec<HeatGrid>) -> CoreResult<()> {
        let code = morton_interleave(grid.tile.x, grid.tile.y);
        if grid.tile.z as usize != self.open.len() || self.last.is_some_and(|l| l >= code) {
            return Err(CoreError::out_of_range(
                "base tile",
                "must be at the base zoom and in ascending Morton order",
            ));
        }
        self.last = Some(code);
        self.add(grid, out)
    }

    fn add(&mut self, grid: HeatGrid, out: &mut Vec<HeatGrid>) -> CoreResult<()> {
        let t = grid.tile;
        if t.z > 0 {
            let parent = Tile {
                z: t.z - 1,
                x: t.x >> 1,
                y: t.y >> 1,
            };
            let slot = t.z as usize - 1;
            if self.open[slot].as_ref().is_some_and(|p| p.tile != parent) {
                let done = self.open[slot].take().expect("checked above");
                self.add(done, out)?;
            }
            if self.open[slot].is_none() {
                self.open[slot] = Some(HeatGrid::new(parent, self.size)?);
            }
            self.open[slot]
                .as_mut()
                .expect("set above")
                .add_child(&grid)?;
        }
        out.push(grid);
        Ok(())
    }

    /// Push a drawn base tile unless it is empty, handing `on_tile` every tile that finishes.
    pub(crate) fn push_to(
        &mut self,
        grid: HeatGrid,
        on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
    ) -> CoreResult<()> {
        if grid.is_empty() {
            return Ok(());
        }
        let mut done = Vec::new();
        self.push(grid, &mut done)?;
        done.into_iter().try_for_each(on_tile)
    }

    /// [`Rollup::finish`], handing the tiles to `on_tile`.
    pub(crate) fn finish_to(
        self,
        on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
    ) -> CoreResult<()> {
        let mut done = Vec::new();
        self.finish(&mut done)?;
        done.into_iter().try_for_each(on_tile)
    }

    /// Emit the tiles still open, deepest first.
    pub fn finish(mut self, out: &mut Vec<HeatGrid>) -> CoreResult<()> {
        for slot in (0..self.open.len()).rev() {
            if let Some(g) = self.open[slot].take() {
                self.add(g, out)?;
            }
        }
        Ok(())
    }
}

/// What drawing base tiles cost: line pixels drawn, and the time spent drawing summed over
/// threads (CPU seconds), so pixels / draw_seconds is the throughput per core.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DrawStats {
    /// Base tiles drawn, including any that came out empty.
    pub base_tiles: u64,
    /// Line pixels drawn over all base tiles (a pixel drawn twice counts twice).
    pub pixels: u64,
    /// Drawing time summed over threads, in CPU seconds.
    pub draw_seconds: f64,
}

impl DrawStats {
    /// Count one base tile drawn.
    pub(crate) fn count(&mut self, pixels: u64, seconds: f64) {
        self.base_tiles += 1;
        self.pixels += pixels;
        self.draw_seconds += seconds;
    }
}

/// Draw every base tile the paths touch (in parallel, `threads` at a time, in Morton order) and
/// sum them into all lower zooms. `on_progress` runs on the calling thread between chunks (to
/// check for cancellation); `on_tile` receives each finished tile, ancestors after their
/// children. `only` restricts the base tiles drawn (Morton codes), for refreshes.
pub fn build_counts(
    paths: &PathSet,
    base_zoom: u32,
    size: TileSize,
    only: Option<&HashSet<u64>>,
    threads: usize,
    on_progress: &mut dyn FnMut(),
    on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
) -> CoreResult<DrawStats> {
    let mut stats = DrawStats::default();
    // (tile, path, first point, last point) of every run of segments, grouped by tile.
    let mut runs: Vec<(u64, u32, u32, u32)> = Vec::new();
    let mut path_runs = Vec::new();
    for i in 0..paths.len() {
        if i % 4096 == 4095 {
            on_progress();
        }
        path_runs.clear();
        tile_runs(paths.path(i), base_zoom, &mut path_runs)?;
        for &(code, first, last) in &path_runs {
            if only.is_none_or(|o| o.contains(&code)) {
                runs.push((code, i as u32, first, last));
            }
        }
    }
    runs.sort_unstable();
    let mut groups: Vec<&[(u64, u32, u32, u32)]> = runs.chunk_by(|a, b| a.0 == b.0).collect();
    let mut rollup = Rollup::new(base_zoom, size);
    let chunk = (threads.max(1) * 2).max(2);
    for batch in groups.chunks_mut(chunk) {
        on_progress();
        let draw = |group: &&[(u64, u32, u32, u32)]| -> CoreResult<(HeatGrid, u64, f64)> {
            let started = Instant::now();
            let (x, y) = morton_deinterleave(group[0].0);
            let mut grid = HeatGrid::new(Tile::new(base_zoom as i32, x as i32, y as i32)?, size)?;
            let mut pixels = 0;
            // Runs of one path are adjacent: count the path once per tile it drew into.
            for path_group in group.chunk_by(|a, b| a.1 == b.1) {
                let i = path_group[0].1 as usize;
                let (points, weight) = (paths.path(i), paths.weights[i]);
                let mut drawn = 0;
                for &(_, _, first, last) in path_group {
                    drawn +=
                        draw_segments(&mut grid, &points[first as usize..=last as usize], weight);
                }
                if drawn > 0 {
                    grid.rows += 1;
                }
                pixels += drawn;
            }
            grid.check_sums()?;
            Ok((grid, pixels, started.elapsed().as_secs_f64()))
        };
        let grids: Vec<CoreResult<(HeatGrid, u64, f64)>> =
            parallel::run(threads, || batch.par_iter().map(draw).collect());
        for grid in grids {
            let (grid, pixels, seconds) = grid?;
            stats.count(pixels, seconds);
            rollup.push_to(grid, on_tile)?;
        }
    }
    rollup.finish_to(on_tile)?;
    Ok(stats)
}

/// Runs of one base tile in the order they arrived (rows ascending), stored flat, and the grid
/// drawn so far when the tile outgrew the batch budget.
pub(crate) struct TileRuns {
    pub(crate) code: u64,
    /// (row, weight, start, end) of each run: its points are `points[start..end]`.
    runs: Vec<(u64, f64, u32, u32)>,
    points: Vec<(u32, u32)>,
    pub(crate) grid: Option<HeatGrid>,
    /// The row counted last in `grid.rows` (a row counts once per tile it draws into).
    counted: Option<u64>,
    pub(crate) pixels: u64,
    pub(crate) seconds: f64,
}

impl TileRuns {
    pub(crate) fn new(code: u64) -> TileRuns {
        TileRuns {
            code,
            runs: Vec::new(),
            points: Vec::new(),
            grid: None,
            counted: None,
            pixels: 0,
            seconds: 0.0,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.runs.len() * 24 + self.points.len() * 8
    }

    /// The runs held, as bytes (little-endian): run count, then per run row, weight, start and
    /// end, then the points. The runs are let go of.
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bytes());
        out.extend_from_slice(&(self.runs.len() as u64).to_le_bytes());
        for &(row, weight, start, end) in &self.runs {
            out.extend_from_slice(&row.to_le_bytes());
            out.extend_from_slice(&weight.to_le_bytes());
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&end.to_le_bytes());
        }
        for &(x, y) in &self.points {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        }
        self.runs = Vec::new();
        self.points = Vec::new();
        out
    }

    /// Hold the runs of [`TileRuns::take_bytes`] (replacing those held); the grid drawn so far
    /// stays. Bytes that are not such runs are an error.
    pub(crate) fn load_bytes(&mut self, bytes: &[u8]) -> CoreResult<()> {
        let bad = || CoreError::out_of_range("spilled runs", "are not valid");
        let word = |at: usize| -> CoreResult<[u8; 8]> {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)
        };
        let n = u64::from_le_bytes(word(0)?) as usize;
        let points_at = n
            .checked_mul(24)
            .and_then(|r| r.checked_add(8))
            .ok_or_else(bad)?;
        if points_at > bytes.len() || !(bytes.len() - points_at).is_multiple_of(8) {
            return Err(bad());
        }
        let npoints = (bytes.len() - points_at) / 8;
        self.runs = (0..n)
            .map(|i| {
                let at = 8 + i * 24;
                let row = u64::from_le_bytes(word(at)?);
                let weight = f64::from_le_bytes(word(at + 8)?);
                let ends = word(at + 16)?;
                let start = u32::from_le_bytes(ends[..4].try_into().expect("4 bytes"));
                let end = u32::from_le_bytes(ends[4..].try_into().expect("4 bytes"));
                if start > end || end as usize > npoints {
                    return Err(bad());
                }
                Ok((row, weight, start, end))
            })
            .collect::<CoreResult<_>>()?;
        self.points = bytes[points_at..]
            .chunks_exact(8)
            .map(|c| {
                (
                    u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                    u32::from_le_bytes(c[4..].try_into().expect("4 bytes")),
                )
            })
            .collect();
        Ok(())
    }

    /// Add a run of `points` of row `row`; returns the bytes this allocated (vectors grow by
    /// doubling: what is held is what their capacity takes).
    pub(crate) fn push(&mut self, row: u64, weight: f64, points: &[(u32, u32)]) -> usize {
        let before = self.runs.capacity() * 24 + self.points.capacity() * 8;
        let start = self.points.len() as u32;
        self.points.extend_from_slice(points);
        self.runs
            .push((row, weight, start, self.points.len() as u32));
        (self.runs.capacity() * 24 + self.points.capacity() * 8).saturating_sub(before)
    }

    /// What the held runs take, by capacity.
    pub(crate) fn held_bytes(&self) -> usize {
        self.runs.capacity() * 24 + self.points.capacity() * 8
    }

    /// Draw the runs held into the tile's grid and let go of them.
    pub(crate) fn draw(&mut self, base_zoom: u32, size: TileSize) -> CoreResult<()> {
        let started = Instant::now();
        let mut grid = match self.grid.take() {
            Some(g) => g,
            None => {
                let (x, y) = morton_deinterleave(self.code);
                HeatGrid::new(Tile::new(base_zoom as i32, x as i32, y as i32)?, size)?
            }
        };
        for group in self.runs.chunk_by(|a, b| a.0 == b.0) {
            let mut drawn = 0;
            for &(_, weight, start, end) in group {
                drawn += draw_segments(
                    &mut grid,
                    &self.points[start as usize..end as usize],
                    weight,
                );
            }
            if drawn > 0 && self.counted != Some(group[0].0) {
                grid.rows += 1;
                self.counted = Some(group[0].0);
            }
            self.pixels += drawn;
        }
        grid.check_sums()?;
        self.runs = Vec::new();
        self.points = Vec::new();
        self.grid = Some(grid);
        self.seconds += started.elapsed().as_secs_f64();
        Ok(())
    }
}

/// A build fed with runs of base tiles in ascending tile order, as an SQL `ORDER BY tile, row`
/// delivers them (PostgreSQL sorts, spilling to disk as `CREATE INDEX` does): it holds one batch
/// of tiles within `batch_bytes`, draws the batch in parallel and rolls it up into the lower
/// zooms. Memory: the batch, one open grid per zoom, and whatever `on_tile` keeps; not the table.
pub struct StreamBuild {
    base_zoom: u32,
    size: TileSize,
    threads: usize,
    batch_bytes: usize,
    batch: Vec<TileRuns>,
    bytes: usize,
    rollup: Rollup,
    stats: DrawStats,
}

impl StreamBuild {
    /// A build of base zoom `base_zoom` drawing on up to `threads` threads, holding batches of
    /// about `batch_bytes` bytes of runs (at least 64 KiB).
    pub fn new(base_zoom: u32, size: TileSize, threads: usize, batch_bytes: usize) -> StreamBuild {
        StreamBuild {
            base_zoom,
            size,
            threads: threads.max(1),
            batch_bytes: batch_bytes.max(1 << 16),
            batch: Vec::new(),
            bytes: 0,
            rollup: Rollup::new(base_zoom, size),
            stats: DrawStats::default(),
        }
    }

    /// Add a run of `points` of row `row` to base tile `code` (Morton code): tiles ascending,
    /// rows ascending within a tile. `on_tile` receives each finished tile, as in
    /// [`build_counts`].
    pub fn push(
        &mut self,
        code: u64,
        row: u64,
        weight: f64,
        points: &[(u32, u32)],
        on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
    ) -> CoreResult<()> {
        match self.batch.last() {
            Some(t) if t.code == code => {}
            Some(t) if t.code > code => {
                return Err(CoreError::out_of_range(
                    "base tile",
                    "runs must arrive in ascending tile order",
                ))
            }
            _ => {
                if self.batch.len() >= 2 * self.threads || self.bytes >= self.batch_bytes {
                    self.flush(on_tile)?;
                }
                self.batch.push(TileRuns::new(code));
            }
        }
        let t = self.batch.last_mut().expect("pushed above");
        self.bytes += t.push(row, weight, points);
        // One tile alone beyond the budget is drawn as it comes.
        if t.bytes() >= self.batch_bytes {
            let held = t.bytes();
            t.draw(self.base_zoom, self.size)?;
            self.bytes -= held.min(self.bytes);
        }
        Ok(())
    }

    /// Draw the batch in parallel and roll it up.
    fn flush(&mut self, on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>) -> CoreResult<()> {
        let (base_zoom, size) = (self.base_zoom, self.size);
        let mut batch = std::mem::take(&mut self.batch);
        let drawn: Vec<CoreResult<()>> = parallel::run(self.threads, || {
            batch
                .par_iter_mut()
                .map(|t| t.draw(base_zoom, size))
                .collect()
        });
        drawn.into_iter().collect::<CoreResult<Vec<()>>>()?;
        self.bytes = 0;
        for t in batch {
            self.stats.count(t.pixels, t.seconds);
            if let Some(grid) = t.grid {
                self.rollup.push_to(grid, on_tile)?;
            }
        }
        Ok(())
    }

    /// Draw what is left and emit every tile still open.
    pub fn finish(
        mut self,
        on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
    ) -> CoreResult<DrawStats> {
        self.flush(on_tile)?;
        self.rollup.finish_to(on_tile)?;
        Ok(self.stats)
    }
}

/// One run of a path in one tile: the tile's Morton code and the run's points.
pub type Run<'a> = (u64, &'a [(u32, u32)]);

/// The per-tile runs of a path as `StreamBuild` takes them, in order of tile.
pub fn path_runs(path: &[(u32, u32)], z: u32) -> CoreResult<Vec<Run<'_>>> {
    let mut runs = Vec::new();
    tile_runs(path, z, &mut runs)?;
    Ok(runs
        .into_iter()
        .map(|(code, first, last)| (code, &path[first as usize..=last as usize]))
        .collect())
}

/// Distinct heat values of a tile up to which `Normalisation::levels` ranks each value once per
/// neighbouring CDF (9 f64 each: at most 1.2 MB).
const MEMO_VALUES: usize = 1 << 14;

/// How counts become levels: the neighbourhood CDF's radius (in tiles), its breakpoints, the
/// low-heat guard (see `Cdf::rank`), and the breakpoints kept per tile summary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    /// Neighbourhood radius in tiles: a tile's CDF mixes the summaries of up to
    /// (2 radius + 1)^2 tiles around it (x wraps, y stops at the world's edges).
    pub radius: u32,
    /// Breakpoints kept in each tile's own summary CDF.
    pub summary_steps: usize,
    /// Breakpoints kept in each neighbourhood CDF.
    pub cdf_steps: usize,
    /// Heat (in counts) below which a pixel ranks lower than the plain CDF would put it; see
    /// [`Cdf::rank`].
    pub low_heat: f64,
}

impl Default for Normalisation {
    fn default() -> Self {
        Normalisation {
            radius: 5,
            summary_steps: 256,
            cdf_steps: 1024,
            low_heat: 4.0,
        }
    }
}

impl Normalisation {
    /// A tile's own CDF, sampled: what its neighbours' CDFs are made of.
    pub fn summary(&self, grid: &HeatGrid) -> Cdf {
        Cdf::of_counted(grid.lit_counted()).sampled(self.summary_steps)
    }

    /// The tiles within `radius` of (x, y) at zoom z: x wraps around the world, y stops at
    /// its edges, each tile once.
    fn window(&self, z: u32, x: u32, y: u32) -> Vec<(u32, u32)> {
        let n = 1i64 << z;
        let r = self.radius as i64;
        let mut out = Vec::new();
        for dy in -r..=r {
            let ny = y as i64 + dy;
            if !(0..n).contains(&ny) {
                continue;
            }
            for dx in -r.min((n - 1) / 2)..=r.min(n / 2) {
                out.push(((x as i64 + dx).rem_euclid(n) as u32, ny as u32));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The neighbourhood CDF of each tile in `tiles` (zoom z), mixing the summaries within the
    /// radius (tiles without a summary hold no heat).
    pub fn neighbourhood_cdfs(
        &self,
        z: u32,
        tiles: &[(u32, u32)],
        summaries: &HashMap<(u32, u32), Cdf>,
        threads: usize,
    ) -> HashMap<(u32, u32), Cdf> {
        let one = |&(x, y): &(u32, u32)| {
            let parts: Vec<&Cdf> = self
                .window(z, x, y)
                .iter()
                .filter_map(|t| summaries.get(t))
                .collect();
            ((x, y), Cdf::mixture(&parts, self.cdf_steps))
        };
        parallel::run(threads, || tiles.par_iter().map(one).collect())
    }

    /// The tiles whose neighbourhood CDFs the levels of `lit` tiles read: each and its eight
    /// neighbours (wrapped in x, clipped in y).
    pub fn cdf_tiles(z: u32, lit: &[(u32, u32)]) -> Vec<(u32, u32)> {
        let n = 1i64 << z;
        let mut out: Vec<(u32, u32)> = lit
            .iter()
            .flat_map(|&(x, y)| {
                (-1..=1).flat_map(move |dy| (-1..=1).map(move |dx| (x as i64 + dx, y as i64 + dy)))
            })
            .filter(|&(_, y)| (0..n).contains(&y))
            .map(|(x, y)| (x.rem_euclid(n) as u32, y as u32))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The nine CDFs a pixel of tile `t` may read: its own and its neighbours', row by row
    /// from the north-west; off the world's edge (or without heat) a neighbour is the tile's own.
    fn nine<'a>(&self, t: Tile, cdfs: &'a HashMap<(u32, u32), Cdf>) -> [&'a Cdf; 9] {
        let n = 1i64 << t.z;
        let own = cdfs.get(&(t.x, t.y)).unwrap_or(&EMPTY_CDF);
        std::array::from_fn(|i| {
            let (dx, dy) = (i as i64 % 3 - 1, i as i64 / 3 - 1);
            let ny = t.y as i64 + dy;
            let key = ((t.x as i64 + dx).rem_euclid(n) as u32, ny as u32);
            let found = if (0..n).contains(&ny) {
                cdfs.get(&key)
            } else {
                None
            };
            found.unwrap_or(own)
        })
    }

    /// The rank table of `values` (distinct lit heat as f64 bits, ascending): nine ranks per
    /// value, one per CDF of [`Normalisation::nine`], each CDF walked once in order.
    fn rank_table(&self, values: &[u64], nine: &[&Cdf; 9]) -> Vec<f64> {
        let mut ranks = vec![0.0f64; values.len() * 9];
        for (c, cdf) in nine.iter().enumerate() {
            let mut rank = cdf.ranks_ascending(self.low_heat);
            for (i, &bits) in values.iter().enumerate() {
                ranks[i * 9 + c] = rank(f64::from_bits(bits));
            }
        }
        ranks
    }

    /// The stored form of tile `t`'s levels given its distinct lit values: the rank table
    /// that [`StoredLevels::levels`] turns into the bytes [`Normalisation::levels`] makes.
    pub fn stored_levels(
        &self,
        t: Tile,
        values: Vec<u64>,
        cdfs: &HashMap<(u32, u32), Cdf>,
    ) -> StoredLevels {
        let ranks = self.rank_table(&values, &self.nine(t, cdfs));
        StoredLevels::Ranks { values, ranks }
    }

    /// The stored form of a tile's levels made from its counts, with its bytes: the rank table
    /// or the levels themselves, whichever stores smaller (tiles with many distinct values:
    /// zoomed out).
    pub fn stored_levels_of(
        &self,
        grid: &HeatGrid,
        cdfs: &HashMap<(u32, u32), Cdf>,
    ) -> (StoredLevels, Vec<u8>) {
        let plain = StoredLevels::Plain(self.levels(grid, cdfs));
        let plain_bytes = plain.to_bytes();
        let values = distinct_lit(&grid.values());
        if values.len() > MAX_TABLE_VALUES {
            return (plain, plain_bytes);
        }
        let table = self.stored_levels(grid.tile, values, cdfs);
        let table_bytes = table.to_bytes();
        if table_bytes.len() < plain_bytes.len() {
            (table, table_bytes)
        } else {
            (plain, plain_bytes)
        }
    }

    /// One byte per pixel (row-major; 0 = no heat): each pixel's heat ranked by the CDFs of
    /// the four tiles whose centres are nearest, weighted bilinearly by distance to them.
    pub fn levels(&self, grid: &HeatGrid, cdfs: &HashMap<(u32, u32), Cdf>) -> Vec<u8> {
        let nine = self.nine(grid.tile, cdfs);
        let side = grid.side() as usize;
        let heat = grid.values();
        let values = distinct_lit(&heat);
        // Past MEMO_VALUES distinct values (weighted heat) the table would outgrow the grid:
        // each pixel is ranked by searching its four CDFs instead.
        if values.len() <= MEMO_VALUES {
            let ranks = self.rank_table(&values, &nine);
            return levels_from_table(&heat, side, &values, &ranks)
                .expect("the table holds every value of the grid it was made from");
        }
        bilinear_levels(&heat, side, |_, h, c| nine[c].rank(h, self.low_heat))
    }
}

/// A CDF of no pixels: the neighbour of a tile without heat.
static EMPTY_CDF: Cdf = Cdf::empty();

/// The distinct lit (> 0) values of `heat` as f64 bits, ascending (lit values are positive:
/// their bit patterns sort as the values do).
pub fn distinct_lit(heat: &[f64]) -> Vec<u64> {
    let mut values: Vec<u64> = heat
        .iter()
        .filter(|&&h| h > 0.0)
        .map(|h| h.to_bits())
        .collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// Where a pixel's level comes from: the four CDFs (of [`Normalisation::nine`]) whose tiles'
/// centres are nearest and the bilinear weights, from the pixel centre's offset to the tile
/// centre in tile widths.
pub(crate) struct Bilinear {
    /// Per column (and row): the neighbour side and its weight.
    offsets: Vec<(i64, f64)>,
}

impl Bilinear {
    pub(crate) fn new(side: usize) -> Bilinear {
        Bilinear {
            offsets: (0..side)
                .map(|i| {
                    let u = (i as f64 + 0.5) / side as f64 - 0.5;
                    (if u < 0.0 { -1 } else { 1 }, u.abs())
                })
                .collect(),
        }
    }

    /// The level of pixel (px, py) given `rank(c)`, its rank under CDF `c`.
    #[inline]
    pub(crate) fn level(&self, px: usize, py: usize, rank: impl Fn(usize) -> f64) -> u8 {
        const fn at(dx: usize, dy: usize) -> usize {
            dy * 3 + dx
        }
        const QUADS: [[usize; 2]; 2] = [[at(1, 1), at(2, 1)], [at(1, 2), at(2, 2)]];
        const LEFT_UP: [[usize; 2]; 2] = [[at(1, 1), at(0, 1)], [at(1, 0), at(0, 0)]];
        const RIGHT_UP: [[usize; 2]; 2] = [[at(1, 1), at(2, 1)], [at(1, 0), at(2, 0)]];
        const LEFT_DOWN: [[usize; 2]; 2] = [[at(1, 1), at(0, 1)], [at(1, 2), at(0, 2)]];
        let (sx, wx) = self.offsets[px];
        let (sy, wy) = self.offsets[py];
        let q = match (sx, sy) {
            (1, 1) => &QUADS,
            (-1, -1) => &LEFT_UP,
            (1, -1) => &RIGHT_UP,
            _ => &LEFT_DOWN,
        };
        let t = (1.0 - wx) * (1.0 - wy) * rank(q[0][0])
            + wx * (1.0 - wy) * rank(q[0][1])
            + (1.0 - wx) * wy * rank(q[1][0])
            + wx * wy * rank(q[1][1]);
        level_of(t)
    }
}

/// Levels of `heat` (row-major, `side` wide): each lit pixel's ranks under the CDFs of the
/// four tiles whose centres are nearest, weighted bilinearly by distance to them.
/// `rank(pixel, heat, c)` ranks a pixel under CDF `c` of [`Normalisation::nine`].
pub(crate) fn bilinear_levels(
    heat: &[f64],
    side: usize,
    rank: impl Fn(usize, f64, usize) -> f64,
) -> Vec<u8> {
    let b = Bilinear::new(side);
    let mut out = vec![0u8; heat.len()];
    for (py, row) in heat.chunks_exact(side).enumerate() {
        for (px, &h) in row.iter().enumerate() {
            if h > 0.0 {
                let i = py * side + px;
                out[i] = b.level(px, py, |c| rank(i, h, c));
            }
        }
    }
    out
}

/// The seam measure over a set of tiles of one zoom: mean absolute level difference of
/// neighbouring lit pixels straddling a tile edge, against that of the pairs one step inside the
/// same edges and of all neighbouring lit pixels inside tiles; and the same over pairs of equal
/// heat, where any difference comes from the normalisation alone (the raw counts along an edge
/// can differ from those inside, e.g. where a busy street runs along a tile's last column).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SeamStats {
    /// Pairs straddling an edge between two tiles of the set.
    pub edge: PairMean,
    /// Pairs one step inside either side of the same edges.
    pub near_edge: PairMean,
    /// All neighbouring pairs within one tile.
    pub inner: PairMean,
    /// The `edge` pairs whose two pixels hold equal heat.
    pub equal_heat_edge: PairMean,
    /// The `inner` pairs whose two pixels hold equal heat.
    pub equal_heat_inner: PairMean,
}

/// Mean absolute difference of levels (0 ..= 255) over some pairs of lit pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairMean {
    /// Mean absolute level difference; 0 when there are no pairs.
    pub mean: f64,
    /// Pairs measured.
    pub pairs: u64,
}

/// One tile's levels and heat values, both row-major.
pub struct SeamTile {
    /// One level per pixel, 0 = unlit (as [`Normalisation::levels`] makes them).
    pub levels: Vec<u8>,
    /// One heat value per pixel.
    pub heat: Vec<f64>,
}

/// [`SeamStats`] of tiles of one zoom keyed by (x, y), each `side` x `side` pixels. Only pairs
/// with both pixels lit count; neighbours are found at x + 1 and y + 1 (no wrap around the
/// antimeridian).
pub fn seam_stats(tiles: &HashMap<(u32, u32), SeamTile>, side: usize) -> SeamStats {
    #[derive(Default)]
    struct Acc([(u64, u64); 5]);
    let mut acc = Acc::default();
    // k: 0 edge, 1 inner, 4 near edge; equal-heat edge and inner pairs also count in 2 and 3.
    let mut pair = |a: &SeamTile, i: usize, b: &SeamTile, j: usize, k: usize| {
        let (la, lb) = (a.levels[i], b.levels[j]);
        if la == 0 || lb == 0 {
            return;
        }
        let d = la.abs_diff(lb) as u64;
        acc.0[k].0 += d;
        acc.0[k].1 += 1;
        if k < 2 && a.heat[i] == b.heat[j] {
            acc.0[k + 2].0 += d;
            acc.0[k + 2].1 += 1;
        }
    };
    let last = side - 1;
    for (&(x, y), t) in tiles {
        for r in 0..side {
            for c in 0..last {
                pair(t, r * side + c, t, r * side + c + 1, 1);
                pair(t, c * side + r, t, (c + 1) * side + r, 1);
            }
        }
        if let Some(o) = tiles.get(&(x + 1, y)) {
            for r in 0..side {
                let row = r * side;
                pair(t, row + last, o, row, 0);
                pair(t, row + last - 1, t, row + last, 4);
                pair(o, row, o, row + 1, 4);
            }
        }
        if let Some(o) = tiles.get(&(x, y + 1)) {
            for c in 0..side {
                pair(t, last * side + c, o, c, 0);
                pair(t, (last - 1) * side + c, t, last * side + c, 4);
                pair(o, c, o, side + c, 4);
            }
        }
    }
    let mean = |(s, n): (u64, u64)| PairMean {
        mean: if n == 0 { 0.0 } else { s as f64 / n as f64 },
        pairs: n,
    };
    SeamStats {
        edge: mean(acc.0[0]),
        near_edge: mean(acc.0[4]),
        inner: mean(acc.0[1]),
        equal_heat_edge: mean(acc.0[2]),
        equal_heat_inner: mean(acc.0[3]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shading::shade::{levels, HeatStyle};
    use proptest::prelude::*;

    /// The levels of `Normalisation::levels` computed the plain way: four searches per pixel.
    fn levels_by_search(
        norm: &Normalisation,
        grid: &HeatGrid,
        cdfs: &HashMap<(u32, u32), Cdf>,
    ) -> Vec<u8> {
        let t = grid.tile;
        let n = 1i64 << t.z;
        let side = grid.side() as usize;
        let own = cdfs.get(&(t.x, t.y));
        let empty = Cdf::default();
        let cdf = |dx: i64, dy: i64| -> &Cdf {
            let ny = t.y as i64 + dy;
            let key = ((t.x as i64 + dx).rem_euclid(n) as u32, ny as u32);
            let found = if (0..n).contains(&ny) {
                cdfs.get(&key)
            } else {
                None
            };
            found.or(own).unwrap_or(&empty)
        };
        let values = grid.values();
        let mut out = vec![0u8; values.len()];
        for (i, &h) in values.iter().enumerate() {
            if h <= 0.0 {
                continue;
            }
            let (ux, uy) = [i % side, i / side]
                .map(|c| (c as f64 + 0.5) / side as f64 - 0.5)
                .into();
            let (sx, sy) = (if ux < 0.0 { -1 } else { 1 }, if uy < 0.0 { -1 } else { 1 });
            let (wx, wy) = (f64::abs(ux), f64::abs(uy));
            let r = |dx: i64, dy: i64| cdf(dx, dy).rank(h, norm.low_heat);
            let t = (1.0 - wx) * (1.0 - wy) * r(0, 0)
                + wx * (1.0 - wy) * r(sx, 0)
                + (1.0 - wx) * wy * r(0, sy)
                + wx * wy * r(sx, sy);
            out[i] = level_of(t);
        }
        out
    }

    #[test]
    fn pyramid_levels_equal_four_searches_per_pixel() {
        let mut next = crate::test_numbers(5);
        let norm = Normalisation::default();
        // A tile inside the world, one on its northern edge, zoom 0 (wrapping onto itself), and
        // one with more distinct values than are ranked once each.
        for (z, x, y, size, spread) in [
            (4, 7, 9, TileSize::Px256, 300),
            (3, 0, 0, TileSize::Px512, 300),
            (0, 0, 0, TileSize::Px256, 300),
            (5, 20, 11, TileSize::Px512, 1 << 31),
        ] {
            let n = 1u32 << z;
            let tile = Tile::new(z, x, y).unwrap();
            let mut cdfs = HashMap::new();
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = ((x as i64 + dx).rem_euclid(n as i64) as u32, y as i64 + dy);
                    if !(0..n as i64).contains(&ny) || next().is_multiple_of(5) {
                        continue; // off the world, or a neighbour without heat
                    }
                    let spread = 1 + next() % 400;
                    let c =
                        Cdf::of((0..4000).map(|_| (next() % spread) as f64 * 0.5)).sampled(1024);
                    cdfs.insert((nx, ny as u32), c);
                }
            }
            let px = size.px() as usize;
            let values: Vec<f64> = (0..px * px)
                .map(|_| {
                    if next().is_multiple_of(3) {
                        (next() % spread) as f64 * 0.5
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut distinct: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            // Few distinct values are ranked once each; many are searched pixel by pixel.
            assert_eq!(distinct.len() > MEMO_VALUES, spread > 300);
            let grid = HeatGrid::from_values(tile, size, 1, values).unwrap();
            assert_eq!(
                norm.levels(&grid, &cdfs),
                levels_by_search(&norm, &grid, &cdfs),
                "{z}/{x}/{y}"
            );
        }
    }

    /// VCS point of world pixel (x, y) at zoom z, 256 px.
    fn at(z: u32, x: u32, y: u32) -> (u32, u32) {
        let shift = 31 - 8 - z;
        (x << shift, y << shift)
    }

    fn build(paths: &PathSet, z: u32) -> HashMap<(u32, u32, u32), HeatGrid> {
        let mut tiles = HashMap::new();
        build_counts(paths, z, TileSize::Px256, None, 2, &mut || {}, &mut |g| {
            let t = g.tile;
            assert!(tiles.insert((t.z, t.x, t.y), g).is_none(), "emitted twice");
            Ok(())
        })
        .unwrap();
        tiles
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Every tile below the base is the sum of its children, and each zoom equals the paths
        /// drawn directly at 512 px one zoom up (same world pixels, two by two).
        #[test]
        fn tiles_are_the_sums_of_their_children(
            raw in prop::collection::vec(prop::collection::vec((0u32..2048, 0u32..2048), 1..12), 1..25)
        ) {
            let mut paths = PathSet::default();
            for p in &raw {
                let pts: Vec<(u32, u32)> = p.iter().map(|&(x, y)| at(3, x, y)).collect();
                paths.push(&pts, 1.0).unwrap();
            }
            let tiles = build(&paths, 3);
            for (&(z, x, y), g) in &tiles {
                if z == 3 {
                    // Runs of segments per tile draw what the whole paths draw.
                    let mut whole = HeatGrid::new(g.tile, TileSize::Px256).unwrap();
                    paths.draw_into(&mut whole).unwrap();
                    prop_assert_eq!(whole.values(), g.values());
                    prop_assert_eq!(whole.rows, g.rows);
                    continue;
                }
                let mut sum = HeatGrid::new(g.tile, TileSize::Px256).unwrap();
                for (cx, cy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    if let Some(c) = tiles.get(&(z + 1, 2 * x + cx, 2 * y + cy)) {
                        sum.add_child(c).unwrap();
                    }
                }
                prop_assert_eq!(sum.values(), g.values());
            }
            // Total heat is the same at every zoom.
            let total = |z: u32| -> f64 {
                tiles.iter().filter(|(k, _)| k.0 == z).map(|(_, g)| g.stats().total).sum()
            };
            for z in 0..3 {
                prop_assert_eq!(total(z), total(3));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Runs sorted by (tile, row) and fed to `StreamBuild` (with a tiny batch budget, so
        /// tiles are drawn piecewise too) make exactly the tiles `build_counts` makes.
        #[test]
        fn a_streamed_build_equals_the_in_memory_build(
            raw in prop::collection::vec((prop::collection::vec((0u32..2048, 0u32..2048), 1..12), 1u32..4), 1..25),
            budget in prop::sample::select(vec![1usize, 1 << 16, 1 << 30]),
        ) {
            let mut paths = PathSet::default();
            type Sorted = (u64, u64, usize, Vec<(u32, u32)>, f64);
            let mut runs: Vec<Sorted> = Vec::new();
            for (row, (p, w)) in raw.iter().enumerate() {
                let pts: Vec<(u32, u32)> = p.iter().map(|&(x, y)| at(3, x, y)).collect();
                paths.push(&pts, *w as f64).unwrap();
                for (seq, (code, run)) in path_runs(&pts, 3).unwrap().into_iter().enumerate() {
                    runs.push((code, row as u64, seq, run.to_vec(), *w as f64));
                }
            }
            runs.sort_by_key(|a| (a.0, a.1, a.2));
            let want = build(&paths, 3);
            let mut got = HashMap::new();
            let mut on_tile = |g: HeatGrid| {
                let t = g.tile;
                assert!(got.insert((t.z, t.x, t.y), g).is_none(), "emitted twice");
                Ok(())
            };
            let mut b = StreamBuild::new(3, TileSize::Px256, 2, budget);
            for (code, row, _, run, w) in &runs {
                b.push(*code, *row, *w, run, &mut on_tile).unwrap();
            }
            b.finish(&mut on_tile).unwrap();
            prop_assert_eq!(got.len(), want.len());
            for (k, g) in &want {
                let h = &got[k];
                prop_assert_eq!(g.values(), h.values());
                prop_assert_eq!(g.rows, h.rows);
            }
        }
    }

    #[test]
    fn a_refresh_of_some_tiles_draws_only_those() {
        let mut paths = PathSet::default();
        paths.push(&[at(2, 10, 10), at(2, 500, 10)], 1.0).unwrap();
        let only: HashSet<u64> = [morton_interleave(1, 0)].into();
        let mut base = Vec::new();
        build_counts(
            &paths,
            2,
            TileSize::Px256,
            Some(&only),
            1,
            &mut || {},
            &mut |g| {
                if g.tile.z == 2 {
                    base.push(g.tile);
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(base, vec![Tile { z: 2, x: 1, y: 0 }]);
    }

    #[test]
    fn out_of_order_base_tiles_are_refused() {
        let mut r = Rollup::new(2, TileSize::Px256);
        let mut out = Vec::new();
        let g = |x, y| HeatGrid::new(Tile::new(2, x, y).unwrap(), TileSize::Px256).unwrap();
        r.push(g(1, 1), &mut out).unwrap();
        assert!(r.push(g(1, 0), &mut out).is_err());
        assert!(r.push(g(1, 1), &mut out).is_err());
    }

    /// A strong gradient of heat across tiles: heat grows 5000-fold from west to east over 5 x 5
    /// tiles and waves north to south, half the pixels lit at random. Per-tile eq_hist stretches each tile over the whole
    /// colormap, so edges jump; the neighbourhood CDF with bilinear interpolation does not (edges
    /// differ no more than neighbouring pixels inside tiles).
    #[test]
    fn neighbourhood_cdfs_with_interpolation_have_no_seams() {
        let z = 5;
        let mut seed = 7u64;
        let mut rand = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut tiles = HashMap::new();
        for ty in 0..5 {
            for tx in 0..5 {
                let values: Vec<f64> = (0..65536)
                    .map(|i| {
                        let wx = (tx * 256 + i % 256) as f64;
                        let wy = (ty * 256 + i / 256) as f64;
                        if rand() < 0.5 {
                            0.0
                        } else {
                            ((wx / 150.0).exp() * (1.0 + 0.3 * (wy / 20.0).sin())).ceil()
                        }
                    })
                    .collect();
                let tile = Tile::new(z as i32, tx, ty).unwrap();
                let g = HeatGrid::from_values(tile, TileSize::Px256, 1, values).unwrap();
                tiles.insert((z, tx as u32, ty as u32), g);
            }
        }
        let norm = Normalisation::default();
        let base: Vec<&HeatGrid> = tiles.values().filter(|g| g.tile.z == z).collect();
        let summaries: HashMap<(u32, u32), Cdf> = base
            .iter()
            .map(|g| ((g.tile.x, g.tile.y), norm.summary(g)))
            .collect();
        let lit: Vec<(u32, u32)> = summaries.keys().copied().collect();
        let cdfs = norm.neighbourhood_cdfs(z, &Normalisation::cdf_tiles(z, &lit), &summaries, 2);
        let seam_tiles = |f: &dyn Fn(&HeatGrid) -> Vec<u8>| -> HashMap<(u32, u32), SeamTile> {
            base.iter()
                .map(|g| {
                    let t = SeamTile {
                        levels: f(g),
                        heat: g.values(),
                    };
                    ((g.tile.x, g.tile.y), t)
                })
                .collect()
        };
        let smooth = seam_tiles(&|g| norm.levels(g, &cdfs));
        let style = HeatStyle::heat_defaults();
        let per_tile = seam_tiles(&|g| levels(g, &style));
        let (s, p) = (seam_stats(&smooth, 256), seam_stats(&per_tile, 256));
        eprintln!("pyramid {s:?}\nper tile {p:?}");
        assert!(s.edge.pairs > 2_000 && s.inner.pairs > 500_000);
        assert!(s.edge.mean <= s.near_edge.mean, "{s:?}");
        assert!(
            s.equal_heat_edge.mean <= s.equal_heat_inner.mean + 0.05,
            "{s:?}"
        );
        assert!(p.edge.mean > 10.0 * s.edge.mean, "per-tile {p:?} vs {s:?}");
        assert!(
            p.equal_heat_edge.mean > 10.0 * p.equal_heat_inner.mean,
            "{p:?}"
        );
        // Same lit pixels either way.
        for (k, l) in &smooth {
            let q = &per_tile[k];
            assert!(l
                .levels
                .iter()
                .zip(&q.levels)
                .all(|(a, b)| (*a > 0) == (*b > 0)));
        }
    }
}

//! Building and refreshing a pyramid's stored tiles, whatever stores them: the extension keeps
//! them in a table through SPI, the tests in a map. The logic lives here; a [`TileStore`] only
//! reads and writes.
//!
//! After counts change (a build, or a refresh's deltas), levels are recomputed for every tile
//! whose neighbourhood reaches a changed tile, 1,024 tiles at a time with only the summaries
//! their neighbourhoods read: memory bounded by the group, not the zoom.

use crate::error::CoreResult;
use crate::geometry::vcs::{Tile, TileSize};
use crate::parallel;
use crate::pyramid::build::Normalisation;
use crate::pyramid::cdf::Cdf;
use crate::raster::heat::HeatGrid;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// Where a pyramid's tiles live: counts (with their CDF summary) and levels, per tile.
pub trait TileStore {
    /// The counts of tile `t`, if it is stored.
    fn read_counts(&mut self, t: Tile) -> CoreResult<Option<HeatGrid>>;
    /// Store tiles' counts and summaries, replacing what was there; their levels are now stale.
    fn write_counts(&mut self, tiles: &[EncodedCounts]) -> CoreResult<()>;
    /// Remove tile `t` (its counts became empty).
    fn remove(&mut self, t: Tile) -> CoreResult<()>;
    /// The summaries of the stored tiles of zoom `z` in rows `y0..=y1`.
    fn summaries_in_rows(
        &mut self,
        z: u32,
        y0: u32,
        y1: u32,
    ) -> CoreResult<HashMap<(u32, u32), Cdf>>;
    /// The (x, y) of every stored tile of zoom `z`.
    fn tiles_at(&mut self, z: u32) -> CoreResult<Vec<(u32, u32)>>;
    /// Store the levels of tiles ([`crate::pyramid::levels::StoredLevels::to_bytes`]).
    fn write_levels(&mut self, levels: &[(Tile, Vec<u8>)]) -> CoreResult<()>;
    /// Called between units of work, on the calling thread: a store inside a database raises a
    /// pending cancel here.
    fn check_interrupts(&mut self) {}
}

/// A tile's counts as stored: [`HeatGrid::to_stored_bytes`] and the summary's
/// [`Cdf::to_bytes`].
pub struct EncodedCounts {
    /// The tile.
    pub tile: Tile,
    /// The counts, compressed.
    pub counts: Vec<u8>,
    /// The summary `norm` makes of them, compressed.
    pub summary: Vec<u8>,
}

impl EncodedCounts {
    /// Encode `grid` with the summary `norm` makes of it.
    pub fn of(norm: &Normalisation, grid: &HeatGrid) -> EncodedCounts {
        EncodedCounts {
            tile: grid.tile,
            counts: grid.to_stored_bytes(),
            summary: norm.summary(grid).to_bytes(),
        }
    }
}

/// Store a tile's counts with the summary `norm` makes of them.
pub fn store_counts<S: TileStore + ?Sized>(
    store: &mut S,
    norm: &Normalisation,
    grid: &HeatGrid,
) -> CoreResult<()> {
    store.write_counts(&[EncodedCounts::of(norm, grid)])
}

/// Stores finished tiles a batch at a time, encoded (summary, compression) on `threads`
/// threads from plain data and written from the calling thread: a build's tiles come one by
/// one from its rollup.
pub struct CountsWriter {
    pending: Vec<HeatGrid>,
    threads: usize,
}

impl CountsWriter {
    /// A writer holding up to four grids per thread (at most 16 MiB of them).
    pub fn new(threads: usize) -> CountsWriter {
        CountsWriter {
            pending: Vec::new(),
            threads: threads.max(1),
        }
    }

    /// Store `grid`, now or with the next batch.
    pub fn push<S: TileStore + ?Sized>(
        &mut self,
        store: &mut S,
        norm: &Normalisation,
        grid: HeatGrid,
    ) -> CoreResult<()> {
        self.pending.push(grid);
        // Four grids a thread, and never more than 16 MiB of them.
        let bytes: usize = self
            .pending
            .iter()
            .map(|g| (g.side() as usize).pow(2) * 8)
            .sum();
        if self.pending.len() >= self.threads * 4 || bytes >= 16 << 20 {
            self.flush(store, norm)?;
        }
        Ok(())
    }

    /// Store every grid held.
    pub fn flush<S: TileStore + ?Sized>(
        &mut self,
        store: &mut S,
        norm: &Normalisation,
    ) -> CoreResult<()> {
        let grids = std::mem::take(&mut self.pending);
        let encoded: Vec<EncodedCounts> = parallel::run(self.threads, || {
            grids
                .par_iter()
                .map(|g| EncodedCounts::of(norm, g))
                .collect()
        });
        store.write_counts(&encoded)
    }
}

/// Add `delta` (the counts of changed rows, `sign` +1 for added rows and -1 for removed ones)
/// to the stored tile it belongs to; a tile left empty is removed.
pub fn apply_delta<S: TileStore + ?Sized>(
    store: &mut S,
    norm: &Normalisation,
    delta: &HeatGrid,
    sign: f64,
    size: TileSize,
) -> CoreResult<()> {
    let t = delta.tile;
    let mut grid = match store.read_counts(t)? {
        Some(g) => g,
        None => HeatGrid::new(t, size)?,
    };
    grid.add_signed(delta, sign)?;
    if grid.is_empty() {
        store.remove(t)
    } else {
        store_counts(store, norm, &grid)
    }
}

/// The stored tiles of zoom `z` whose levels read a changed tile's CDF: a tile's levels mix the
/// CDFs of itself and its eight neighbours, each of which mixes the summaries within the
/// radius, so changes reach tiles up to radius + 1 away (across the antimeridian too).
pub fn tiles_to_renormalise<S: TileStore + ?Sized>(
    store: &mut S,
    norm: &Normalisation,
    z: u32,
    changed: &HashSet<(u32, u32)>,
) -> CoreResult<Vec<(u32, u32)>> {
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let reach = norm.radius as i64 + 1;
    let n = 1i64 << z;
    let mut near = HashSet::new();
    for &(x, y) in changed {
        for dy in -reach..=reach {
            for dx in -reach..=reach {
                near.insert(((x as i64 + dx).rem_euclid(n) as u32, y as i64 + dy));
            }
        }
    }
    Ok(store
        .tiles_at(z)?
        .into_iter()
        .filter(|&(x, y)| near.contains(&(x, y as i64)))
        .collect())
}

/// Recompute and store the levels of `targets` (tiles of zoom `z`), 1,024 at a time in order
/// of row, each group with the summaries of its rows and of the rows within the
/// neighbourhood's reach (radius + 1). A tile whose summary keeps every distinct value stores
/// its rank table, made from the summary alone; the others read their counts and store the
/// smaller of the table and the levels. Both are computed on `threads` threads from plain data; the store is only called
/// from this thread.
pub fn normalise<S: TileStore + ?Sized>(
    store: &mut S,
    norm: &Normalisation,
    z: u32,
    targets: &mut [(u32, u32)],
    threads: usize,
) -> CoreResult<()> {
    /// What a tile's levels are made from.
    enum Source {
        Values(Tile, Vec<u64>),
        Counts(HeatGrid),
    }
    targets.sort_unstable_by_key(|&(x, y)| (y, x));
    let reach = norm.radius + 1;
    for part in targets.chunks(1024) {
        store.check_interrupts();
        let (y0, y1) = (part[0].1, part[part.len() - 1].1);
        let summaries = store.summaries_in_rows(z, y0.saturating_sub(reach), y1 + reach)?;
        let cdfs =
            norm.neighbourhood_cdfs(z, &Normalisation::cdf_tiles(z, part), &summaries, threads);
        // Batches of up to 64 tiles, of which at most two per thread read their counts: a few
        // grids in memory at once.
        let mut rest = part;
        while !rest.is_empty() {
            store.check_interrupts();
            let mut sources = Vec::new();
            let mut grids = 0;
            while let Some((&(x, y), tail)) = rest.split_first() {
                if sources.len() == 64 || grids == threads.max(1) * 2 {
                    break;
                }
                rest = tail;
                let t = Tile { z, x, y };
                match summaries.get(&(x, y)).and_then(Cdf::exact_values) {
                    Some(values) => sources.push(Source::Values(t, values)),
                    None => {
                        if let Some(g) = store.read_counts(t)? {
                            sources.push(Source::Counts(g));
                            grids += 1;
                        }
                    }
                }
            }
            let levels: Vec<(Tile, Vec<u8>)> = parallel::run(threads, || {
                sources
                    .into_par_iter()
                    .map(|s| match s {
                        Source::Values(t, v) => (t, norm.stored_levels(t, v, &cdfs).to_bytes()),
                        Source::Counts(g) => (g.tile, norm.stored_levels_of(&g, &cdfs).1),
                    })
                    .collect()
            });
            store.write_levels(&levels)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyramid::build::Rollup;
    use crate::pyramid::levels::StoredLevels;

    /// Tiles in memory.
    #[derive(Default)]
    struct MapStore {
        counts: HashMap<Tile, (HeatGrid, Cdf)>,
        levels: HashMap<Tile, StoredLevels>,
    }

    impl TileStore for MapStore {
        fn read_counts(&mut self, t: Tile) -> CoreResult<Option<HeatGrid>> {
            Ok(self.counts.get(&t).map(|(g, _)| g.clone()))
        }
        fn write_counts(&mut self, tiles: &[EncodedCounts]) -> CoreResult<()> {
            for e in tiles {
                let grid = HeatGrid::from_stored_bytes(&e.counts)?;
                self.counts
                    .insert(e.tile, (grid, Cdf::from_bytes(&e.summary)?));
                self.levels.remove(&e.tile);
            }
            Ok(())
        }
        fn remove(&mut self, t: Tile) -> CoreResult<()> {
            self.counts.remove(&t);
            self.levels.remove(&t);
            Ok(())
        }
        fn summaries_in_rows(
            &mut self,
            z: u32,
            y0: u32,
            y1: u32,
        ) -> CoreResult<HashMap<(u32, u32), Cdf>> {
            Ok(self
                .counts
                .iter()
                .filter(|(t, _)| t.z == z && (y0..=y1).contains(&t.y))
                .map(|(t, (_, s))| ((t.x, t.y), s.clone()))
                .collect())
        }
        fn tiles_at(&mut self, z: u32) -> CoreResult<Vec<(u32, u32)>> {
            Ok(self
                .counts
                .keys()
                .filter(|t| t.z == z)
                .map(|t| (t.x, t.y))
                .collect())
        }
        fn write_levels(&mut self, levels: &[(Tile, Vec<u8>)]) -> CoreResult<()> {
            for (t, l) in levels {
                self.levels.insert(*t, StoredLevels::from_bytes(l, 256)?);
            }
            Ok(())
        }
    }

    /// Base tiles of zoom 6 lit by a few points each, rolled up to z0.
    fn built(points: &[(u32, u32, f64)], norm: &Normalisation) -> MapStore {
        let size = TileSize::Px256;
        let mut base: HashMap<Tile, HeatGrid> = HashMap::new();
        for &(x, y, w) in points {
            let t = Tile::containing(x, y, 6);
            let g = base
                .entry(t)
                .or_insert_with(|| HeatGrid::new(t, size).unwrap());
            g.add_point(x as i32, y as i32, w).unwrap();
        }
        let mut store = MapStore::default();
        let mut rollup = Rollup::new(6, size);
        let mut out = Vec::new();
        let mut tiles: Vec<_> = base.into_values().collect();
        tiles.sort_by_key(|g| crate::geometry::vcs::morton_interleave(g.tile.x, g.tile.y));
        for g in tiles {
            rollup.push(g, &mut out).unwrap();
        }
        rollup.finish(&mut out).unwrap();
        for g in &out {
            store_counts(&mut store, norm, g).unwrap();
        }
        for z in 0..=6 {
            let mut targets = store.tiles_at(z).unwrap();
            normalise(&mut store, norm, z, &mut targets, 2).unwrap();
        }
        store
    }

    fn scatter(seed: u32, n: u32) -> Vec<(u32, u32, f64)> {
        (0..n)
            .map(|i| {
                let h = (i.wrapping_mul(2_654_435_761) ^ seed).wrapping_mul(40_503);
                let x = (1u32 << 30) + (h % (1 << 27)) * 3;
                let y = (1u32 << 30) + (h.rotate_left(13) % (1 << 27)) * 3;
                (x, y, 1.0 + (i % 3) as f64)
            })
            .collect()
    }

    /// A refresh (deltas, then renormalising what they reach) gives exactly the tiles of a
    /// build of the changed points: counts, summaries and levels.
    #[test]
    fn a_refresh_equals_a_build_of_the_changed_rows() {
        let norm = Normalisation {
            radius: 2,
            ..Normalisation::default()
        };
        // Changes in one z6 tile of about a hundred: only tiles within reach renormalise.
        let before = scatter(1, 6000);
        let one_tile = |&(x, y, _): &(u32, u32, f64)| {
            Tile::containing(x, y, 6) == Tile::containing(1 << 30, 1 << 30, 6)
        };
        let added: Vec<_> = scatter(2, 20000).into_iter().filter(one_tile).collect();
        let (removed, mut after): (Vec<_>, Vec<_>) = before
            .iter()
            .enumerate()
            .partition(|(i, p)| one_tile(p) && i % 3 == 0);
        let removed: Vec<_> = removed.into_iter().map(|(_, p)| *p).collect();
        let mut after: Vec<_> = after.drain(..).map(|(_, p)| *p).collect();
        assert!(!added.is_empty() && !removed.is_empty());
        after.extend(&added);

        let mut store = built(&before, &norm);
        let mut changed: Vec<HashSet<(u32, u32)>> = vec![HashSet::new(); 7];
        for (points, sign) in [(&added, 1.0), (&removed, -1.0)] {
            let delta_store = built(points, &norm);
            for (t, (g, _)) in &delta_store.counts {
                apply_delta(&mut store, &norm, g, sign, TileSize::Px256).unwrap();
                changed[t.z as usize].insert((t.x, t.y));
            }
        }
        for (z, tiles) in changed.iter().enumerate() {
            let mut targets = tiles_to_renormalise(&mut store, &norm, z as u32, tiles).unwrap();
            normalise(&mut store, &norm, z as u32, &mut targets, 2).unwrap();
        }

        let fresh = built(&after, &norm);
        assert_eq!(store.counts.len(), fresh.counts.len());
        for (t, (g, s)) in &fresh.counts {
            let (mine, my_summary) = &store.counts[t];
            assert_eq!(mine.to_bytes(), g.to_bytes(), "counts of {t:?}");
            assert_eq!(my_summary.to_bytes(), s.to_bytes(), "summary of {t:?}");
            assert_eq!(store.levels.get(t), fresh.levels.get(t), "levels of {t:?}");
        }
    }

    /// Stored levels, rank tables or plain, give the bytes `Normalisation::levels` computes
    /// from the counts; tiles with more distinct values than a summary keeps store plain ones.
    #[test]
    fn stored_levels_are_the_levels_of_the_counts() {
        let norm = Normalisation {
            radius: 2,
            summary_steps: 8,
            ..Normalisation::default()
        };
        let mut store = built(&scatter(3, 30000), &norm);
        let (mut tables, mut plain) = (0, 0);
        for z in 0..=6 {
            let tiles = store.tiles_at(z).unwrap();
            let summaries = store.summaries_in_rows(z, 0, (1 << z) - 1).unwrap();
            let cdfs =
                norm.neighbourhood_cdfs(z, &Normalisation::cdf_tiles(z, &tiles), &summaries, 2);
            for (x, y) in tiles {
                let t = Tile { z, x, y };
                let grid = store.read_counts(t).unwrap().unwrap();
                let stored = &store.levels[&t];
                match stored {
                    StoredLevels::Ranks { .. } => tables += 1,
                    StoredLevels::Plain(_) => plain += 1,
                }
                let back = StoredLevels::from_bytes(&stored.to_bytes(), 256).unwrap();
                assert_eq!(
                    back.levels(&grid).unwrap(),
                    norm.levels(&grid, &cdfs),
                    "{t:?}"
                );
            }
        }
        assert!(tables > 0, "{tables} tables, {plain} plain");
        // A tile of more distinct values than a table may hold stores its levels.
        let t = Tile { z: 6, x: 30, y: 20 };
        let heat = (0..65536).map(|i| (i % 20000) as f64 + 1.0).collect();
        let grid = HeatGrid::from_values(t, TileSize::Px256, 1, heat).unwrap();
        let cdfs = HashMap::from([((30, 20), Cdf::of(grid.values()).sampled(64))]);
        let (stored, _) = norm.stored_levels_of(&grid, &cdfs);
        assert!(matches!(stored, StoredLevels::Plain(_)));
        assert_eq!(stored.levels(&grid).unwrap(), norm.levels(&grid, &cdfs));
    }
}

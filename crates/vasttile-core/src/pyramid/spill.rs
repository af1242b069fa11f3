//! A build fed with rows in any order (a table read as it lies), in bounded memory: each row's
//! path is split into per-tile runs held by tile; when they pass the budget, the runs of every
//! tile held are appended to a spill file (in the extension, a PostgreSQL temporary file), and
//! an index in memory keeps where each tile's pieces are. At the end the tiles are drawn in
//! Morton order, each from its pieces read back one after another into the same grid, and
//! rolled up. A bucket sort by tile with one write and one read of the runs: what a build
//! through `ORDER BY tile` paid for a sort of every run (and its points), merged from disk.

use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::TileSize;
use crate::parallel;
use crate::pyramid::build::{tile_runs, DrawStats, Rollup, TileRuns};
use crate::raster::heat::HeatGrid;
use rayon::prelude::*;
use std::collections::HashMap;

/// Where partial grids go: appended, and read back where they were put.
pub trait SpillFile {
    /// Append `bytes`; returns a place to read them back from.
    fn append(&mut self, bytes: &[u8]) -> CoreResult<u64>;
    /// The `len` bytes appended at `at`.
    fn read_at(&mut self, at: u64, len: usize) -> CoreResult<Vec<u8>>;
}

/// A spill file in memory (tests).
impl SpillFile for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) -> CoreResult<u64> {
        let at = self.len() as u64;
        self.extend_from_slice(bytes);
        Ok(at)
    }
    fn read_at(&mut self, at: u64, len: usize) -> CoreResult<Vec<u8>> {
        self.get(at as usize..at as usize + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| CoreError::out_of_range("spill file", "read past its end"))
    }
}

/// The most runs of one tile held (16 MiB, about 2 M points) before they are written out.
const PIECE_BYTES: usize = 16 << 20;

/// What a held tile costs besides its runs: the map's entry and the tile's vectors.
const TILE_BYTES: usize = 160;

/// See the module's documentation.
pub struct SpillBuild {
    base_zoom: u32,
    size: TileSize,
    threads: usize,
    budget: usize,
    held: HashMap<u64, TileRuns>,
    bytes: usize,
    /// The pieces written: (tile's Morton code, where in the spill file, size).
    pieces: Vec<(u64, u64, usize)>,
    stats: DrawStats,
    spills: u64,
}

impl SpillBuild {
    /// A build of base zoom `base_zoom` drawing on up to `threads` threads, holding about
    /// `budget` bytes of runs (at least 64 KiB) before it spills.
    pub fn new(base_zoom: u32, size: TileSize, threads: usize, budget: usize) -> SpillBuild {
        SpillBuild {
            base_zoom,
            size,
            threads: threads.max(1),
            budget: budget.max(1 << 16),
            held: HashMap::new(),
            bytes: 0,
            pieces: Vec::new(),
            stats: DrawStats::default(),
            spills: 0,
        }
    }

    /// Add row `row` (numbers distinct per row): `path` with `weight`. `on_progress` runs
    /// between batches of a spill (to check for cancellation).
    pub fn push(
        &mut self,
        row: u64,
        weight: f64,
        path: &[(u32, u32)],
        runs: &mut Vec<(u64, u32, u32)>,
        spill: &mut dyn SpillFile,
        on_progress: &mut dyn FnMut(),
    ) -> CoreResult<()> {
        runs.clear();
        tile_runs(path, self.base_zoom, runs)?;
        self.push_runs(row, weight, path, runs, spill, on_progress)
    }

    /// [`SpillBuild::push`] with the path's runs already made ([`tile_runs`] at the base zoom),
    /// as threads make them a batch of rows at a time.
    pub fn push_runs(
        &mut self,
        row: u64,
        weight: f64,
        path: &[(u32, u32)],
        runs: &[(u64, u32, u32)],
        spill: &mut dyn SpillFile,
        on_progress: &mut dyn FnMut(),
    ) -> CoreResult<()> {
        for &(code, first, last) in runs {
            let t = self.held.entry(code).or_insert_with(|| {
                self.bytes += TILE_BYTES;
                TileRuns::new(code)
            });
            self.bytes += t.push(row, weight, &path[first as usize..=last as usize]);
            // One tile alone past PIECE_BYTES is written out as it comes: a piece is what one
            // thread draws between two checks for cancellation.
            if t.held_bytes() >= PIECE_BYTES {
                let held = t.held_bytes();
                let bytes = t.take_bytes();
                let at = spill.append(&bytes)?;
                self.pieces.push((code, at, bytes.len()));
                self.bytes = self.bytes.saturating_sub(held);
            }
        }
        // Between rows: a row's runs of one tile all go into the same partial grid, so the
        // row counts once in that tile's rows.
        if self.bytes >= self.budget {
            self.spill(spill, on_progress)?;
        }
        Ok(())
    }

    /// The index of the pieces written outgrows a quarter of the budget (tables whose rows
    /// spread over very many tiles): such a build should be made another way (sorting the runs
    /// through PostgreSQL), as this index is held until the end.
    pub fn too_wide(&self) -> bool {
        self.pieces.len() * std::mem::size_of::<(u64, u64, usize)>() > self.budget / 4
    }

    /// How many times the held runs were written out.
    pub fn spills(&self) -> u64 {
        self.spills
    }

    /// Append the runs of every held tile to `spill`, and let go of them.
    fn spill(
        &mut self,
        spill: &mut dyn SpillFile,
        on_progress: &mut dyn FnMut(),
    ) -> CoreResult<()> {
        for (i, (code, mut t)) in self.held.drain().enumerate() {
            if i % 64 == 0 {
                on_progress();
            }
            let bytes = t.take_bytes();
            let at = spill.append(&bytes)?;
            self.pieces.push((code, at, bytes.len()));
        }
        self.bytes = 0;
        self.spills += 1;
        Ok(())
    }

    /// Draw every tile, in Morton order, `2 * threads` at a time in parallel: from what is
    /// held and the pieces read back from `spill`, at most `budget` bytes of them in memory at
    /// once (and at least one piece). Then roll them up: `on_tile` receives every finished tile
    /// as [`crate::pyramid::build::build_counts`] hands them.
    pub fn finish(
        mut self,
        spill: &mut dyn SpillFile,
        on_progress: &mut dyn FnMut(),
        on_tile: &mut dyn FnMut(HeatGrid) -> CoreResult<()>,
    ) -> CoreResult<DrawStats> {
        // Once anything is spilled, the rest is too: the pieces read back then have the whole
        // budget (what is held is never more than the budget, and never beside it).
        if self.spills > 0 && !self.held.is_empty() {
            self.spill(spill, on_progress)?;
        }
        // Each tile's pieces in the order written, tiles in Morton order.
        let mut pieces = std::mem::take(&mut self.pieces);
        pieces.sort_unstable();
        let mut codes: Vec<u64> = pieces.iter().map(|p| p.0).collect();
        codes.extend(self.held.keys());
        codes.sort_unstable();
        codes.dedup();
        let (base_zoom, size) = (self.base_zoom, self.size);
        let mut rollup = Rollup::new(base_zoom, size);
        let mut next_piece = 0;
        for batch in codes.chunks(self.threads * 2) {
            // Each tile of the batch with its pieces still to read, the held runs first.
            let mut tiles: Vec<(TileRuns, Vec<(u64, usize)>)> = batch
                .iter()
                .map(|&code| {
                    let held = self
                        .held
                        .remove(&code)
                        .unwrap_or_else(|| TileRuns::new(code));
                    let mut mine = Vec::new();
                    while pieces.get(next_piece).is_some_and(|p| p.0 == code) {
                        mine.push((pieces[next_piece].1, pieces[next_piece].2));
                        next_piece += 1;
                    }
                    (held, mine)
                })
                .collect();
            loop {
                on_progress();
                let drawn: Vec<CoreResult<()>> = parallel::run(self.threads, || {
                    tiles
                        .par_iter_mut()
                        .map(|(t, _)| t.draw(base_zoom, size))
                        .collect()
                });
                drawn.into_iter().collect::<CoreResult<Vec<()>>>()?;
                if tiles.iter().all(|(_, pieces)| pieces.is_empty()) {
                    break;
                }
                // The next pieces, within the budget.
                let mut bytes = 0;
                for (t, pieces) in tiles.iter_mut() {
                    let Some(&(at, len)) = pieces.first() else {
                        continue;
                    };
                    if bytes > 0 && bytes + len > self.budget {
                        continue;
                    }
                    on_progress();
                    t.load_bytes(&spill.read_at(at, len)?)?;
                    pieces.remove(0);
                    bytes += len;
                }
            }
            for (t, _) in tiles {
                self.stats.count(t.pixels, t.seconds);
                if let Some(grid) = t.grid {
                    rollup.push_to(grid, on_tile)?;
                }
            }
        }
        rollup.finish_to(on_tile)?;
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyramid::build::{build_counts, PathSet};

    /// Random walks over a few z10 tiles.
    fn paths(n: u32) -> PathSet {
        let mut next64 = crate::test_numbers(17);
        let mut next = move || next64() as u32;
        let mut set = PathSet::default();
        for _ in 0..n {
            let (mut x, mut y) = (
                (1u32 << 30) + next() % (1 << 24),
                (1u32 << 30) + next() % (1 << 24),
            );
            let pts: Vec<(u32, u32)> = (0..40 + next() % 80)
                .map(|_| {
                    x = x.wrapping_add(next() % (1 << 16)).wrapping_sub(1 << 15);
                    y = y.wrapping_add(next() % (1 << 16)).wrapping_sub(1 << 15);
                    (x, y)
                })
                .collect();
            set.push(&pts, 1.0 + (next() % 3) as f64).unwrap();
        }
        set
    }

    fn all_tiles(on: impl FnOnce(&mut dyn FnMut(HeatGrid) -> CoreResult<()>)) -> Vec<HeatGrid> {
        let mut out = Vec::new();
        on(&mut |g| {
            out.push(g);
            Ok(())
        });
        out
    }

    /// Whatever the budget (spilling many times, or never), the tiles and their order equal an
    /// in-memory build's.
    #[test]
    fn a_spilled_build_equals_the_in_memory_build() {
        let set = paths(400);
        let expected = all_tiles(|on| {
            build_counts(&set, 12, TileSize::Px256, None, 2, &mut || {}, on).unwrap();
        });
        assert!(expected.len() > 20);
        for budget in [0, 1 << 17, 1 << 30] {
            let mut file: Vec<u8> = Vec::new();
            let mut b = SpillBuild::new(12, TileSize::Px256, 2, budget);
            let mut runs = Vec::new();
            for i in 0..set.len() {
                b.push(
                    i as u64,
                    set.weight(i),
                    set.path(i),
                    &mut runs,
                    &mut file,
                    &mut || {},
                )
                .unwrap();
            }
            let spills = b.spills();
            let got = all_tiles(|on| {
                b.finish(&mut file, &mut || {}, on).unwrap();
            });
            assert_eq!(got, expected, "budget {budget}, {spills} spills");
            assert_eq!(spills > 0, budget < 1 << 30, "budget {budget}");
        }
    }

    /// Rows spread over more tiles than the index of pieces may hold make the build say so.
    #[test]
    fn rows_over_very_many_tiles_are_too_wide() {
        let mut file: Vec<u8> = Vec::new();
        let mut b = SpillBuild::new(20, TileSize::Px256, 2, 0);
        let mut runs = Vec::new();
        let mut next = crate::test_numbers(9);
        let mut i = 0;
        while !b.too_wide() {
            let point = [(next() as u32, next() as u32)];
            b.push(i, 1.0, &point, &mut runs, &mut file, &mut || {})
                .unwrap();
            i += 1;
            assert!(i < 1_000_000, "never too wide");
        }
        assert!(b.spills() > 0);
    }

    /// A spill file that does not hold what was written is an error, never a panic.
    #[test]
    fn damaged_spills_are_errors() {
        let set = paths(400);
        let mut good: Vec<u8> = Vec::new();
        let mut b = SpillBuild::new(12, TileSize::Px256, 2, 0);
        let mut runs = Vec::new();
        for i in 0..set.len() {
            b.push(i as u64, 1.0, set.path(i), &mut runs, &mut good, &mut || {})
                .unwrap();
        }
        assert!(b.spills() > 0);
        let mut short = good[..good.len() / 2].to_vec();
        assert!(b.finish(&mut short, &mut || {}, &mut |_| Ok(())).is_err());
        let mut t = TileRuns::new(0);
        for bytes in [&[][..], &[1, 0, 0, 0, 0, 0, 0, 0][..], &[0; 12][..]] {
            assert!(t.load_bytes(bytes).is_err(), "{bytes:?}");
        }
        let mut forged = 1u64.to_le_bytes().to_vec();
        forged.extend([0; 16]);
        forged.extend(5u32.to_le_bytes()); // start past end
        forged.extend(4u32.to_le_bytes());
        assert!(t.load_bytes(&forged).is_err());
    }
}

//! How a pyramid stores a tile's levels. A tile's levels are its counts ranked by the CDFs of
//! its neighbourhood, so beside the counts they are stored as a rank table: for each distinct
//! lit value of the tile, its rank under each of the nine CDFs a pixel may read. Serving turns
//! counts and table back into the same bytes the build would have made (`levels_from_table`).
//! A tile's few distinct values (about 74 in a tile of city activities) make the table a
//! fraction of the 64 KiB of levels. Tiles with more distinct values than their summary keeps
//! store the levels themselves. Both forms are compressed with zstd; tiles of 0.1.0 (the plain
//! levels, uncompressed) stay readable.

use crate::encoding::stored::{compress, from_planes, inflate, to_planes};
use crate::error::{CoreError, CoreResult};
use crate::pyramid::build::{bilinear_levels, Bilinear};
use crate::raster::heat::HeatGrid;

const MAGIC: &[u8; 4] = b"VTLV";
const VERSION: u8 = 1;
const RANKS: u8 = 0;
const PLAIN: u8 = 1;

/// Distinct values a stored rank table may hold: the most a build writes (a summary's
/// breakpoints) with room to spare; decoding refuses more (bounded memory).
pub const MAX_TABLE_VALUES: usize = 1 << 14;

/// A tile's levels as a pyramid stores them.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredLevels {
    /// A rank table.
    Ranks {
        /// The tile's distinct lit values, as f64 bits, ascending.
        values: Vec<u64>,
        /// Nine ranks per value, under the CDFs of the tile and its neighbours row by row
        /// from the north-west.
        ranks: Vec<f64>,
    },
    /// One byte per pixel, row-major.
    Plain(Vec<u8>),
}

fn bad(why: &str) -> CoreError {
    CoreError::out_of_range(
        "stored levels",
        format!("are not valid ({why}): rebuild the pyramid"),
    )
}

impl StoredLevels {
    /// Bytes: magic `VTLV`, version, form (0 ranks, 1 plain), then a zstd frame of the
    /// payload: for ranks the value count (u32), the values and the ranks (f64), little-endian,
    /// each byte plane after the other (the high bytes of nearby ranks repeat, which zstd sees
    /// only when they sit together); for plain the levels.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (form, payload) = match self {
            StoredLevels::Ranks { values, ranks } => {
                let mut words: Vec<u64> = Vec::with_capacity(values.len() * 10);
                words.extend_from_slice(values);
                // CDF by CDF: each column of ranks ascends with the values.
                for c in 0..9 {
                    words.extend(ranks.iter().skip(c).step_by(9).map(|r| r.to_bits()));
                }
                // Each column as differences from the word before it: their high bytes are
                // mostly zero (ascending non-negative f64s have ascending bits).
                for column in words.chunks_mut(values.len().max(1)) {
                    for i in (1..column.len()).rev() {
                        column[i] = column[i].wrapping_sub(column[i - 1]);
                    }
                }
                let mut p = (values.len() as u32).to_le_bytes().to_vec();
                p.extend(to_planes(&words));
                (RANKS, p)
            }
            StoredLevels::Plain(levels) => (PLAIN, levels.clone()),
        };
        let mut out = Vec::with_capacity(6 + payload.len() / 2);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(form);
        out.extend_from_slice(&compress(&payload));
        out
    }

    /// Decode [`StoredLevels::to_bytes`], or the plain levels 0.1.0 stored (exactly `side`²
    /// bytes). Untrusted input: a bad header, a frame that does not decode or decodes past the
    /// size a tile can need, values not ascending or not positive, or ranks outside [0, 1] are
    /// errors, never a panic.
    pub fn from_bytes(bytes: &[u8], side: usize) -> CoreResult<StoredLevels> {
        let decoded = Self::decode(bytes, side);
        if decoded.is_err() && bytes.len() == side * side {
            return Ok(StoredLevels::Plain(bytes.to_vec()));
        }
        decoded
    }

    fn decode(bytes: &[u8], side: usize) -> CoreResult<StoredLevels> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(bad("no header"));
        }
        let cap = match bytes[5] {
            RANKS => 4 + MAX_TABLE_VALUES * 10 * 8,
            PLAIN => side * side,
            _ => return Err(bad("unknown form")),
        };
        let payload = inflate(&bytes[6..], cap).ok_or_else(|| bad("corrupt or too large"))?;
        if bytes[5] == PLAIN {
            if payload.len() != side * side {
                return Err(bad("wrong size"));
            }
            return Ok(StoredLevels::Plain(payload));
        }
        if payload.len() < 4 {
            return Err(bad("no value count"));
        }
        let d = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
        let words = d * 10;
        if d > MAX_TABLE_VALUES || payload.len() != 4 + words * 8 {
            return Err(bad("wrong size"));
        }
        let mut values = from_planes(&payload[4..]).ok_or_else(|| bad("wrong size"))?;
        for column in values.chunks_mut(d.max(1)) {
            for i in 1..column.len() {
                column[i] = column[i].wrapping_add(column[i - 1]);
            }
        }
        let columns = values.split_off(d);
        let ranks: Vec<f64> = (0..d * 9)
            .map(|i| f64::from_bits(columns[(i % 9) * d + i / 9]))
            .collect();
        let positive = |&v: &u64| f64::from_bits(v) > 0.0 && f64::from_bits(v).is_finite();
        if !values.iter().all(positive) || !values.windows(2).all(|w| w[0] < w[1]) {
            return Err(bad("values not ascending"));
        }
        if !ranks.iter().all(|r| (0.0..=1.0).contains(r)) {
            return Err(bad("ranks outside [0, 1]"));
        }
        Ok(StoredLevels::Ranks { values, ranks })
    }

    /// The tile's levels (one byte per pixel, row-major) given its counts: a lit pixel whose
    /// value the table lacks, or a grid of another size, is an error (the counts and levels of
    /// a tile were stored apart).
    pub fn levels(&self, grid: &HeatGrid) -> CoreResult<Vec<u8>> {
        let side = grid.side() as usize;
        match self {
            StoredLevels::Plain(levels) if levels.len() == side * side => Ok(levels.clone()),
            StoredLevels::Plain(_) => Err(bad("wrong size")),
            StoredLevels::Ranks { values, ranks } => levels_of_grid(grid, values, ranks),
        }
    }
}

/// Levels of `grid` from a rank table over its distinct lit values, visiting only its lit
/// pixels (what serving a stored tile does; the same bytes as [`levels_from_table`]).
fn levels_of_grid(grid: &HeatGrid, values: &[u64], ranks: &[f64]) -> CoreResult<Vec<u8>> {
    if ranks.len() != values.len() * 9 {
        return Err(bad("table size"));
    }
    let side = grid.side() as usize;
    let b = Bilinear::new(side);
    let mut out = vec![0u8; side * side];
    // A value's row of the table: searched once, then found in a small direct-mapped cache
    // (a tile holds few distinct values).
    let mut cache = [(u64::MAX, 0usize); 256];
    let mut missing = false;
    grid.for_each_lit(|px, py, h| {
        let bits = h.to_bits();
        let slot = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
        let row = if cache[slot].0 == bits {
            cache[slot].1
        } else {
            let k = values.partition_point(|&v| v < bits);
            missing |= values.get(k) != Some(&bits);
            let row = k.min(values.len().saturating_sub(1)) * 9;
            cache[slot] = (bits, row);
            row
        };
        if !missing {
            out[py * side + px] = b.level(px, py, |c| ranks[row + c]);
        }
    });
    if missing {
        return Err(bad("a value of the counts is not in the table"));
    }
    Ok(out)
}

/// Levels of `heat` (row-major, `side` wide) from a rank table over its distinct lit values.
pub fn levels_from_table(
    heat: &[f64],
    side: usize,
    values: &[u64],
    ranks: &[f64],
) -> CoreResult<Vec<u8>> {
    if ranks.len() != values.len() * 9 {
        return Err(bad("table size"));
    }
    // Each lit pixel's row of the table; runs of equal heat (common along a path) search once.
    let mut index = vec![0u32; heat.len()];
    let mut last = (u64::MAX, 0u32);
    for (i, &h) in heat.iter().enumerate() {
        if h <= 0.0 {
            continue;
        }
        let bits = h.to_bits();
        if bits != last.0 {
            let k = values.partition_point(|&b| b < bits);
            if values.get(k) != Some(&bits) {
                return Err(bad("a value of the counts is not in the table"));
            }
            last = (bits, k as u32);
        }
        index[i] = last.1;
    }
    Ok(bilinear_levels(heat, side, |i, _, c| {
        ranks[index[i] as usize * 9 + c]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::vcs::{Tile, TileSize};

    fn table() -> StoredLevels {
        let values: Vec<u64> = [1.0f64, 2.0, 3.5, 40.0]
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let ranks = (0..36).map(|i| i as f64 / 36.0).collect();
        StoredLevels::Ranks { values, ranks }
    }

    #[test]
    fn both_forms_round_trip_and_plain_0_1_0_levels_still_read() {
        for l in [
            table(),
            StoredLevels::Plain((0..65536).map(|i| i as u8).collect()),
        ] {
            assert_eq!(StoredLevels::from_bytes(&l.to_bytes(), 256).unwrap(), l);
        }
        let old: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(
            StoredLevels::from_bytes(&old, 256).unwrap(),
            StoredLevels::Plain(old)
        );
    }

    #[test]
    fn damaged_bytes_are_errors_never_panics() {
        let good = table().to_bytes();
        let mut cases: Vec<Vec<u8>> =
            vec![vec![], good[..5].to_vec(), good[..good.len() - 1].to_vec()];
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = good.clone();
                b[i] ^= bit;
                cases.push(b);
            }
        }
        // A frame that inflates past any tile's table.
        let mut bomb = b"VTLV\x01\x00".to_vec();
        bomb.extend(compress(&vec![0u8; 4 + MAX_TABLE_VALUES * 80 + 1]));
        assert!(StoredLevels::from_bytes(&bomb, 256).is_err());
        cases.push(bomb);
        for b in cases {
            // Whatever decodes must hold its invariants; the rest is an error.
            if let Ok(StoredLevels::Ranks { values, ranks }) = StoredLevels::from_bytes(&b, 256) {
                assert_eq!(ranks.len(), values.len() * 9);
            }
        }
    }

    #[test]
    fn a_table_missing_a_value_of_the_counts_is_an_error() {
        let t = Tile::new(3, 1, 1).unwrap();
        let mut heat = vec![0.0; 65536];
        heat[5] = 2.0;
        heat[9] = 7.0;
        let grid = HeatGrid::from_values(t, TileSize::Px256, 1, heat).unwrap();
        assert!(table().levels(&grid).is_err());
        assert!(StoredLevels::Plain(vec![0; 100]).levels(&grid).is_err());
    }
}

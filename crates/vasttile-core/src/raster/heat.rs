//! Heat grids: a count, or a weighted sum, per pixel of one tile.
//!
//! The first stage of every heat kind. A grid knows its tile and size, how many rows went in, and
//! one sum per pixel. Sums are fixed point, in millionths ([`HEAT_SCALE`]): each weight is rounded
//! once to a millionth and then added exactly as an integer, so a grid does not depend on the
//! order of its rows (serial, parallel and distributed aggregates give the same bytes) and a
//! refresh that takes rows away again leaves exactly what the others give. Grids of the same tile
//! merge by adding, which is what parallel aggregation, rollups and zoom pyramids need. On the
//! wire (the SQL type `heatgrid`, a domain over `bytea`) a grid is dense or sparse, whichever is
//! smaller, with `f64` values (counts and millionths convert exactly).

use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::{
    check_point, morton_deinterleave, morton_interleave, PixelGrid, Tile, TileSize, VCS_SPAN,
};

/// Morton index of pixel (x, y) inside a tile (x, y < 512): where [`HeatGrid`] keeps its sum.
#[inline]
pub fn tile_index(x: u32, y: u32) -> usize {
    z_index(x as usize & 511, y as usize & 511)
}

/// Column and row of the pixel of Morton index `z` inside a tile (inverse of [`tile_index`]).
#[inline(always)]
pub fn tile_pixel(z: u32) -> (u32, u32) {
    // x's bits to the low half, y's to the high one, then both gathered at once.
    let z = z as u64;
    let mut v = (z & 0x5555_5555) | ((z & 0xAAAA_AAAA) << 31);
    v = (v | (v >> 1)) & 0x3333_3333_3333_3333;
    v = (v | (v >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
    (v as u32, (v >> 32) as u32)
}

/// Morton index of pixel (x, y) inside a tile (x, y < 512), from a table of spread bits.
#[inline]
fn z_index(x: usize, y: usize) -> usize {
    const fn spread9() -> [u32; 512] {
        let mut t = [0u32; 512];
        let mut i = 0;
        while i < 512 {
            let mut b = 0;
            while b < 9 {
                t[i] |= (((i >> b) & 1) as u32) << (2 * b);
                b += 1;
            }
            i += 1;
        }
        t
    }
    static SPREAD: [u32; 512] = spread9();
    (SPREAD[x] | (SPREAD[y] << 1)) as usize
}

/// Adds one weight to pixels of a [`HeatGrid`] ([`HeatGrid::pixel_adder`]); an overflow is
/// remembered for [`HeatGrid::check_sums`] when the adder is dropped.
pub struct PixelAdder<'a> {
    values: &'a mut [i64],
    fixed: i64,
    signs: i64,
    overflowed: &'a mut bool,
}

impl PixelAdder<'_> {
    /// Add the weight to the pixel at column `x`, row `y` of the tile (both below its size).
    #[inline(always)]
    pub fn add(&mut self, x: u32, y: u32) {
        debug_assert!(x < 512 && y < 512 && tile_index(x, y) < self.values.len());
        self.add_at(tile_index(x, y));
    }

    /// Add the weight to the pixel of Morton index `z` in the tile ([`tile_index`]).
    #[inline(always)]
    pub fn add_at(&mut self, z: usize) {
        let v = &mut self.values[z];
        // Both terms are >= 0, so a sum past i64::MAX wraps to a negative one: the sums' signs
        // are gathered and checked once, when the adder is dropped.
        *v = v.wrapping_add(self.fixed);
        self.signs |= *v;
    }
}

impl Drop for PixelAdder<'_> {
    fn drop(&mut self) {
        *self.overflowed |= self.signs < 0;
    }
}

/// Counts per distinct sum (> 0): open addressing, the table doubled at half full up to
/// `MAX_SLOTS`; sums past that many distinct ones are listed as they come (memory stays within
/// what a list of the lit pixels would take).
#[derive(Default)]
struct SumCounts {
    keys: Vec<i64>,
    counts: Vec<u64>,
    len: usize,
    /// 64 - log2 of the table's size: Fibonacci hashing keeps the product's top bits.
    shift: u32,
    more: Vec<(i64, u64)>,
}

impl SumCounts {
    const MAX_SLOTS: usize = 1 << 14;

    #[inline]
    fn add(&mut self, key: i64, n: u64) {
        if n == 0 {
            return;
        }
        if self.keys.is_empty() {
            self.grow();
        }
        let mask = self.keys.len() - 1;
        let mut i = ((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        while self.keys[i] != 0 {
            if self.keys[i] == key {
                self.counts[i] += n;
                return;
            }
            i = (i + 1) & mask;
        }
        if 2 * (self.len + 1) <= self.keys.len() {
            self.keys[i] = key;
            self.counts[i] = n;
            self.len += 1;
        } else if self.keys.len() < Self::MAX_SLOTS {
            self.grow();
            self.add(key, n);
        } else {
            self.more.push((key, n));
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(self);
        let size = (old.keys.len() * 2).max(256);
        *self = SumCounts {
            keys: vec![0; size],
            counts: vec![0; size],
            len: 0,
            shift: 64 - size.trailing_zeros(),
            more: old.more,
        };
        for (k, n) in old.keys.into_iter().zip(old.counts) {
            if k != 0 {
                self.add(k, n);
            }
        }
    }

    /// The sums and their counts, in no order; a sum past the table may come more than once.
    fn into_pairs(self) -> Vec<(i64, u64)> {
        let mut out = self.more;
        out.extend(
            self.keys
                .into_iter()
                .zip(self.counts)
                .filter(|&(k, _)| k != 0),
        );
        out
    }
}

/// Heat is summed in units of 1 / `HEAT_SCALE`: a decimal scale, so weights such as 0.1 read
/// back as written.
pub const HEAT_SCALE: f64 = 1e6;
/// The largest weight of one row (and value of one pixel read from bytes).
pub const MAX_WEIGHT: f64 = 1e12;
/// The largest sum of one pixel: `i64::MAX` millionths, about 9.2e12.
pub const MAX_HEAT: f64 = i64::MAX as f64 / HEAT_SCALE;

/// A weight already checked by [`HeatGrid::check_weight`], in millionths (nearest).
#[inline]
pub fn fixed_weight(weight: f64) -> i64 {
    // `as` saturates (and maps NaN to 0), so an unchecked weight can never be undefined.
    (weight * HEAT_SCALE + 0.5) as i64
}

/// A Morton key in range (its error built out of line: the check runs once per row).
#[inline(always)]
fn check_key(key: i64) -> CoreResult<()> {
    if (0..VCS_SPAN * VCS_SPAN).contains(&key) {
        Ok(())
    } else {
        Err(bad_key(key))
    }
}

#[cold]
#[inline(never)]
fn bad_key(key: i64) -> CoreError {
    CoreError::out_of_range(
        "Morton key",
        format!("must be between 0 and 2^62 - 1, got {key}"),
    )
}

#[inline]
fn heat_of(fixed: i64) -> f64 {
    fixed as f64 / HEAT_SCALE
}

const MAGIC: &[u8; 4] = b"VTHG";
const COMPACT_MAGIC: &[u8; 4] = b"VTHC";
/// [`HeatGrid::to_stored_bytes`]: the compact form compressed.
const STORED_MAGIC: &[u8; 4] = b"VTHZ";
/// The compact form of a 512-px grid holds at most 262,144 values of up to 10 bytes, each
/// with run lengths of a byte: a stored frame inflating past this is not a grid.
const MAX_COMPACT_BYTES: usize = 512 * 512 * 12 + 64;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// LEB128: seven bits a byte, low bits first.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The varint at `*at`, moving past it; None when the bytes end or it runs past 64 bits.
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        let part = (b & 0x7f) as u64;
        if shift == 63 && part > 1 {
            return None;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}
const VERSION: u8 = 1;
const HEADER: usize = 32;

/// A count or weighted sum per pixel of one tile (the SQL type `heatgrid`).
#[derive(Clone, Debug, PartialEq)]
pub struct HeatGrid {
    /// The tile the pixels cover.
    pub tile: Tile,
    /// Its output size: `size * size` pixels.
    pub size: TileSize,
    /// Rows that went in (with any weight), for statistics.
    pub rows: u64,
    grid: PixelGrid,
    /// Morton code of the tile (its x and y interleaved).
    tile_code: u64,
    /// `size * size` sums in millionths, all >= 0, in Morton (Z) order of the pixels: the low bits
    /// of a point's pixel key are its index, so adding a point costs a shift and a mask.
    values: Vec<i64>,
    /// A sum of [`PixelAdder::add`] went past `i64::MAX` (checked once per path).
    overflowed: bool,
}

#[cold]
#[inline(never)]
fn bad_weight(weight: f64) -> CoreError {
    CoreError::out_of_range(
        "weight",
        format!("must be a finite number from 0 to {MAX_WEIGHT:e}, got {weight}"),
    )
}

#[cold]
#[inline(never)]
fn too_much_heat() -> CoreError {
    CoreError::out_of_range(
        "heat",
        format!("of a pixel must stay below {MAX_HEAT:.3e} (sums are exact in millionths): scale the weights down"),
    )
}

impl HeatGrid {
    /// An all-zero grid; errors when the tile is too deep for `size`.
    pub fn new(tile: Tile, size: TileSize) -> CoreResult<HeatGrid> {
        let grid = PixelGrid::new(tile.z, size)?;
        let n = (size.px() * size.px()) as usize;
        Ok(HeatGrid {
            tile,
            size,
            rows: 0,
            grid,
            tile_code: morton_interleave(tile.x, tile.y),
            values: vec![0; n],
            overflowed: false,
        })
    }

    /// A grid from values already laid out row by row (used by kernels that compute every pixel),
    /// each rounded to the nearest millionth.
    pub fn from_values(
        tile: Tile,
        size: TileSize,
        rows: u64,
        values: Vec<f64>,
    ) -> CoreResult<HeatGrid> {
        let mut grid = HeatGrid::new(tile, size)?;
        if values.len() != grid.values.len() || values.iter().any(|v| !(v.is_finite() && *v >= 0.0))
        {
            return Err(CoreError::out_of_range(
                "heat values",
                "must be finite, non-negative and one per pixel",
            ));
        }
        if values.iter().any(|&v| v > MAX_WEIGHT) {
            return Err(too_much_heat());
        }
        let side = size.px() as usize;
        for (i, v) in values.into_iter().enumerate() {
            grid.values[z_index(i % side, i / side)] = fixed_weight(v);
        }
        grid.rows = rows;
        Ok(grid)
    }

    /// Bytes the grid holds on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.values.len() * std::mem::size_of::<i64>()
    }

    /// Pixels per side.
    pub fn side(&self) -> u32 {
        self.size.px()
    }

    /// Call `f(x, y, heat)` for every lit pixel, row by row (row-major), without laying the
    /// grid out: serving a stored tile visits only its lit pixels.
    pub fn for_each_lit(&self, mut f: impl FnMut(usize, usize, f64)) {
        let side = self.size.px() as usize;
        for y in 0..side {
            for x in 0..side {
                let v = self.values[z_index(x, y)];
                if v != 0 {
                    f(x, y, heat_of(v));
                }
            }
        }
    }

    /// The values row by row (row-major), as images are laid out.
    pub fn values(&self) -> Vec<f64> {
        let side = self.size.px() as usize;
        let mut out = vec![0.0; self.values.len()];
        for y in 0..side {
            for (x, o) in out[y * side..(y + 1) * side].iter_mut().enumerate() {
                *o = heat_of(self.values[z_index(x, y)]);
            }
        }
        out
    }

    /// Every row of one grid must name the same tile and size.
    #[inline(always)]
    pub fn check_tile(&self, z: i32, x: i32, y: i32, size: TileSize) -> CoreResult<()> {
        let t = self.tile;
        if (t.z as i32, t.x as i32, t.y as i32, self.size) == (z, x, y, size) {
            Ok(())
        } else {
            Err(self.other_tile(z, x, y, size))
        }
    }

    #[cold]
    #[inline(never)]
    fn other_tile(&self, z: i32, x: i32, y: i32, size: TileSize) -> CoreError {
        let t = self.tile;
        CoreError::out_of_range(
            "tile",
            format!(
                "must be the same in every row of one heat grid: started as ({}, {}, {}) at {} px, got ({z}, {x}, {y}) at {} px",
                t.z, t.x, t.y, self.size.px(), size.px()
            ),
        )
    }

    /// Right shift from VCS to world pixels of this grid.
    pub fn pixel_shift(&self) -> u32 {
        self.grid.shift()
    }

    /// An adder of `fixed` millionths (see [`fixed_weight`], >= 0) to pixels of the tile: what a
    /// rasteriser holds while it draws, the weight and the sums' signs in its own locals.
    #[inline]
    pub fn pixel_adder(&mut self, fixed: i64) -> PixelAdder<'_> {
        debug_assert!(fixed >= 0, "weights are checked to be >= 0");
        PixelAdder {
            values: &mut self.values,
            fixed,
            signs: 0,
            overflowed: &mut self.overflowed,
        }
    }

    /// An error if a sum of [`PixelAdder::add`] overflowed.
    pub fn check_sums(&self) -> CoreResult<()> {
        if self.overflowed {
            Err(too_much_heat())
        } else {
            Ok(())
        }
    }

    /// A weight must be finite, >= 0 and at most [`MAX_WEIGHT`].
    #[inline(always)]
    pub fn check_weight(weight: f64) -> CoreResult<()> {
        if weight.is_finite() && (0.0..=MAX_WEIGHT).contains(&weight) {
            Ok(())
        } else {
            Err(bad_weight(weight))
        }
    }

    #[inline(always)]
    fn add_fixed(slot: &mut i64, fixed: i64) -> CoreResult<()> {
        *slot = slot.checked_add(fixed).ok_or_else(too_much_heat)?;
        Ok(())
    }

    /// Add a VCS point with a weight; points outside the tile are ignored.
    #[inline(always)]
    pub fn add_point(&mut self, x: i32, y: i32, weight: f64) -> CoreResult<()> {
        let (x, y) = check_point(x, y)?;
        Self::check_weight(weight)?;
        if self.add_world_pixel(self.grid.pixel(x), self.grid.pixel(y), weight)? {
            self.rows += 1;
        }
        Ok(())
    }

    /// Add a point by its Morton key with a weight; points outside the tile are ignored.
    #[inline(always)]
    pub fn add_key(&mut self, key: i64, weight: f64) -> CoreResult<()> {
        check_key(key)?;
        Self::check_weight(weight)?;
        self.add_checked_key(key, fixed_weight(weight))
    }

    /// Add a point of weight 1 by its Morton key (`add_key(key, 1.0)`, the count per row).
    #[inline(always)]
    pub fn add_key_count(&mut self, key: i64) -> CoreResult<()> {
        check_key(key)?;
        self.add_checked_key(key, HEAT_SCALE as i64)
    }

    #[inline(always)]
    fn add_checked_key(&mut self, key: i64, fixed: i64) -> CoreResult<()> {
        // The pixel key is the tile's Morton code followed by the pixel's Morton index.
        let pixel_key = self.grid.pixel_key(key) as u64;
        let bits = 2 * self.size.bits();
        if pixel_key >> bits == self.tile_code {
            let slot = &mut self.values[(pixel_key & ((1 << bits) - 1)) as usize];
            Self::add_fixed(slot, fixed)?;
            self.rows += 1;
        }
        Ok(())
    }

    /// Add a value to a pixel given by its pixel key at this grid's zoom and size (the pairs of a
    /// `GROUP BY pixel_key` query, the SQL argument `pixel_keys`). A pixel outside the tile is an
    /// error: the pairs were meant for this tile, and dropping some would change it silently.
    pub fn add_pixel_key(&mut self, pixel_key: i64, value: f64, rows: u64) -> CoreResult<()> {
        if !(0..1i64 << (2 * self.grid.level)).contains(&pixel_key) {
            return Err(CoreError::out_of_range(
                "pixel_keys",
                format!(
                    "must be between 0 and 4^{} - 1 at this zoom, got {pixel_key}",
                    self.grid.level
                ),
            ));
        }
        Self::check_weight(value)?;
        let (px, py) = morton_deinterleave(pixel_key as u64);
        if !self.add_world_pixel(px, py, value)? {
            let t = self.tile;
            return Err(CoreError::out_of_range(
                "pixel_keys",
                format!(
                    "must be pixels of tile ({}, {}, {}) at {} px: pixel key {pixel_key} is pixel ({px}, {py}) of the world, outside the tile",
                    t.z,
                    t.x,
                    t.y,
                    self.size.px()
                ),
            ));
        }
        self.rows += rows;
        Ok(())
    }

    #[inline]
    fn add_world_pixel(&mut self, px: u32, py: u32, weight: f64) -> CoreResult<bool> {
        let bits = self.size.bits();
        if px >> bits != self.tile.x || py >> bits != self.tile.y {
            return Ok(false);
        }
        let mask = (self.size.px() - 1) as usize;
        let slot = &mut self.values[z_index(px as usize & mask, py as usize & mask)];
        Self::add_fixed(slot, fixed_weight(weight))?;
        Ok(true)
    }

    /// Add another grid of the same tile and size, pixel by pixel.
    pub fn merge(&mut self, other: &HeatGrid) -> CoreResult<()> {
        self.add_signed(other, 1.0)
    }

    /// Add `sign` times another grid of the same tile (+1 adds rows, -1 takes a delta away).
    /// Sums are exact, so taking away rows that went in leaves what the others give; more taken
    /// away than is there (a delta against other data) stops at zero, never negative.
    pub fn add_signed(&mut self, other: &HeatGrid, sign: f64) -> CoreResult<()> {
        self.check_tile(
            other.tile.z as i32,
            other.tile.x as i32,
            other.tile.y as i32,
            other.size,
        )?;
        other.check_sums()?;
        if sign >= 0.0 {
            for (a, b) in self.values.iter_mut().zip(&other.values) {
                Self::add_fixed(a, *b)?;
            }
        } else {
            for (a, b) in self.values.iter_mut().zip(&other.values) {
                *a = (*a - *b).max(0);
            }
        }
        if sign >= 0.0 {
            self.rows += other.rows;
        } else {
            self.rows = self.rows.saturating_sub(other.rows);
        }
        Ok(())
    }

    /// Add a child tile (one zoom deeper, same size) into its quadrant of this tile, each 2x2
    /// block of its pixels summed into one pixel. In Morton order a child's 2x2 blocks are four
    /// consecutive values and its quadrant is the top two bits of this tile's pixel index.
    pub fn add_child(&mut self, child: &HeatGrid) -> CoreResult<()> {
        let (p, c) = (self.tile, child.tile);
        if c.z != p.z + 1 || c.x >> 1 != p.x || c.y >> 1 != p.y || child.size != self.size {
            return Err(CoreError::out_of_range(
                "child tile",
                format!(
                    "({}, {}, {}) is not a child of ({}, {}, {}) at the same size",
                    c.z, c.x, c.y, p.z, p.x, p.y
                ),
            ));
        }
        let quarter = self.values.len() / 4;
        let quadrant = ((c.x & 1) | ((c.y & 1) << 1)) as usize * quarter;
        for (parent, block) in self.values[quadrant..quadrant + quarter]
            .iter_mut()
            .zip(child.values.chunks_exact(4))
        {
            let sum = block.iter().try_fold(*parent, |s, &b| s.checked_add(b));
            *parent = sum.ok_or_else(too_much_heat)?;
        }
        self.rows += child.rows;
        Ok(())
    }

    /// The values in storage order, for statistics where pixel order does not matter.
    pub fn values_unordered(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.values.iter().map(|&v| heat_of(v))
    }

    /// The distinct lit (> 0) heat values, ascending, each with how many pixels hold it: what
    /// `Cdf::of(self.values_unordered())` counts, counted on the fixed-point sums in a hash
    /// table (a tile of counts holds tens of thousands of lit pixels but few distinct values).
    pub fn lit_counted(&self) -> Vec<(f64, u64)> {
        let mut table = SumCounts::default();
        // Runs of equal sums (along a path, in Morton order) count at once.
        let mut run = (0i64, 0u64);
        for &v in self.values.iter().filter(|&&v| v > 0) {
            if v == run.0 {
                run.1 += 1;
            } else {
                table.add(run.0, run.1);
                run = (v, 1);
            }
        }
        table.add(run.0, run.1);
        let mut sums = table.into_pairs();
        sums.sort_unstable();
        // Equal sums listed twice, and sums near 2^53 millionths and past that meet at one f64,
        // count as one value.
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(sums.len());
        for (v, n) in sums {
            let h = heat_of(v);
            match out.last_mut() {
                Some(last) if last.0 == h => last.1 += n,
                _ => out.push((h, n)),
            }
        }
        out
    }

    /// Pixels with heat.
    pub fn lit(&self) -> usize {
        self.values.iter().filter(|&&v| v > 0).count()
    }

    /// No pixel has heat (rows may still have gone in).
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(|&v| v == 0)
    }

    /// Serialise: a 32-byte header then dense values, or (index, value) pairs when that is smaller.
    pub fn to_bytes(&self) -> Vec<u8> {
        let lit = self.lit();
        let sparse = lit * 12 < self.values.len() * 8;
        let body = if sparse {
            lit * 12
        } else {
            self.values.len() * 8
        };
        let mut out = Vec::with_capacity(HEADER + body);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(sparse as u8);
        out.push(self.tile.z as u8);
        out.push((self.size == TileSize::Px512) as u8);
        out.extend_from_slice(&self.tile.x.to_le_bytes());
        out.extend_from_slice(&self.tile.y.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&(lit as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        if sparse {
            for (i, &v) in self.values.iter().enumerate().filter(|(_, v)| **v > 0) {
                out.extend_from_slice(&(i as u32).to_le_bytes());
                out.extend_from_slice(&heat_of(v).to_le_bytes());
            }
        } else {
            for &v in &self.values {
                out.extend_from_slice(&heat_of(v).to_le_bytes());
            }
        }
        out
    }

    /// Decode [`HeatGrid::to_bytes`]. Untrusted input: a bad header, length or pixel index, or a
    /// negative, non-finite or too large value is an error, never a panic. Values are read to the
    /// nearest millionth (what any grid written from millionths holds exactly).
    pub fn from_bytes(bytes: &[u8]) -> CoreResult<HeatGrid> {
        let bad = |why: &str| CoreError::out_of_range("heat grid", format!("is not valid: {why}"));
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(bad("no heat grid header"));
        }
        if bytes[4] != VERSION {
            return Err(bad("unknown version"));
        }
        // Flags are 0 or 1 and the padding is zero, as written: anything else is corruption.
        if bytes[5] > 1 || bytes[7] > 1 || bytes[28..32] != [0; 4] {
            return Err(bad("corrupt header"));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let sparse = bytes[5] == 1;
        let size = if bytes[7] == 1 {
            TileSize::Px512
        } else {
            TileSize::Px256
        };
        let tile = Tile::new(bytes[6] as i32, u32_at(8) as i32, u32_at(12) as i32)?;
        let mut rows = [0u8; 8];
        rows.copy_from_slice(&bytes[16..24]);
        let lit = u32_at(24) as usize;
        let mut grid = HeatGrid::new(tile, size)?;
        grid.rows = u64::from_le_bytes(rows);
        let body = &bytes[HEADER..];
        let fixed_at = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let v = f64::from_le_bytes(a);
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad("values must be finite and non-negative"));
            }
            if v > MAX_HEAT {
                return Err(too_much_heat());
            }
            Ok(fixed_weight(v))
        };
        if sparse {
            if body.len() != lit * 12 {
                return Err(bad("wrong length"));
            }
            for pair in body.chunks_exact(12) {
                let i = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
                let slot = grid
                    .values
                    .get_mut(i)
                    .ok_or_else(|| bad("pixel index out of range"))?;
                *slot = fixed_at(&pair[4..])?;
            }
        } else {
            if body.len() != grid.values.len() * 8 {
                return Err(bad("wrong length"));
            }
            for (slot, b) in grid.values.iter_mut().zip(body.chunks_exact(8)) {
                *slot = fixed_at(b)?;
            }
        }
        Ok(grid)
    }

    /// A compact form for partial grids in transit (aggregate states between processes and
    /// Citus nodes) and for the counts pyramids store: header, then the sums as varints divided by their greatest common divisor
    /// (so counts take a byte or two), in runs of zeros and non-zeros. Exact: the same sums
    /// come back.
    pub fn to_compact_bytes(&self) -> Vec<u8> {
        // One pass over the grid (it is larger than a core's cache): the runs and the lit
        // values, and the OR of those. Runs are found 64 pixels at a time from a bit mask of
        // the lit ones (thin lines make thousands of short runs a tile).
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut lit: Vec<u64> = Vec::new();
        let mut or = 0u64;
        let (mut in_lit, mut zeros, mut count) = (false, 0u64, 0u64);
        for chunk in self.values.chunks(64) {
            let m = chunk.len() as u32;
            let mut mask = 0u64;
            for (k, &v) in chunk.iter().enumerate() {
                mask |= ((v != 0) as u64) << k;
                or |= v as u64;
            }
            let mut pos = 0u32;
            while pos < m {
                if in_lit {
                    let l = (mask >> pos).trailing_ones().min(m - pos);
                    lit.extend(
                        chunk[pos as usize..(pos + l) as usize]
                            .iter()
                            .map(|&v| v as u64),
                    );
                    count += l as u64;
                    pos += l;
                    if pos < m {
                        runs.push((zeros, count));
                        (in_lit, zeros) = (false, 0);
                    }
                } else {
                    let z = ((!mask) >> pos).trailing_ones().min(m - pos);
                    zeros += z as u64;
                    pos += z;
                    if pos < m {
                        (in_lit, count) = (true, 0);
                    }
                }
            }
        }
        runs.push((zeros, if in_lit { count } else { 0 }));
        // The divisor: its power of two from the OR, its odd part from the values until it
        // reaches 1 (within a few values for counts of whole rows).
        let shift = if or == 0 { 0 } else { or.trailing_zeros() };
        let mut odd = 0u64;
        for &v in &lit {
            let o = v >> shift;
            odd = if odd == 0 {
                o
            } else if o.is_multiple_of(odd) {
                odd
            } else {
                gcd(odd, o)
            };
            if odd == 1 {
                break;
            }
        }
        let odd = odd.max(1);
        let gcd = odd << shift;
        // Every value is a multiple of the divisor: dividing by its odd part is multiplying by
        // that part's inverse modulo 2^64 (Newton's iteration; each step doubles the bits
        // right), with no division per value.
        let inverse = (0..5).fold(odd, |x, _| {
            x.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(x)))
        });
        debug_assert_eq!(odd.wrapping_mul(inverse), 1);
        let mut out = Vec::with_capacity(32 + runs.len() * 2 + lit.len() * 2);
        out.extend_from_slice(COMPACT_MAGIC);
        out.push(VERSION);
        out.push((self.size == TileSize::Px512) as u8);
        out.push(self.tile.z as u8);
        put_varint(&mut out, self.tile.x as u64);
        put_varint(&mut out, self.tile.y as u64);
        put_varint(&mut out, self.rows);
        put_varint(&mut out, gcd);
        let mut values = lit.iter();
        for &(zeros, count) in &runs {
            put_varint(&mut out, zeros);
            put_varint(&mut out, count);
            for &v in values.by_ref().take(count as usize) {
                put_varint(&mut out, (v >> shift).wrapping_mul(inverse));
            }
        }
        out
    }

    /// What a pyramid stores: the compact form compressed with zstd (magic `VTHZ`, then a
    /// zstd frame), about 0.55 of it where TOAST's lz4 left 0.85.
    pub fn to_stored_bytes(&self) -> Vec<u8> {
        let mut out = STORED_MAGIC.to_vec();
        out.extend_from_slice(&crate::encoding::stored::compress(&self.to_compact_bytes()));
        out
    }

    /// Decode a grid stored in any form, [`HeatGrid::to_stored_bytes`],
    /// [`HeatGrid::to_compact_bytes`] or [`HeatGrid::to_bytes`] (told apart by their magic
    /// bytes): pyramids store the first and read tiles written by earlier versions in the
    /// others. A frame that does not inflate, or inflates past any grid's size, is an error.
    pub fn from_stored_bytes(bytes: &[u8]) -> CoreResult<HeatGrid> {
        if let Some(frame) = bytes.strip_prefix(STORED_MAGIC) {
            let compact =
                crate::encoding::stored::inflate(frame, MAX_COMPACT_BYTES).ok_or_else(|| {
                    CoreError::out_of_range("heat state", "is not valid: a corrupt frame")
                })?;
            Self::from_compact_bytes(&compact)
        } else if bytes.starts_with(COMPACT_MAGIC) {
            Self::from_compact_bytes(bytes)
        } else {
            Self::from_bytes(bytes)
        }
    }

    /// Decode [`HeatGrid::to_compact_bytes`]. Untrusted input: a bad header, a run past the
    /// grid's end, a zero in a run of non-zeros, a sum past `i64::MAX` or bytes left over are
    /// errors, never a panic.
    pub fn from_compact_bytes(bytes: &[u8]) -> CoreResult<HeatGrid> {
        let bad = |why: &str| CoreError::out_of_range("heat state", format!("is not valid: {why}"));
        if bytes.len() < 7 || &bytes[..4] != COMPACT_MAGIC {
            return Err(bad("no heat state header"));
        }
        if bytes[4] != VERSION {
            return Err(bad("unknown version"));
        }
        if bytes[5] > 1 {
            return Err(bad("corrupt header"));
        }
        let size = if bytes[5] == 1 {
            TileSize::Px512
        } else {
            TileSize::Px256
        };
        let mut at = 6;
        let z = bytes[at] as i32;
        at += 1;
        let mut next = |what: &str| get_varint(bytes, &mut at).ok_or_else(|| bad(what));
        let x = next("tile x")?;
        let y = next("tile y")?;
        let (x, y) = (
            i32::try_from(x).map_err(|_| bad("tile x"))?,
            i32::try_from(y).map_err(|_| bad("tile y"))?,
        );
        let mut grid = HeatGrid::new(Tile::new(z, x, y)?, size)?;
        grid.rows = next("rows")?;
        let gcd = next("divisor")?;
        if gcd == 0 || gcd > i64::MAX as u64 {
            return Err(bad("divisor"));
        }
        let n = grid.values.len();
        let mut i = 0;
        while i < n {
            let zeros = next("run")? as usize;
            let lit = next("run")? as usize;
            if zeros > n - i || lit > n - i - zeros {
                return Err(bad("a run past the end of the grid"));
            }
            i += zeros;
            if zeros == 0 && lit == 0 {
                return Err(bad("an empty run"));
            }
            for slot in &mut grid.values[i..i + lit] {
                let v = next("value")?;
                let sum = v
                    .checked_mul(gcd)
                    .filter(|&s| s > 0 && s <= i64::MAX as u64);
                *slot = sum.ok_or_else(too_much_heat)? as i64;
            }
            i += lit;
        }
        if at != bytes.len() {
            return Err(bad("bytes after the last run"));
        }
        Ok(grid)
    }

    /// Statistics of the grid: rows, lit pixels, total heat, max, and percentiles of lit pixels.
    pub fn stats(&self) -> HeatStats {
        let mut lit: Vec<f64> = self.values_unordered().filter(|&v| v > 0.0).collect();
        // (Order does not matter for statistics: no need to go row by row.)
        lit.sort_unstable_by(|a, b| a.total_cmp(b));
        let q = |p: f64| -> f64 {
            if lit.is_empty() {
                return 0.0;
            }
            lit[((lit.len() - 1) as f64 * p).round() as usize]
        };
        HeatStats {
            rows: self.rows,
            pixels: self.values.len() as u64,
            lit: lit.len() as u64,
            total: self.values.iter().map(|&v| v as i128).sum::<i128>() as f64 / HEAT_SCALE,
            max: lit.last().copied().unwrap_or(0.0),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
        }
    }
}

/// Summary of a [`HeatGrid`] (see [`HeatGrid::stats`]). Percentiles are nearest-rank over the
/// lit pixels only, 0 when none is lit.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatStats {
    /// Rows that went in.
    pub rows: u64,
    /// Pixels in the grid (lit or not).
    pub pixels: u64,
    /// Pixels with heat > 0.
    pub lit: u64,
    /// Sum of all heat.
    pub total: f64,
    /// Largest heat; 0 when none is lit.
    pub max: f64,
    /// Median heat of lit pixels.
    pub p50: f64,
    /// 90th percentile of lit pixels' heat.
    pub p90: f64,
    /// 99th percentile of lit pixels' heat.
    pub p99: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_pixel_inverts_tile_index() {
        for (x, y) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (255, 255),
            (511, 0),
            (0, 511),
            (511, 511),
            (300, 77),
        ] {
            assert_eq!(tile_pixel(tile_index(x, y) as u32), (x, y));
        }
    }
    use proptest::prelude::*;

    fn tile() -> Tile {
        Tile::new(4, 4, 6).unwrap()
    }

    #[test]
    fn counts_land_in_their_pixel() {
        let mut g = HeatGrid::new(tile(), TileSize::Px256).unwrap();
        let (x0, y0, _, _) = tile().vcs_bounds();
        let unit = 1i64 << (31 - 12); // VCS units per z4 pixel
        let (x, y) = ((x0 + 10 * unit + 5) as i32, (y0 + 20 * unit) as i32);
        g.add_point(x, y, 1.0).unwrap();
        g.add_point(x, y, 2.5).unwrap();
        g.add_key(morton_interleave(x as u32, y as u32) as i64, 1.0)
            .unwrap();
        g.add_point(0, 0, 1.0).unwrap(); // outside: ignored, not counted
        assert_eq!(g.values()[20 * 256 + 10], 4.5);
        assert_eq!((g.rows, g.lit()), (3, 1));
    }

    proptest! {
        /// Values counted on the sums describe the pixels `Cdf::of` counts: few or many distinct
        /// values, weights, and sums near 2^53 millionths and past it that meet at one f64.
        #[test]
        fn lit_counts_are_the_cdf_of_the_values(
            pixels in prop::collection::vec((0u32..256, 0u32..256, 0u32..4000), 0..3000),
            big in any::<bool>(),
        ) {
            use crate::pyramid::cdf::Cdf;
            let mut g = HeatGrid::new(tile(), TileSize::Px256).unwrap();
            {
                let mut add = |x, y, w: f64| {
                    let mut a = g.pixel_adder(fixed_weight(w));
                    a.add(x, y);
                };
                for &(x, y, w) in &pixels {
                    let w = if big { 1e12 - w as f64 * 1e-4 } else { (w % 40) as f64 * 0.25 };
                    add(x, y, w);
                }
            }
            g.check_sums().unwrap();
            let counted = Cdf::of_counted(g.lit_counted());
            prop_assert_eq!(counted, Cdf::of(g.values_unordered()));
        }
    }

    /// More distinct values than the counting table holds: the rest are listed and merged.
    #[test]
    fn many_distinct_values_count_as_the_cdf_does() {
        use crate::pyramid::cdf::Cdf;
        let mut g = HeatGrid::new(tile(), TileSize::Px256).unwrap();
        for i in 0..65_536u32 {
            // 30,000 distinct weights, each value held by two pixels or more.
            let w = 1.0 + (i % 30_000) as f64 * 0.001;
            g.pixel_adder(fixed_weight(w)).add(i % 256, i / 256);
        }
        let counted = g.lit_counted();
        assert_eq!(counted.len(), 30_000);
        assert_eq!(Cdf::of_counted(counted), Cdf::of(g.values_unordered()));
    }

    #[test]
    fn bad_weights_and_points_are_errors() {
        let mut g = HeatGrid::new(tile(), TileSize::Px256).unwrap();
        for w in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(g.add_point(1, 1, w).is_err(), "{w}");
        }
        assert!(g.add_point(-1, 1, 1.0).is_err());
        assert!(g.add_key(-1, 1.0).is_err());
        assert!(g.check_tile(4, 4, 6, TileSize::Px512).is_err());
        assert!(HeatGrid::from_bytes(b"VTHG").is_err());
        assert!(HeatGrid::from_bytes(&[0; 40]).is_err());
        // Header flags other than 0 / 1 and non-zero padding are corruption.
        let good = HeatGrid::new(tile(), TileSize::Px256).unwrap().to_bytes();
        assert!(HeatGrid::from_bytes(&good).is_ok());
        for (at, v) in [(5, 2), (7, 2), (28, 1), (31, 0x80)] {
            let mut bad = good.clone();
            bad[at] = v;
            assert!(HeatGrid::from_bytes(&bad).is_err(), "byte {at} = {v}");
        }
    }

    #[test]
    fn pixel_keys_outside_the_tile_are_errors_not_dropped() {
        let mut g = HeatGrid::new(tile(), TileSize::Px256).unwrap();
        // Pixel (10, 20) of tile (4, 4, 6) at zoom 4: world pixel (4 * 256 + 10, 6 * 256 + 20).
        let inside = morton_interleave(4 * 256 + 10, 6 * 256 + 20) as i64;
        g.add_pixel_key(inside, 2.0, 1).unwrap();
        assert_eq!((g.values()[20 * 256 + 10], g.rows), (2.0, 1));
        let outside = morton_interleave(3 * 256 + 10, 6 * 256 + 20) as i64;
        let err = g.add_pixel_key(outside, 1.0, 1).unwrap_err().to_string();
        assert!(
            err.starts_with("pixel_keys must be pixels of tile (4, 4, 6)"),
            "{err}"
        );
        for bad in [-1, 1i64 << 24] {
            assert!(g.add_pixel_key(bad, 1.0, 1).is_err());
        }
        assert!(g.add_pixel_key(inside, f64::NAN, 1).is_err());
        assert_eq!((g.values()[20 * 256 + 10], g.rows), (2.0, 1));
    }

    #[test]
    fn weighted_sums_do_not_depend_on_row_order_and_read_back_as_written() {
        let t = tile();
        let (x0, y0, _, _) = t.vcs_bounds();
        let rows: Vec<(i32, i32, f64)> = (0..5000u64)
            .map(|i| {
                let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let (px, py) = ((h >> 40) % 8, (h >> 20) % 8);
                let w = [0.1, 1.0 / 3.0, 2.5e-3, 7e5, 1e-7][(h % 5) as usize];
                (
                    (x0 + (px << 19) as i64) as i32,
                    (y0 + (py << 19) as i64) as i32,
                    w,
                )
            })
            .collect();
        let grid_of = |rows: &mut dyn Iterator<Item = &(i32, i32, f64)>| {
            let mut g = HeatGrid::new(t, TileSize::Px256).unwrap();
            for &(x, y, w) in rows {
                g.add_point(x, y, w).unwrap();
            }
            g
        };
        let forward = grid_of(&mut rows.iter());
        let backward = grid_of(&mut rows.iter().rev());
        assert_eq!(forward.to_bytes(), backward.to_bytes());
        // In three parts merged in another order: the same bytes (float sums differ here).
        let mut parts: Vec<HeatGrid> = (0..3)
            .map(|k| grid_of(&mut rows.iter().skip(k).step_by(3)))
            .collect();
        let (c, b) = (parts.pop().unwrap(), parts.pop().unwrap());
        let mut merged = c;
        merged.merge(&b).unwrap();
        merged.merge(&parts[0]).unwrap();
        assert_eq!(merged.to_bytes(), forward.to_bytes());
        // Summed as floats, the same rows give different totals in the two orders.
        let forward_f: f64 = rows.iter().map(|r| r.2).sum();
        let backward_f: f64 = rows.iter().rev().map(|r| r.2).sum();
        assert_ne!(
            forward_f, backward_f,
            "the rows would not show order dependence"
        );
        // Taking rows away again leaves exactly the grid of the others.
        let mut minus = forward.clone();
        minus
            .add_signed(&grid_of(&mut rows.iter().skip(1).step_by(3)), -1.0)
            .unwrap();
        let rest: Vec<_> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 1)
            .map(|(_, r)| *r)
            .collect();
        assert_eq!(minus.values(), grid_of(&mut rest.iter()).values());
        // A weight of 0.1 reads back as 0.1; too large a weight or sum is an error.
        let mut g = HeatGrid::new(t, TileSize::Px256).unwrap();
        g.add_point(x0 as i32, y0 as i32, 0.1).unwrap();
        assert_eq!(g.values()[0], 0.1);
        assert!(g.add_point(x0 as i32, y0 as i32, 2e12).is_err());
        for _ in 0..9 {
            g.add_point(x0 as i32, y0 as i32, 1e12).unwrap();
        }
        assert!(g.add_point(x0 as i32, y0 as i32, 1e12).is_err());
    }

    #[test]
    fn stored_bytes_are_read_in_either_form() {
        let mut g = HeatGrid::new(Tile::new(9, 3, 4).unwrap(), TileSize::Px256).unwrap();
        for i in 0..5000i64 {
            g.add_key(Tile::new(9, 3, 4).unwrap().key_range().0 + i * i * 977, 1.5)
                .unwrap();
        }
        assert!(g.rows > 0);
        assert_eq!(HeatGrid::from_stored_bytes(&g.to_bytes()).unwrap(), g);
        assert_eq!(
            HeatGrid::from_stored_bytes(&g.to_compact_bytes()).unwrap(),
            g
        );
        assert!(HeatGrid::from_stored_bytes(b"VTHC").is_err());
        assert!(HeatGrid::from_stored_bytes(b"").is_err());
        // The compressed form: a damaged frame is an error, and one inflating past any grid's
        // compact bytes is refused before it is held.
        let stored = g.to_stored_bytes();
        assert_eq!(HeatGrid::from_stored_bytes(&stored).unwrap(), g);
        for cut in 4..stored.len() {
            assert!(
                HeatGrid::from_stored_bytes(&stored[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut bomb = STORED_MAGIC.to_vec();
        bomb.extend(crate::encoding::stored::compress(&vec![
            0u8;
            MAX_COMPACT_BYTES
                + 1
        ]));
        assert!(HeatGrid::from_stored_bytes(&bomb).is_err());
    }

    #[test]
    fn compact_bytes_refuse_corruption() {
        let t = tile();
        let (x0, y0, _, _) = t.vcs_bounds();
        let mut g = HeatGrid::new(t, TileSize::Px256).unwrap();
        g.add_point(x0 as i32, y0 as i32, 2.0).unwrap();
        g.add_point(x0 as i32 + (7 << 19), y0 as i32, 4.0).unwrap();
        let good = g.to_compact_bytes();
        assert_eq!(HeatGrid::from_compact_bytes(&good).unwrap(), g);
        // Counts are stored divided by their common divisor: a byte or two each.
        assert!(good.len() < 40, "{}", good.len());
        for cut in 0..good.len() {
            assert!(
                HeatGrid::from_compact_bytes(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(HeatGrid::from_compact_bytes(&extra).is_err());
        // Every single-byte change decodes to an error or to some valid grid, never a panic.
        for at in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[at] = v;
                let _ = HeatGrid::from_compact_bytes(&b);
            }
        }
        // A run past the end, an empty run, a zero divisor.
        let empty = HeatGrid::new(t, TileSize::Px256)
            .unwrap()
            .to_compact_bytes();
        assert!(HeatGrid::from_compact_bytes(&empty).is_ok());
        let header = &empty[..empty.len() - 4];
        for tail in [
            &[0x81, 0x80, 0x04, 0x00][..],
            &[0, 0][..],
            &[0x80, 0x80, 0x04, 0x01, 0x00][..],
        ] {
            let mut b = header.to_vec();
            b.extend_from_slice(tail);
            assert!(HeatGrid::from_compact_bytes(&b).is_err(), "{tail:?}");
        }
    }

    proptest! {
        #[test]
        fn compact_bytes_round_trip(
            pts in prop::collection::vec((0u32..256, 0u32..256, 0u32..5, any::<bool>()), 0..2000),
            size512 in any::<bool>()
        ) {
            let size = if size512 { TileSize::Px512 } else { TileSize::Px256 };
            let t = tile();
            let (x0, y0, _, _) = t.vcs_bounds();
            let unit = 1i64 << (31 - 12 - size512 as i64);
            let mut g = HeatGrid::new(t, size).unwrap();
            for &(px, py, w, frac) in &pts {
                let (x, y) = ((x0 + px as i64 * unit) as i32, (y0 + py as i64 * unit) as i32);
                g.add_point(x, y, w as f64 + if frac { 0.25 } else { 0.0 }).unwrap();
            }
            prop_assert_eq!(HeatGrid::from_compact_bytes(&g.to_compact_bytes()).unwrap(), g.clone());
            prop_assert_eq!(HeatGrid::from_stored_bytes(&g.to_stored_bytes()).unwrap(), g);
        }

        #[test]
        fn bytes_round_trip_and_merge_is_addition(
            pts in prop::collection::vec((0u32..256, 0u32..256, 0u32..5), 0..3000),
            size512 in any::<bool>()
        ) {
            let size = if size512 { TileSize::Px512 } else { TileSize::Px256 };
            let t = tile();
            let (x0, y0, _, _) = t.vcs_bounds();
            let unit = 1i64 << (31 - 12 - size512 as i64);
            let mut whole = HeatGrid::new(t, size).unwrap();
            let mut a = whole.clone();
            let mut b = whole.clone();
            for (i, &(px, py, w)) in pts.iter().enumerate() {
                let (x, y) = ((x0 + px as i64 * unit) as i32, (y0 + py as i64 * unit) as i32);
                whole.add_point(x, y, w as f64).unwrap();
                if i % 3 == 0 { a.add_point(x, y, w as f64).unwrap() } else { b.add_point(x, y, w as f64).unwrap() }
            }
            let back = HeatGrid::from_bytes(&whole.to_bytes()).unwrap();
            prop_assert_eq!(&back, &whole);
            a.merge(&HeatGrid::from_bytes(&b.to_bytes()).unwrap()).unwrap();
            prop_assert_eq!(&a, &whole);
        }
    }
}

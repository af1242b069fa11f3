//! Point tiles: each distinct pixel of a tile drawn once as an antialiased dot.
//!
//! The 2013 article's DISTINCT: many points fall in one pixel once zoomed out, and drawing the pixel
//! once is the big win. `PixelSet` is that DISTINCT (a bitset over the tile and a margin ring, so
//! dots centred just outside the tile still reach into it and tiles join without cut dots);
//! `render_dots` stamps a precomputed disc mask at each lit pixel and composites it "over" with
//! the dot colour, which is commutative for one colour, so the result does not depend on row order.

use crate::encoding::png::{encode_indexed, Effort, RgbaImage};
use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::{check_point, morton_deinterleave, PixelGrid, Tile, TileSize};
use crate::style::StyleReader;

/// Largest dot radius in pixels: a dot wider than a quarter of a 512-px tile is a mistake.
pub const MAX_RADIUS: f64 = 64.0;
/// Subsamples per pixel side when measuring the disc's coverage.
const SUBSAMPLES: usize = 8;

/// How to draw the dots of a point tile.
#[derive(Clone, Debug, PartialEq)]
pub struct DotStyle {
    /// Disc radius in output pixels; 0 draws single pixels.
    pub radius: f64,
    /// Straight RGBA; the alpha is each dot's opacity.
    pub color: [u8; 4],
    /// Output tile size.
    pub size: TileSize,
}

impl DotStyle {
    /// The JSON keys [`DotStyle::from_json`] accepts.
    pub const KEYS: [&'static str; 4] = ["radius", "color", "opacity", "size"];
    /// Opaque `#1f77b4` (matplotlib's first colour).
    pub const DEFAULT_COLOR: [u8; 4] = [0x1f, 0x77, 0xb4, 0xff];

    /// Read `{"radius": 1, "color": "#1f77b4", "opacity": 1, "size": 256}`; all keys optional.
    pub fn from_json(style: &serde_json::Value) -> CoreResult<DotStyle> {
        let mut r = StyleReader::new(style)?;
        let radius = r.number("radius", 1.0, 0.0, MAX_RADIUS)?;
        let mut color = r.color("color", Self::DEFAULT_COLOR)?;
        let opacity = r.number("opacity", 1.0, 0.0, 1.0)?;
        color[3] = (color[3] as f64 * opacity).round() as u8;
        let size = r.tile_size("size")?;
        r.finish(&Self::KEYS)?;
        Ok(DotStyle {
            radius,
            color,
            size,
        })
    }

    /// Pixels a dot reaches beyond its own: the margin a tile must read around itself.
    pub fn reach(&self) -> u32 {
        // The nearest subsample of a pixel d away from the centre is d - (1/2 - 1/(2 SUBSAMPLES)).
        let nearest = 0.5 - 0.5 / SUBSAMPLES as f64;
        (self.radius + nearest).floor() as u32
    }
}

/// The distinct pixels of one tile and of a ring `margin` pixels wide around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixelSet {
    /// The tile the set is for.
    pub tile: Tile,
    /// Its output size: the pixels are those of this size's grid.
    pub size: TileSize,
    /// Width in pixels of the ring kept around the tile, at most half the tile size.
    pub margin: u32,
    grid: PixelGrid,
    /// World pixel of the set's top-left corner (the tile's corner minus the margin).
    origin: (i64, i64),
    /// Pixels per side: tile size plus twice the margin.
    side: u32,
    bits: Vec<u64>,
    count: usize,
}

impl PixelSet {
    /// Bytes the set holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.bits.len() * 8
    }

    /// An empty set; errors when the tile is too deep for `size` or `margin` is over half a tile.
    pub fn new(tile: Tile, size: TileSize, margin: u32) -> CoreResult<PixelSet> {
        let grid = PixelGrid::new(tile.z, size)?;
        if margin > size.px() / 2 {
            return Err(CoreError::out_of_range(
                "margin",
                format!("must be at most half the tile size, got {margin}"),
            ));
        }
        let side = size.px() + 2 * margin;
        let (ox, oy) = tile.origin_px(size);
        let words = (side as usize * side as usize).div_ceil(64);
        Ok(PixelSet {
            tile,
            size,
            margin,
            grid,
            origin: (ox - margin as i64, oy - margin as i64),
            side,
            bits: vec![0; words],
            count: 0,
        })
    }

    /// Add the pixel of a VCS point; returns false when it is outside the tile and its margin.
    #[inline]
    pub fn insert_vcs(&mut self, x: u32, y: u32) -> bool {
        self.insert_world_pixel(self.grid.pixel(x) as i64, self.grid.pixel(y) as i64)
    }

    /// Add the pixel of a point given by its Morton key (which must be valid: 0 .. 2^62).
    #[inline]
    pub fn insert_key(&mut self, key: i64) -> bool {
        self.insert_pixel_key(self.grid.pixel_key(key))
    }

    /// Add a pixel given by its pixel key (`PixelGrid::pixel_key` of this set's grid).
    #[inline]
    pub fn insert_pixel_key(&mut self, pixel_key: i64) -> bool {
        if !(0..1i64 << (2 * self.grid.level)).contains(&pixel_key) {
            return false;
        }
        let (px, py) = morton_deinterleave(pixel_key as u64);
        self.insert_world_pixel(px as i64, py as i64)
    }

    #[inline]
    fn insert_world_pixel(&mut self, px: i64, py: i64) -> bool {
        let (cx, cy) = (px - self.origin.0, py - self.origin.1);
        let side = self.side as i64;
        if cy < 0 || cy >= side {
            return false;
        }
        // The world wraps at +-180: a tile at the map's east or west edge keeps in its ring the
        // pixels across the antimeridian (at z0 and z1 the ring may even meet the tile again).
        let world = 1i64 << self.grid.level;
        if self.origin.0 >= 0 && self.origin.0 + side <= world {
            if !(0..side).contains(&cx) {
                return false;
            }
            self.set(cx, cy);
            return true;
        }
        let mut cx = cx.rem_euclid(world);
        let mut any = false;
        while cx < side {
            self.set(cx, cy);
            any = true;
            cx += world;
        }
        any
    }

    #[inline]
    fn set(&mut self, cx: i64, cy: i64) {
        let i = (cy * self.side as i64 + cx) as usize;
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.count += 1;
        }
    }

    /// Number of distinct pixels, margin included.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No pixel set, margin included.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of distinct pixels inside the tile proper.
    pub fn len_in_tile(&self) -> usize {
        let s = self.size.px() as i32;
        self.pixels()
            .filter(|&(x, y)| x >= 0 && y >= 0 && x < s && y < s)
            .count()
    }

    /// Lit pixels relative to the tile's top-left corner (negative or beyond the tile in the margin).
    pub fn pixels(&self) -> impl Iterator<Item = (i32, i32)> + '_ {
        let (side, m) = (self.side as usize, self.margin as i32);
        self.bits.iter().enumerate().flat_map(move |(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let i = w * 64 + b;
                Some(((i % side) as i32 - m, (i / side) as i32 - m))
            })
        })
    }

    /// Union with another set of the same tile, size and margin (parallel aggregation).
    pub fn merge(&mut self, other: &PixelSet) -> CoreResult<()> {
        if (self.tile, self.size, self.margin) != (other.tile, other.size, other.margin) {
            return Err(CoreError::out_of_range(
                "tile",
                "must be the same for every row of one point tile".to_string(),
            ));
        }
        let mut count = 0;
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= *b;
            count += a.count_ones() as usize;
        }
        self.count = count;
        Ok(())
    }

    /// Compact bytes for the aggregate's serialise step: header then the bitset words.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.bits.len() * 8);
        for v in [
            self.tile.z,
            self.tile.x,
            self.tile.y,
            self.size.px(),
            self.margin,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decode [`PixelSet::to_bytes`]. Untrusted input: a bad header or a body of the wrong length
    /// is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> CoreResult<PixelSet> {
        let bad = || CoreError::out_of_range("pixel set", "is corrupt".to_string());
        let word = |i: usize| -> CoreResult<u32> {
            let b = bytes.get(i * 4..i * 4 + 4).ok_or_else(bad)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let tile = Tile::new(word(0)? as i32, word(1)? as i32, word(2)? as i32)?;
        let size = TileSize::from_px(word(3)? as i64)?;
        let mut set = PixelSet::new(tile, size, word(4)?)?;
        let body = &bytes[20..];
        if body.len() != set.bits.len() * 8 {
            return Err(bad());
        }
        for (w, chunk) in set.bits.iter_mut().zip(body.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        set.count = set.bits.iter().map(|w| w.count_ones() as usize).sum();
        Ok(set)
    }
}

/// State of the point-tile aggregate: the tile and style, fixed by the first row, and the
/// distinct pixels seen so far.
#[derive(Clone, Debug, PartialEq)]
pub struct DotTileState {
    /// Distinct pixels seen, with a margin of the dots' reach.
    pub set: PixelSet,
    /// How the dots are drawn.
    pub style: DotStyle,
}

impl DotTileState {
    /// Bytes the state holds on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.set.heap_bytes()
    }

    /// The state for tile (z, x, y) and a JSON dot style (see [`DotStyle::from_json`]).
    pub fn new(z: i32, x: i32, y: i32, style: &serde_json::Value) -> CoreResult<DotTileState> {
        let tile = Tile::new(z, x, y)?;
        let style = DotStyle::from_json(style)?;
        let set = PixelSet::new(tile, style.size, style.reach())?;
        Ok(DotTileState { set, style })
    }

    /// Every row of one aggregate must name the same tile.
    #[inline]
    pub fn check_tile(&self, z: i32, x: i32, y: i32) -> CoreResult<()> {
        let t = self.set.tile;
        if (t.z as i32, t.x as i32, t.y as i32) == (z, x, y) {
            Ok(())
        } else {
            Err(CoreError::out_of_range(
                "tile",
                format!(
                    "must be the same in every row of one point tile: started as ({}, {}, {}), got ({z}, {x}, {y})",
                    t.z, t.x, t.y
                ),
            ))
        }
    }

    /// Add a VCS point; points outside the tile and its margin are ignored.
    #[inline]
    pub fn add_point(&mut self, x: i32, y: i32) -> CoreResult<()> {
        let (x, y) = check_point(x, y)?;
        self.set.insert_vcs(x, y);
        Ok(())
    }

    /// Add a point by its Morton key; points outside the tile and its margin are ignored.
    #[inline]
    pub fn add_key(&mut self, key: i64) -> CoreResult<()> {
        if !(0..1i64 << 62).contains(&key) {
            return Err(CoreError::out_of_range(
                "Morton key",
                format!("must be between 0 and 2^62 - 1, got {key}"),
            ));
        }
        self.set.insert_key(key);
        Ok(())
    }

    /// Union with another partial state of the same tile (parallel aggregation).
    pub fn merge(&mut self, other: &DotTileState) -> CoreResult<()> {
        self.set.merge(&other.set)
    }

    /// Style (radius, colour) then the pixel set.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.style.radius.to_le_bytes().to_vec();
        out.extend_from_slice(&self.style.color);
        out.extend_from_slice(&self.set.to_bytes());
        out
    }

    /// Decode [`DotTileState::to_bytes`]. Untrusted input: an error, never a panic, when the
    /// radius is out of range or does not match the set's margin.
    pub fn from_bytes(bytes: &[u8]) -> CoreResult<DotTileState> {
        if bytes.len() < 12 {
            return Err(CoreError::out_of_range("point tile state", "is corrupt"));
        }
        let mut radius = [0u8; 8];
        radius.copy_from_slice(&bytes[..8]);
        let radius = f64::from_le_bytes(radius);
        let color = [bytes[8], bytes[9], bytes[10], bytes[11]];
        let set = PixelSet::from_bytes(&bytes[12..])?;
        let style = DotStyle {
            radius,
            color,
            size: set.size,
        };
        if !(0.0..=MAX_RADIUS).contains(&radius) || style.reach() != set.margin {
            return Err(CoreError::out_of_range("point tile state", "is corrupt"));
        }
        Ok(DotTileState { set, style })
    }

    /// The tile as PNG, or `None` when no dot shows in it.
    pub fn render_png(&self, on_progress: &mut dyn FnMut()) -> CoreResult<Option<Vec<u8>>> {
        if self.set.is_empty() {
            return Ok(None);
        }
        let tile = render_dots(&self.set, &self.style, on_progress);
        if tile.is_blank() {
            return Ok(None);
        }
        tile.encode(Effort::Fast).map(Some)
    }
}

/// Offsets and coverage (0..1] of a disc of `radius` centred on a pixel's centre.
fn disc_mask(radius: f64, reach: i32) -> Vec<(i32, i32, f32)> {
    let mut mask = Vec::new();
    let r2 = radius * radius;
    let step = 1.0 / SUBSAMPLES as f64;
    for dy in -reach..=reach {
        for dx in -reach..=reach {
            let mut hits = 0;
            for sy in 0..SUBSAMPLES {
                for sx in 0..SUBSAMPLES {
                    let ox = dx as f64 - 0.5 + (sx as f64 + 0.5) * step;
                    let oy = dy as f64 - 0.5 + (sy as f64 + 0.5) * step;
                    if ox * ox + oy * oy <= r2 {
                        hits += 1;
                    }
                }
            }
            // A dot always covers its own pixel, however small the radius.
            let coverage = if dx == 0 && dy == 0 {
                1.0
            } else {
                hits as f32 / (SUBSAMPLES * SUBSAMPLES) as f32
            };
            if coverage > 0.0 {
                mask.push((dx, dy, coverage));
            }
        }
    }
    mask
}

/// A tile of one colour at varying opacity: what a point tile is before it is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlphaTile {
    /// Pixels per side (the tile is square).
    pub size: u32,
    /// RGB of every lit pixel.
    pub color: [u8; 3],
    /// Opacity per pixel, rows top to bottom.
    pub alpha: Vec<u8>,
}

impl AlphaTile {
    /// Every pixel fully transparent.
    pub fn is_blank(&self) -> bool {
        self.alpha.iter().all(|&a| a == 0)
    }

    /// As straight RGBA, transparent black where the opacity is 0.
    pub fn to_rgba(&self) -> RgbaImage {
        let mut image = RgbaImage::transparent(self.size, self.size);
        let [r, g, b] = self.color;
        for (p, &a) in image.data.chunks_exact_mut(4).zip(&self.alpha) {
            if a > 0 {
                p.copy_from_slice(&[r, g, b, a]);
            }
        }
        image
    }

    /// Indexed PNG with one palette entry per opacity level in use (the article's paletted
    /// tile): no RGBA buffer and no colour search, ascending alpha so tRNS stays exact.
    pub fn encode(&self, effort: Effort) -> CoreResult<Vec<u8>> {
        let mut used = [false; 256];
        for &a in &self.alpha {
            used[a as usize] = true;
        }
        let [r, g, b] = self.color;
        let mut index_of = [0u8; 256];
        let mut palette: Vec<[u8; 4]> = Vec::with_capacity(256);
        for a in (0..256).filter(|&a| used[a]) {
            index_of[a] = palette.len() as u8;
            palette.push(if a == 0 { [0; 4] } else { [r, g, b, a as u8] });
        }
        let indices: Vec<u8> = self.alpha.iter().map(|&a| index_of[a as usize]).collect();
        encode_indexed(self.size, self.size, &indices, &palette, effort)
    }
}

/// Draw each pixel of the set as a dot. `on_progress` is called between chunks of dots so that a
/// caller inside PostgreSQL can honour cancellation; the core itself knows nothing of it.
pub fn render_dots(set: &PixelSet, style: &DotStyle, on_progress: &mut dyn FnMut()) -> AlphaTile {
    let s = set.size.px() as i32;
    let reach = style.reach() as i32;
    let alpha = style.color[3] as f32 / 255.0;
    // Each stamp multiplies the pixel's transmittance by (1 - alpha * coverage).
    let stamp: Vec<(i32, i32, f32)> = disc_mask(style.radius, reach)
        .into_iter()
        .map(|(dx, dy, c)| (dx, dy, 1.0 - alpha * c))
        .collect();
    let mut transmit = vec![1.0f32; (s * s) as usize];
    for (n, (px, py)) in set.pixels().enumerate() {
        if n % 4096 == 4095 {
            on_progress();
        }
        if px < -reach || py < -reach || px >= s + reach || py >= s + reach {
            continue;
        }
        for &(dx, dy, keep) in &stamp {
            let (x, y) = (px + dx, py + dy);
            if x >= 0 && y >= 0 && x < s && y < s {
                transmit[(y * s + x) as usize] *= keep;
            }
        }
    }
    // Round to nearest by adding 0.5 (values are non-negative): `f32::round` is a libm call on
    // baseline x86_64 and would dominate a sparse tile.
    let alpha = transmit
        .iter()
        .map(|&t| ((1.0 - t) * 255.0 + 0.5) as u8)
        .collect();
    let [r, g, b, _] = style.color;
    AlphaTile {
        size: s as u32,
        color: [r, g, b],
        alpha,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::vcs::{morton_interleave, Tile};
    use proptest::prelude::*;

    fn style(radius: f64) -> DotStyle {
        DotStyle {
            radius,
            color: [255, 0, 0, 255],
            size: TileSize::Px256,
        }
    }

    #[test]
    fn style_defaults_and_errors() {
        let s = DotStyle::from_json(&serde_json::json!({})).unwrap();
        assert_eq!(
            (s.radius, s.color, s.size),
            (1.0, DotStyle::DEFAULT_COLOR, TileSize::Px256)
        );
        let s = DotStyle::from_json(&serde_json::json!({"color": "red", "opacity": 0.5})).unwrap();
        assert_eq!(s.color, [255, 0, 0, 128]);
        for bad in [
            serde_json::json!({"radius": 65}),
            serde_json::json!({"radius": -0.1}),
            serde_json::json!({"opacity": 2}),
            serde_json::json!({"shape": "square"}),
        ] {
            assert!(DotStyle::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_zero_radius_dot_is_one_opaque_pixel() {
        let tile = Tile::new(0, 0, 0).unwrap();
        let mut set = PixelSet::new(tile, TileSize::Px256, 0).unwrap();
        // VCS units per z0 pixel: 2^23.
        assert!(set.insert_vcs(10 << 23, 20 << 23));
        assert!(set.insert_vcs((10 << 23) + 5, (20 << 23) + 7)); // same pixel
        assert_eq!(set.len(), 1);
        let img = render_dots(&set, &style(0.0), &mut || {}).to_rgba();
        assert_eq!(img.opaque_count(), 1);
        assert_eq!(img.pixel(10, 20), [255, 0, 0, 255]);
    }

    #[test]
    fn a_disc_is_round_and_antialiased() {
        let tile = Tile::new(0, 0, 0).unwrap();
        let mut set = PixelSet::new(tile, TileSize::Px256, 4).unwrap();
        set.insert_vcs(100 << 23, 100 << 23);
        let img = render_dots(&set, &style(3.0), &mut || {}).to_rgba();
        assert_eq!(img.pixel(100, 100)[3], 255);
        assert_eq!(img.pixel(102, 100)[3], 255);
        // The edge at distance 3 is partly covered, the corner at distance 4.2 not at all.
        let edge = img.pixel(103, 100)[3];
        assert!(edge > 64 && edge < 192, "{edge}");
        assert_eq!(img.pixel(103, 103)[3], 0);
        // Symmetric under the eight symmetries of the square.
        for (dx, dy) in [(1, 2), (2, 1), (3, 1), (0, 3)] {
            let a = img.pixel((100 + dx) as u32, (100 + dy) as u32);
            for (sx, sy) in [(-dx, dy), (dx, -dy), (-dx, -dy), (dy, dx), (-dy, -dx)] {
                assert_eq!(img.pixel((100 + sx) as u32, (100 + sy) as u32), a);
            }
        }
    }

    #[test]
    fn dots_in_the_margin_reach_into_the_tile() {
        let tile = Tile::new(1, 1, 0).unwrap();
        let s = style(2.0);
        let mut set = PixelSet::new(tile, TileSize::Px256, s.reach()).unwrap();
        // The last pixel column of tile (1, 0, 0) is world pixel 255 at z1.
        let unit = 1u32 << (31 - 9);
        assert!(set.insert_vcs(255 * unit, 40 * unit));
        assert!(!set.insert_vcs(200 * unit, 40 * unit));
        let img = render_dots(&set, &s, &mut || {}).to_rgba();
        assert!(img.pixel(0, 40)[3] > 0 && img.pixel(1, 40)[3] > 0);
        assert_eq!(img.pixel(2, 40)[3], 0);
        assert_eq!(set.len_in_tile(), 0);
    }

    #[test]
    fn pixel_keys_and_vcs_points_land_on_the_same_pixel() {
        let tile = Tile::new(4, 4, 6).unwrap();
        let grid = PixelGrid::new(4, TileSize::Px512).unwrap();
        let mut a = PixelSet::new(tile, TileSize::Px512, 2).unwrap();
        let mut b = a.clone();
        let (x0, y0, _, _) = tile.vcs_bounds();
        for i in 0..1000u32 {
            let x = (x0 as u32).wrapping_add(i * 104_729 % (1 << 27)) - (1 << 20);
            let y = (y0 as u32) + i * 7_919 % (1 << 27);
            a.insert_vcs(x, y);
            b.insert_pixel_key(grid.pixel_key(morton_interleave(x, y) as i64));
        }
        assert_eq!(a, b);
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        assert!(PixelSet::from_bytes(&[1, 2, 3]).is_err());
        let set = PixelSet::new(Tile::new(2, 1, 1).unwrap(), TileSize::Px256, 1).unwrap();
        let mut bytes = set.to_bytes();
        bytes.pop();
        assert!(PixelSet::from_bytes(&bytes).is_err());
        let mut bytes = set.to_bytes();
        bytes[0] = 99; // zoom 99
        assert!(PixelSet::from_bytes(&bytes).is_err());
    }

    /// Golden image, compared pixel by pixel (never byte by byte). `VASTTILE_BLESS=1` rewrites it;
    /// look at the PNG before committing a new one.
    #[test]
    fn golden_dot_scene_matches_pixel_for_pixel() {
        let tile = Tile::new(3, 2, 3).unwrap();
        let style =
            DotStyle::from_json(&serde_json::json!({"radius": 2.5, "color": "#2ca02c99"})).unwrap();
        let mut set = PixelSet::new(tile, TileSize::Px256, style.reach()).unwrap();
        let (x0, y0, _, _) = tile.vcs_bounds();
        let mut seed = 12345u64;
        for _ in 0..400 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Points over the tile and up to 22 px beyond it, so dots straddle its edges.
            let px = ((seed >> 33) % 300) as i64 - 22;
            let py = ((seed >> 13) % 300) as i64 - 22;
            set.insert_vcs((x0 + px * (1 << 20)) as u32, (y0 + py * (1 << 20)) as u32);
        }
        let tile = render_dots(&set, &style, &mut || {});
        let image = tile.to_rgba();
        // The paletted encoding shows exactly these pixels.
        let decoded = crate::encoding::png::decode(&tile.encode(Effort::Fast).unwrap()).unwrap();
        assert_eq!(
            crate::encoding::png::pixel_diff(&image, &decoded).unwrap(),
            0
        );
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/golden/dot-scene.png"
        );
        if std::env::var_os("VASTTILE_BLESS").is_some() {
            std::fs::write(path, tile.encode(Effort::Small).unwrap()).unwrap();
        }
        let golden = crate::encoding::png::decode(
            &std::fs::read(path).expect("golden PNG missing: run with VASTTILE_BLESS=1"),
        )
        .unwrap();
        assert_eq!(
            crate::encoding::png::pixel_diff(&image, &golden).unwrap(),
            0
        );
    }

    proptest! {
        #[test]
        fn split_merge_and_serialise_equal_one_pass(points in prop::collection::vec((0u32..1 << 31, 0u32..1 << 31), 0..300),
                                                    split in 0usize..300, margin in 0u32..8) {
            let tile = Tile::new(1, 0, 1).unwrap();
            let mut whole = PixelSet::new(tile, TileSize::Px256, margin).unwrap();
            let mut left = whole.clone();
            let mut right = whole.clone();
            for (i, &(x, y)) in points.iter().enumerate() {
                whole.insert_vcs(x, y);
                if i < split { left.insert_vcs(x, y); } else { right.insert_vcs(x, y); }
            }
            let mut right = PixelSet::from_bytes(&right.to_bytes()).unwrap();
            right.merge(&left).unwrap();
            prop_assert_eq!(&right, &whole);
            let img = render_dots(&whole, &style(1.5), &mut || {});
            let mut shuffled = points.clone();
            shuffled.reverse();
            let mut again = PixelSet::new(tile, TileSize::Px256, margin).unwrap();
            for (x, y) in shuffled { again.insert_vcs(x, y); }
            prop_assert_eq!(render_dots(&again, &style(1.5), &mut || {}), img);
        }
    }

    /// A dot near 180 E also shows at the west edge of the map, and one near 180 W at the east
    /// edge: the tile's key ranges reach across the antimeridian and its ring wraps, at a deep
    /// zoom and at z0, where the ring meets the tile itself.
    #[test]
    fn dots_near_the_antimeridian_show_on_the_other_edge() {
        use crate::geometry::vcs::{lat_to_vcs, lon_to_vcs, morton_interleave, tile_key_ranges};
        let style = DotStyle::from_json(&serde_json::json!({"radius": 4})).unwrap();
        let y = lat_to_vcs(-17.0).unwrap() as u32;
        let (east, west) = (
            lon_to_vcs(179.9999).unwrap() as u32,
            lon_to_vcs(-179.9999).unwrap() as u32,
        );
        for (z, edge_x, point_x, lit_column) in [
            (6, 0, east, 0i64),
            (6, 63, west, 255),
            (0, 0, east, 0),
            (0, 0, west, 255),
        ] {
            let ty = Tile::containing(east, y, z).y;
            let tile = Tile::new(z as i32, edge_x, ty as i32).unwrap();
            let key = morton_interleave(point_x, y) as i64;
            let ranges = tile_key_ranges(tile, TileSize::Px256, style.reach() as i64).unwrap();
            assert!(
                ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&key)),
                "z{z}: ranges miss the point"
            );
            let mut set = PixelSet::new(tile, TileSize::Px256, style.reach()).unwrap();
            assert!(
                set.insert_vcs(point_x, y),
                "z{z}: the ring does not take the point"
            );
            let tile_png = render_dots(&set, &style, &mut || {});
            let py = set.grid.pixel(y) as i64 - tile.origin_px(TileSize::Px256).1;
            let lit = tile_png.alpha[(py * 256 + lit_column) as usize];
            assert!(
                lit > 0,
                "z{z}: the dot does not show at column {lit_column}"
            );
        }
    }
}

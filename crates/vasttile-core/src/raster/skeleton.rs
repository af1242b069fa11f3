//! Skeletons: polygons rasterised once into one ID per pixel, recoloured per request (the 2013
//! article's choropleth trick).
//!
//! **Fill rule.** Vertices are snapped to the centres of 1/16-pixel cells at the tile's zoom and
//! successive vertices in the same cell are dropped (the article's polygon DISTINCT, which drew
//! integer pixel vertices; whole pixels fold thin counties over their neighbours at low zoom).
//! A pixel belongs to a polygon when its centre is inside by the even-odd rule, with half-open
//! spans: an edge counts for rows whose centre y satisfies
//! y0 <= y < y1, and a span covers centres x with left <= x < right. Crossings are computed
//! exactly in integers. Neighbours that share an edge share its snapped vertices, so one gets
//! every pixel left of the crossing and the other every pixel from it: no gap, no pixel owned
//! twice.
//!
//! **Recolouring.** A skeleton is stored as a palette of the IDs in the tile and one index per
//! pixel. With at most 256 IDs a request maps the palette (IDs to colours) and writes the index
//! plane as an indexed PNG, never touching the pixels' IDs; beyond 256 it walks the pixels.

use crate::encoding::png::{encode, encode_indexed, Effort, RgbaImage};
use crate::error::{CoreError, CoreResult};
use crate::geometry::polygon::MultiPolygon;
use crate::geometry::vcs::{PixelGrid, Tile, TileSize};
use std::collections::HashMap;

const MAGIC: &[u8; 4] = b"VTSK";
/// Vertices snap to cells of 1 / 2^SUBPIXEL_BITS pixel.
const SUBPIXEL_BITS: u32 = 4;

fn ceil_div(n: i128, d: i128) -> i128 {
    n.div_euclid(d) + if n.rem_euclid(d) == 0 { 0 } else { 1 }
}

/// One value per pixel of a tile (0 = no polygon): polygon IDs, or feature bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skeleton {
    /// The tile the pixels cover.
    pub tile: Tile,
    /// Its output size: `size * size` cells.
    pub size: TileSize,
    /// Row-major pixel values.
    pub cells: Vec<u32>,
}

impl Skeleton {
    /// An all-zero skeleton; errors when the tile is too deep for `size`.
    pub fn new(tile: Tile, size: TileSize) -> CoreResult<Skeleton> {
        PixelGrid::new(tile.z, size)?;
        Ok(Skeleton {
            tile,
            size,
            cells: vec![0; (size.px() * size.px()) as usize],
        })
    }

    /// Visit every pixel (row-major index) whose centre lies inside `mp`.
    pub fn for_each_inside(&self, mp: &MultiPolygon, visit: impl FnMut(usize)) {
        self.for_each_inside_checked(mp, visit, &mut || {})
    }

    /// [`Self::for_each_inside`], calling `progress` every 65,536 edges (a binding checks for
    /// cancellation there: one polygon may have millions of vertices).
    pub fn for_each_inside_checked(
        &self,
        mp: &MultiPolygon,
        mut visit: impl FnMut(usize),
        progress: &mut dyn FnMut(),
    ) {
        let grid = PixelGrid::new(self.tile.z, self.size).expect("checked in new");
        let side = self.size.px() as i64;
        let (ox, oy) = self.tile.origin_px(self.size);
        // Vertices snap to the centre of their 1/16-pixel cell (coarser snapping folds thin
        // polygons over their neighbours at low zoom). Coordinates below are in units of
        // 1/32 pixel: a vertex at 2s + 1, the centre of pixel p at K p + K / 2.
        let sub = SUBPIXEL_BITS.min(grid.shift());
        let vshift = grid.shift() - sub;
        let k: i64 = 1 << (sub + 1);
        let snap =
            |(x, y): (u32, u32)| (2 * (x >> vshift) as i64 + 1, 2 * (y >> vshift) as i64 + 1);
        // Crossing columns per tile row: for an edge crossing the row's centre line at X = num /
        // den, the first pixel whose centre K c + K / 2 >= X.
        let mut rows: Vec<Vec<i64>> = vec![Vec::new(); side as usize];
        for polygon in &mp.polygons {
            for row in rows.iter_mut() {
                row.clear();
            }
            for ring in polygon {
                let mut pts: Vec<(i64, i64)> = ring.iter().map(|&p| snap(p)).collect();
                // The DISTINCT of polygons: successive vertices in one cell become one.
                pts.dedup();
                for (e, w) in pts.windows(2).enumerate() {
                    if e % 65_536 == 65_535 {
                        progress();
                    }
                    let ((xa, ya), (xb, yb)) = if w[0].1 <= w[1].1 {
                        (w[0], w[1])
                    } else {
                        (w[1], w[0])
                    };
                    if ya == yb {
                        continue;
                    }
                    // Rows whose centre Y = K R + K / 2 lies in [ya, yb).
                    let first_row = |y: i64| ceil_div((y - k / 2) as i128, k as i128) as i64;
                    let (r0, r1) = (first_row(ya).max(oy), first_row(yb).min(oy + side));
                    let den = (yb - ya) as i128;
                    for r in r0..r1 {
                        let y = k * r + k / 2;
                        let num = xa as i128 * den + (y - ya) as i128 * (xb - xa) as i128;
                        let c = ceil_div(num - den * (k / 2) as i128, den * k as i128);
                        rows[(r - oy) as usize].push(c as i64);
                    }
                }
            }
            for (r, xs) in rows.iter_mut().enumerate() {
                if xs.len() < 2 {
                    continue;
                }
                xs.sort_unstable();
                for pair in xs.chunks_exact(2) {
                    let (a, b) = ((pair[0] - ox).max(0), (pair[1] - ox).min(side));
                    for c in a..b {
                        visit(r * side as usize + c as usize);
                    }
                }
            }
        }
    }

    /// Paint `id` where `mp` covers a pixel (later polygons win where data overlaps).
    pub fn fill(&mut self, id: u32, mp: &MultiPolygon) {
        self.fill_checked(id, mp, &mut || {})
    }

    /// [`Self::fill`], calling `progress` every 65,536 edges.
    pub fn fill_checked(&mut self, id: u32, mp: &MultiPolygon, progress: &mut dyn FnMut()) {
        let mut cells = std::mem::take(&mut self.cells);
        self.for_each_inside_checked(mp, |i| cells[i] = id, progress);
        self.cells = cells;
    }

    /// Set feature bit `bit` (0..32) where `mp` covers a pixel: up to 32 boolean features per pixel.
    pub fn fill_bit(&mut self, bit: u32, mp: &MultiPolygon) -> CoreResult<()> {
        self.fill_bit_checked(bit, mp, &mut || {})
    }

    /// [`Self::fill_bit`], calling `progress` every 65,536 edges.
    pub fn fill_bit_checked(
        &mut self,
        bit: u32,
        mp: &MultiPolygon,
        progress: &mut dyn FnMut(),
    ) -> CoreResult<()> {
        if bit >= 32 {
            return Err(CoreError::out_of_range(
                "feature bit",
                format!("must be between 0 and 31, got {bit}"),
            ));
        }
        let mut cells = std::mem::take(&mut self.cells);
        self.for_each_inside_checked(mp, |i| cells[i] |= 1 << bit, progress);
        self.cells = cells;
        Ok(())
    }

    /// Bytes: header, the palette of distinct values (0 first), then one little-endian index per
    /// pixel: a u16 while the palette fits (up to 65,536 values, byte 6 of the header 0), else a
    /// u32 (byte 6 is 1: a tile of more features than that, such as parcels at a low zoom).
    /// Cached skeletons are stored this way (PostgreSQL compresses them further).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (palette, index) = self.palette();
        let wide = palette.len() > 65536;
        let width = if wide { 4 } else { 2 };
        let mut out = Vec::with_capacity(20 + palette.len() * 4 + index.len() * width);
        out.extend_from_slice(MAGIC);
        out.push(self.tile.z as u8);
        out.push((self.size == TileSize::Px512) as u8);
        out.extend_from_slice(&[wide as u8, 0]);
        out.extend_from_slice(&self.tile.x.to_le_bytes());
        out.extend_from_slice(&self.tile.y.to_le_bytes());
        out.extend_from_slice(&(palette.len() as u32).to_le_bytes());
        for v in &palette {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for &i in &index {
            if wide {
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                out.extend_from_slice(&(i as u16).to_le_bytes());
            }
        }
        out
    }

    /// Decode [`Skeleton::to_bytes`]. Untrusted input: a bad header, palette size (1 ..= 65,536
    /// with u16 indices, 65,537 ..= pixels + 1 with u32 ones), length or index is an error, never
    /// a panic.
    pub fn from_bytes(bytes: &[u8]) -> CoreResult<Skeleton> {
        let bad = || CoreError::out_of_range("skeleton", "bytes are not a skeleton");
        // The size and width flags are 0 or 1 and the padding zero, as written: anything else is
        // corruption.
        if bytes.len() < 20 || &bytes[..4] != MAGIC || bytes[5] > 1 || bytes[6] > 1 || bytes[7] != 0
        {
            return Err(bad());
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let size = if bytes[5] == 1 {
            TileSize::Px512
        } else {
            TileSize::Px256
        };
        let wide = bytes[6] == 1;
        let tile = Tile::new(bytes[4] as i32, u32_at(8) as i32, u32_at(12) as i32)?;
        let n = u32_at(16) as usize;
        let mut sk = Skeleton::new(tile, size)?;
        let (width, fits) = if wide {
            (4, n > 65536 && n <= sk.cells.len() + 1)
        } else {
            (2, (1..=65536).contains(&n))
        };
        let body = 20 + n * 4;
        if !fits || bytes.len() != body + sk.cells.len() * width {
            return Err(bad());
        }
        let palette: Vec<u32> = (0..n).map(|k| u32_at(20 + 4 * k)).collect();
        for (cell, b) in sk.cells.iter_mut().zip(bytes[body..].chunks_exact(width)) {
            let k = if wide {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
            } else {
                u16::from_le_bytes([b[0], b[1]]) as usize
            };
            *cell = *palette.get(k).ok_or_else(bad)?;
        }
        Ok(sk)
    }

    /// Distinct values (0 first) and each pixel's index into them.
    pub fn palette(&self) -> (Vec<u32>, Vec<u32>) {
        let mut palette = vec![0u32];
        let mut slot: HashMap<u32, u32> = HashMap::from([(0, 0)]);
        let mut last = (0u32, 0u32);
        let index = self
            .cells
            .iter()
            .map(|&v| {
                if v != last.0 {
                    let k = *slot.entry(v).or_insert_with(|| {
                        palette.push(v);
                        (palette.len() - 1) as u32
                    });
                    last = (v, k);
                }
                last.1
            })
            .collect();
        (palette, index)
    }
}

/// Recolour a skeleton: `color_of(value)` gives each distinct pixel value's colour (value 0, "no
/// polygon", is always transparent). At most 256 distinct values: the palette is mapped and the
/// index plane written as an indexed PNG; more: the pixels are walked into RGBA. `None` when
/// nothing shows.
pub fn recolor(
    sk: &Skeleton,
    mut color_of: impl FnMut(u32) -> [u8; 4],
) -> CoreResult<Option<Vec<u8>>> {
    let (palette, index) = sk.palette();
    let colors: Vec<[u8; 4]> = palette
        .iter()
        .map(|&v| if v == 0 { [0; 4] } else { color_of(v) })
        .collect();
    if index.iter().all(|&k| colors[k as usize][3] == 0) {
        return Ok(None);
    }
    let side = sk.size.px();
    if colors.len() <= 256 {
        let plane: Vec<u8> = index.iter().map(|&k| k as u8).collect();
        return encode_indexed(side, side, &plane, &colors, Effort::Fast).map(Some);
    }
    let mut image = RgbaImage::transparent(side, side);
    for (p, &k) in image.data.chunks_exact_mut(4).zip(&index) {
        p.copy_from_slice(&colors[k as usize]);
    }
    encode(&image, Effort::Fast).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::vcs::{lat_to_vcs, lon_to_vcs};

    fn poly(rings: &[&[(f64, f64)]]) -> MultiPolygon {
        MultiPolygon {
            polygons: vec![rings
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|&(lon, lat)| {
                            (
                                lon_to_vcs(lon).unwrap() as u32,
                                lat_to_vcs(lat).unwrap() as u32,
                            )
                        })
                        .collect()
                })
                .collect()],
        }
    }

    /// Independent rasteriser: crossing-number test at each pixel centre, in floating point,
    /// on the snapped vertices (the fill rule's geometry), with the same half-open conventions.
    fn naive_count(sk: &Skeleton, mp: &MultiPolygon) -> usize {
        let grid = PixelGrid::new(sk.tile.z, sk.size).unwrap();
        let (ox, oy) = sk.tile.origin_px(sk.size);
        let side = sk.size.px() as i64;
        let sub = SUBPIXEL_BITS.min(grid.shift());
        let (v, cell) = (grid.shift() - sub, (1u64 << sub) as f64);
        let snap = |(x, y): (u32, u32)| {
            (
                ((x >> v) as f64 + 0.5) / cell,
                ((y >> v) as f64 + 0.5) / cell,
            )
        };
        let mut n = 0;
        for r in 0..side {
            for c in 0..side {
                let (px, py) = ((ox + c) as f64 + 0.5, (oy + r) as f64 + 0.5);
                let mut inside = false;
                for ring in mp.polygons.iter().flatten() {
                    for w in ring.windows(2) {
                        let ((x0, y0), (x1, y1)) = (snap(w[0]), snap(w[1]));
                        let ((xa, ya), (xb, yb)) = if y0 <= y1 {
                            ((x0, y0), (x1, y1))
                        } else {
                            ((x1, y1), (x0, y0))
                        };
                        if ya <= py && py < yb {
                            let x = xa + (py - ya) * (xb - xa) / (yb - ya);
                            if px >= x {
                                inside = !inside;
                            }
                        }
                    }
                }
                n += inside as usize;
            }
        }
        n
    }

    #[test]
    fn neighbours_leave_no_gap_and_no_double_ownership() {
        // A 3 x 3 block of cells over a perturbed lattice, each shared edge bent through the
        // same midpoint in both cells (as TopoJSON's shared arcs give them).
        let corner = |i: usize, j: usize| {
            let f = ((i * 7 + j * 13) % 5) as f64 * 0.031;
            (
                -100.0 + i as f64 * 0.67 + if i.is_multiple_of(3) { 0.0 } else { f },
                40.0 + j as f64 * 0.71 + if j.is_multiple_of(3) { 0.0 } else { f },
            )
        };
        let mid = |a: (f64, f64), b: (f64, f64), k: usize| {
            let bend = ((k * 37) % 11) as f64 * 0.009 - 0.045;
            ((a.0 + b.0) / 2.0 + bend, (a.1 + b.1) / 2.0 - bend)
        };
        let (xs, ys) = (
            [corner(0, 0).0, 0.0, 0.0, corner(3, 0).0],
            [corner(0, 0).1, 0.0, 0.0, corner(0, 3).1],
        );
        let mut cells = Vec::new();
        for i in 0..3 {
            for j in 0..3 {
                let (p00, p10, p11, p01) = (
                    corner(i, j),
                    corner(i + 1, j),
                    corner(i + 1, j + 1),
                    corner(i, j + 1),
                );
                // Midpoints keyed by the edge, so both neighbours get the same one.
                let h0 = mid(p00, p10, 100 + i * 4 + j);
                let v1 = mid(p10, p11, 200 + (i + 1) * 4 + j);
                let h1 = mid(p01, p11, 100 + i * 4 + j + 1);
                let v0 = mid(p00, p01, 200 + i * 4 + j);
                // The outer boundary stays straight so the union is the plain outline.
                let h0 = if j == 0 {
                    ((p00.0 + p10.0) / 2.0, p00.1)
                } else {
                    h0
                };
                let h1 = if j == 2 {
                    ((p01.0 + p11.0) / 2.0, p01.1)
                } else {
                    h1
                };
                let v0 = if i == 0 {
                    (p00.0, (p00.1 + p01.1) / 2.0)
                } else {
                    v0
                };
                let v1 = if i == 2 {
                    (p10.0, (p10.1 + p11.1) / 2.0)
                } else {
                    v1
                };
                cells.push(poly(&[&[p00, h0, p10, v1, p11, h1, p01, v0, p00]]));
            }
        }
        for (z, x, y) in [(6, 14, 24), (8, 57, 96), (10, 227, 386), (5, 7, 12)] {
            let tile = Tile::new(z, x, y).unwrap();
            let mut count = vec![0u8; 65536];
            let sk = Skeleton::new(tile, TileSize::Px256).unwrap();
            for cell in &cells {
                sk.for_each_inside(cell, |i| count[i] += 1);
            }
            let mut union = Skeleton::new(tile, TileSize::Px256).unwrap();
            let outline = poly(&[&[
                (xs[0], ys[0]),
                (xs[3], ys[0]),
                (xs[3], ys[3]),
                (xs[0], ys[3]),
                (xs[0], ys[0]),
            ]]);
            union.fill(1, &outline);
            let doubled = count.iter().filter(|&&c| c > 1).count();
            let gaps = count
                .iter()
                .zip(&union.cells)
                .filter(|(&c, &u)| c == 0 && u == 1)
                .count();
            assert_eq!((doubled, gaps), (0, 0), "z{z}");
        }
    }

    /// Real data: the ~3,200 US counties of us-atlas (fetched by scripts/test.sh). At z3, z5 and
    /// z8 no pixel is owned by two counties, none inside the nation is left out, and each
    /// county's pixel count equals the naive rasteriser's.
    #[test]
    fn us_counties_leave_no_gap_or_overlap_and_match_a_naive_rasteriser() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/us-atlas/counties-10m.json"
        );
        let text = std::fs::read_to_string(path)
            .expect("data/us-atlas missing: scripts/test.sh fetches it");
        let counties = MultiPolygon::from_topojson(&text, "counties").unwrap();
        let nation = MultiPolygon::from_topojson(&text, "nation")
            .unwrap()
            .remove(0)
            .2;
        assert!(counties.len() > 3000);
        for (z, x, y) in [(3, 1, 3), (5, 8, 12), (5, 9, 11), (8, 64, 96), (8, 75, 95)] {
            let tile = Tile::new(z, x, y).unwrap();
            let sk = Skeleton::new(tile, TileSize::Px256).unwrap();
            let mut owners = vec![0u8; 65536];
            let mut inside_nation = vec![false; 65536];
            sk.for_each_inside(&nation, |i| inside_nation[i] = true);
            let (x0, y0, x1, y1) = tile.vcs_bounds();
            let mut checked = 0;
            for (_, _, county) in &counties {
                let Some((a, b, c, d)) = county.bbox() else {
                    continue;
                };
                if (c as i64) < x0 || (a as i64) >= x1 || (d as i64) < y0 || (b as i64) >= y1 {
                    continue;
                }
                let mut n = 0;
                sk.for_each_inside(county, |i| {
                    owners[i] += 1;
                    n += 1;
                });
                if z == 8 {
                    assert_eq!(n, naive_count(&sk, county), "county pixels at z{z}");
                    checked += 1;
                }
            }
            let doubled = owners.iter().filter(|&&o| o > 1).count();
            let gaps = owners
                .iter()
                .zip(&inside_nation)
                .filter(|(&o, &n)| n && o == 0)
                .count();
            let outside = owners
                .iter()
                .zip(&inside_nation)
                .filter(|(&o, &n)| !n && o > 0)
                .count();
            let covered = owners.iter().filter(|&&o| o > 0).count();
            assert_eq!((doubled, gaps, outside), (0, 0, 0), "tile {z}/{x}/{y}");
            assert!(covered > 1000, "tile {z}/{x}/{y} covers {covered} pixels");
            assert!(z != 8 || checked > 5);
        }
    }

    #[test]
    fn pixel_counts_agree_with_a_naive_rasteriser_holes_included() {
        let tile = Tile::new(7, 33, 48).unwrap();
        let (w, s, e, n) = tile.envelope();
        let (dx, dy) = (e - w, n - s);
        let donut = poly(&[
            &[
                (w + 0.1 * dx, s + 0.1 * dy),
                (w + 0.93 * dx, s + 0.2 * dy),
                (w + 0.8 * dx, s + 0.95 * dy),
                (w + 0.05 * dx, s + 0.7 * dy),
                (w + 0.1 * dx, s + 0.1 * dy),
            ],
            &[
                (w + 0.4 * dx, s + 0.4 * dy),
                (w + 0.6 * dx, s + 0.42 * dy),
                (w + 0.5 * dx, s + 0.6 * dy),
                (w + 0.4 * dx, s + 0.4 * dy),
            ],
        ]);
        // A second part partly outside the tile.
        let mut mp = donut.clone();
        mp.polygons.extend(
            poly(&[&[
                (w - 0.2 * dx, n - 0.1 * dy),
                (w + 0.3 * dx, n - 0.05 * dy),
                (w + 0.1 * dx, n + 0.3 * dy),
                (w - 0.2 * dx, n - 0.1 * dy),
            ]])
            .polygons,
        );
        for size in [TileSize::Px256, TileSize::Px512] {
            let mut sk = Skeleton::new(tile, size).unwrap();
            sk.fill(5, &mp);
            let ours = sk.cells.iter().filter(|&&v| v == 5).count();
            assert_eq!(ours, naive_count(&sk, &mp), "{size:?}");
            assert!(ours > 1000);
        }
    }

    #[test]
    fn recolouring_maps_the_palette_and_bytes_round_trip() {
        let tile = Tile::new(7, 33, 48).unwrap();
        let (w, s, e, n) = tile.envelope();
        let mut sk = Skeleton::new(tile, TileSize::Px256).unwrap();
        let half = |x0: f64, x1: f64| poly(&[&[(x0, s), (x1, s), (x1, n), (x0, n), (x0, s)]]);
        sk.fill(10, &half(w, (w + e) / 2.0));
        sk.fill(20, &half((w + e) / 2.0, e));
        assert_eq!(Skeleton::from_bytes(&sk.to_bytes()).unwrap(), sk);
        let png = recolor(&sk, |id| {
            if id == 10 {
                [255, 0, 0, 255]
            } else {
                [0, 0, 255, 255]
            }
        })
        .unwrap()
        .unwrap();
        let img = crate::encoding::png::decode(&png).unwrap();
        assert_eq!(img.pixel(10, 100), [255, 0, 0, 255]);
        assert_eq!(img.pixel(250, 100), [0, 0, 255, 255]);
        assert_eq!(recolor(&sk, |_| [0, 0, 0, 0]).unwrap(), None);
        // Feature bits: two overlapping features in one pixel.
        let mut bits = Skeleton::new(tile, TileSize::Px256).unwrap();
        bits.fill_bit(0, &half(w, e)).unwrap();
        bits.fill_bit(3, &half(w, (w + e) / 2.0)).unwrap();
        assert_eq!(
            (bits.cells[100 * 256 + 10], bits.cells[100 * 256 + 250]),
            (0b1001, 0b0001)
        );
        assert!(bits.fill_bit(32, &half(w, e)).is_err());
        assert!(Skeleton::from_bytes(&sk.to_bytes()[..30]).is_err());
    }

    #[test]
    fn more_than_256_ids_walk_the_pixels() {
        let tile = Tile::new(2, 1, 1).unwrap();
        let (w, s, e, n) = tile.envelope();
        let mut sk = Skeleton::new(tile, TileSize::Px512).unwrap();
        for i in 0..300u32 {
            let x0 = w + (e - w) * i as f64 / 300.0;
            let x1 = w + (e - w) * (i + 1) as f64 / 300.0;
            sk.fill(
                i + 1,
                &poly(&[&[(x0, s), (x1, s), (x1, n), (x0, n), (x0, s)]]),
            );
        }
        let (palette, _) = sk.palette();
        assert!(palette.len() > 256);
        let png = recolor(&sk, |id| [(id % 256) as u8, (id / 256) as u8, 0, 255])
            .unwrap()
            .unwrap();
        assert_eq!(crate::encoding::png::info(&png).unwrap().color_type, "rgba");
    }

    /// A tile of more distinct IDs than a u16 index holds (512 px, 100,000 IDs) round-trips
    /// through bytes with u32 indices and recolours every pixel by its own ID.
    #[test]
    fn skeletons_of_more_than_65536_ids_round_trip() {
        let tile = Tile::new(10, 3, 4).unwrap();
        let mut sk = Skeleton::new(tile, TileSize::Px512).unwrap();
        for (i, c) in sk.cells.iter_mut().enumerate() {
            *c = (i % 100_000) as u32 + 1;
        }
        let bytes = sk.to_bytes();
        assert_eq!(bytes[6], 1);
        let back = Skeleton::from_bytes(&bytes).unwrap();
        assert_eq!(back.cells, sk.cells);
        let (palette, index) = back.palette();
        assert_eq!(palette.len(), 100_001);
        assert!(index
            .iter()
            .zip(&back.cells)
            .all(|(&k, &v)| palette[k as usize] == v));
        // Small palettes keep the u16 layout (and so every skeleton cached before).
        let mut small = Skeleton::new(tile, TileSize::Px256).unwrap();
        small.cells[7] = 9;
        assert_eq!(small.to_bytes()[6], 0);
        assert_eq!(small.to_bytes().len(), 20 + 2 * 4 + 256 * 256 * 2);
        // Wide bytes with a palette small enough for u16 are corruption.
        let mut forged = small.to_bytes();
        forged[6] = 1;
        assert!(Skeleton::from_bytes(&forged).is_err());
        let png = recolor(&back, |v| [(v % 251) as u8, 0, 0, 255])
            .unwrap()
            .unwrap();
        let image = crate::encoding::png::decode(&png).unwrap();
        assert_eq!(image.pixel(5, 0), [6, 0, 0, 255]);
    }

    /// The world-atlas countries and land, read from data/world-atlas (scripts/test.sh fetches it).
    fn world(file: &str, object: &str) -> Vec<(Option<String>, MultiPolygon)> {
        let path = format!(
            "{}/../../data/world-atlas/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path)
            .expect("data/world-atlas missing: scripts/test.sh fetches it");
        MultiPolygon::from_topojson(&text, object)
            .unwrap()
            .into_iter()
            .map(|(id, _, mp)| (id, mp))
            .collect()
    }

    /// Owners per pixel of a whole zoom, as one image of 2^z tiles a side (256 px each).
    fn owners_at(
        z: i32,
        features: &[(Option<String>, MultiPolygon)],
    ) -> (usize, Vec<u8>, Vec<i32>) {
        let side = 256usize << z;
        let (mut count, mut owner) = (vec![0u8; side * side], vec![-1i32; side * side]);
        for ty in 0..1 << z {
            for tx in 0..1 << z {
                let sk = Skeleton::new(Tile::new(z, tx, ty).unwrap(), TileSize::Px256).unwrap();
                for (f, (_, mp)) in features.iter().enumerate() {
                    sk.for_each_inside(mp, |i| {
                        let (px, py) = (tx as usize * 256 + i % 256, ty as usize * 256 + i / 256);
                        count[py * side + px] = count[py * side + px].saturating_add(1);
                        owner[py * side + px] = f as i32;
                    });
                }
            }
        }
        (side, count, owner)
    }

    /// The world's edges: countries that cross the antimeridian (Russia, Fiji) or enclose a pole
    /// (Antarctica) fill their own side of the map at every tile, as on the sphere. At z2 the
    /// union of the countries is the land of the same package within 0.1 %, no pixel has two
    /// owners, Russia and Fiji stay within their longitudes, Antarctica reaches the bottom row.
    #[test]
    fn world_atlas_countries_fill_the_world_as_on_the_sphere() {
        for (countries_file, land_file) in [
            ("countries-110m.json", "land-110m.json"),
            ("countries-50m.json", "land-50m.json"),
        ] {
            let countries = world(countries_file, "countries");
            let land = world(land_file, "land");
            let (side, count, owner) = owners_at(2, &countries);
            if let Some(dir) = std::env::var_os("VASTTILE_WORLD_PNG") {
                // To look at: every country in a colour of its own, two owners in red.
                let mut image =
                    crate::encoding::png::RgbaImage::transparent(side as u32, side as u32);
                for (i, p) in image.data.chunks_exact_mut(4).enumerate() {
                    let o = owner[i] as u32;
                    let h = o.wrapping_mul(2_654_435_761);
                    if count[i] > 1 {
                        p.copy_from_slice(&[255, 0, 0, 255]);
                    } else if count[i] == 1 {
                        p.copy_from_slice(&[
                            (h >> 24) as u8 / 2 + 64,
                            (h >> 16) as u8 / 2 + 64,
                            (h >> 8) as u8 / 2 + 64,
                            255,
                        ]);
                    }
                }
                let png = crate::encoding::png::encode(&image, crate::encoding::png::Effort::Fast)
                    .unwrap();
                std::fs::write(
                    std::path::Path::new(&dir).join(format!("{countries_file}.png")),
                    png,
                )
                .unwrap();
            }
            let (_, land_count, _) = owners_at(2, &land);
            let doubled = count.iter().filter(|&&c| c > 1).count();
            let land_px = land_count.iter().filter(|&&c| c > 0).count();
            let differ = count
                .iter()
                .zip(&land_count)
                .filter(|(&c, &l)| (c > 0) != (l > 0))
                .count();
            assert_eq!(doubled, 0, "{countries_file}: pixels with two owners");
            assert!(
                (differ as f64) < 0.001 * land_px as f64,
                "{countries_file}: {differ} of {land_px} land pixels differ"
            );
            let lon_of = |px: usize| (px as f64 + 0.5) / side as f64 * 360.0 - 180.0;
            let index = |id: &str| {
                countries
                    .iter()
                    .position(|(i, _)| i.as_deref() == Some(id))
                    .unwrap()
            };
            // Russia (643): 19.6 E eastward across the antimeridian to 169 W.
            // Fiji (242): 177 E to 178 W.
            for (id, ranges) in [
                ("643", [(19.0, 180.0), (-180.0, -168.5)]),
                ("242", [(176.5, 180.0), (-180.0, -178.0)]),
            ] {
                let f = index(id) as i32;
                let mut seen = [0usize; 2];
                for (i, _) in owner.iter().enumerate().filter(|(_, &o)| o == f) {
                    let lon = lon_of(i % side);
                    let k = ranges
                        .iter()
                        .position(|&(a, b)| lon >= a - 0.5 && lon <= b + 0.5);
                    assert!(
                        k.is_some(),
                        "{countries_file}: country {id} has a pixel at lon {lon:.2}"
                    );
                    seen[k.unwrap()] += 1;
                }
                if id == "643" {
                    assert!(
                        seen[0] > 1000 && seen[1] > 0,
                        "{countries_file}: Russia {seen:?}"
                    );
                }
            }
            // Antarctica (010) reaches the bottom row, at both edges too: all of it but where
            // its own coast (the Ross Ice Shelf's edge, 162-143 W) lies beyond Mercator's
            // 85.05 S.
            let antarctica = index("010") as i32;
            let bottom = &owner[(side - 1) * side..];
            let own = bottom.iter().filter(|&&o| o == antarctica).count();
            assert!(
                own * 100 >= side * 90 && bottom[0] == antarctica && bottom[side - 1] == antarctica,
                "{countries_file}: Antarctica has {own} of {side} bottom pixels"
            );
        }
    }
}

//! Accessibility heat (the Numba article): for each pixel, the sum over points of interest of
//! max(0, R - d), d the great-circle distance in km and R the walking radius (1.2 km by default).
//! The article then divides by a saturation count (4) and colours with jet; that is a style
//! (`HeatStyle::accessibility_defaults`), this module computes the raw sums.
//!
//! The article gathers: every pixel visits every POI (about 110 ns a pair). Here each POI that
//! can reach the tile stamps its cone onto the pixels within R of it, and nothing else: rows and
//! columns outside its reach are never visited, POIs that cannot reach the tile are pruned first.
//! Within a cone, distance is measured in a local equirectangular frame around the POI (exact
//! pixel latitudes per row, longitude scaled by the cosine of the mean latitude): over 1.2 km
//! it differs from haversine by well under a millimetre. Tile rows are split into bands that
//! run in parallel; each band sums its POIs in the same order, so the result does not depend
//! on the number of threads.

use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::{
    bbox_key_ranges, check_point, merge_ranges, PixelGrid, Tile, TileSize, VCS_SPAN,
};
use crate::parallel;
use crate::raster::heat::HeatGrid;
use crate::shading::shade::HeatStyle;
use rayon::prelude::*;

/// The article's Earth radius in km.
pub const EARTH_RADIUS_KM: f64 = 6373.0;
/// Largest walking radius we accept, in km.
pub const MAX_RADIUS_KM: f64 = 100.0;
/// Most POIs one tile may gather (after pruning).
pub const MAX_POIS: usize = 2_000_000;
/// POIs per chunk between progress calls.
const CHUNK: usize = 256;

/// An accessibility tile's style: `radius_km` (1.2 by default), `size`, and the heat keys over the
/// article's look.
pub fn read_tile_style(style: &serde_json::Value) -> CoreResult<(TileSize, f64, HeatStyle)> {
    let (size, heat, radius) = HeatStyle::read_tile(
        style,
        HeatStyle::accessibility_defaults(),
        &["radius_km"],
        |r| r.number("radius_km", 1.2, f64::MIN_POSITIVE, MAX_RADIUS_KM),
    )?;
    Ok((size, radius, heat))
}

/// A validated walking radius in km: finite, > 0 and at most [`MAX_RADIUS_KM`].
pub fn check_radius(radius_km: f64) -> CoreResult<f64> {
    if radius_km.is_finite() && radius_km > 0.0 && radius_km <= MAX_RADIUS_KM {
        Ok(radius_km)
    } else {
        Err(CoreError::out_of_range(
            "radius_km",
            format!("must be greater than 0 and at most {MAX_RADIUS_KM}, got {radius_km}"),
        ))
    }
}

/// Longitude and latitude in radians of a VCS position (fractional units allowed).
fn vcs_to_radians(x: f64, y: f64) -> (f64, f64) {
    let lon = x / VCS_SPAN as f64 * std::f64::consts::TAU - std::f64::consts::PI;
    let lat = (std::f64::consts::PI * (1.0 - 2.0 * y / VCS_SPAN as f64))
        .sinh()
        .atan();
    (lon, lat)
}

/// Points of interest gathered for one tile.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessState {
    /// The tile being computed.
    pub tile: Tile,
    /// Its output size.
    pub size: TileSize,
    /// Walking radius R in km: a POI adds max(0, R - d) to every pixel.
    pub radius_km: f64,
    /// (lon, lat) in radians of the POIs that can reach the tile.
    pub pois: Vec<(f64, f64)>,
    /// Tile envelope widened by the radius, in radians: (west, south, east, north).
    reach: (f64, f64, f64, f64),
}

impl AccessState {
    /// Bytes the state holds on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.pois.capacity() * 16
    }

    /// An empty state for `tile`; errors on a bad radius or a tile too deep for `size`.
    pub fn new(tile: Tile, size: TileSize, radius_km: f64) -> CoreResult<AccessState> {
        PixelGrid::new(tile.z, size)?;
        let radius_km = check_radius(radius_km)?;
        let (x0, y0, x1, y1) = tile.vcs_bounds();
        let (west, north) = vcs_to_radians(x0 as f64, y0 as f64);
        let (east, south) = vcs_to_radians(x1 as f64, y1 as f64);
        let dlat = radius_km / EARTH_RADIUS_KM;
        let poleward = north.abs().max(south.abs()) + dlat;
        let dlon = if poleward < std::f64::consts::FRAC_PI_2 {
            dlat / poleward.cos()
        } else {
            std::f64::consts::TAU
        };
        Ok(AccessState {
            tile,
            size,
            radius_km,
            pois: Vec::new(),
            reach: (west - dlon, south - dlat, east + dlon, north + dlat),
        })
    }

    /// Add a POI by its VCS point; POIs that cannot reach the tile are pruned here.
    pub fn add_point(&mut self, x: i32, y: i32) -> CoreResult<()> {
        let (x, y) = check_point(x, y)?;
        let (lon, lat) = vcs_to_radians(x as f64 + 0.5, y as f64 + 0.5);
        let (w, s, e, n) = self.reach;
        if lat < s || lat > n {
            return Ok(());
        }
        // Across the antimeridian a POI reaches a tile at the other edge of the map: it is kept
        // one turn of the world over, next to the tile (and at z0, z1 maybe at both edges).
        for turn in [0.0, -std::f64::consts::TAU, std::f64::consts::TAU] {
            let lon = lon + turn;
            if lon >= w && lon <= e {
                if self.pois.len() >= MAX_POIS {
                    return Err(CoreError::TooLarge {
                        detail: format!("more than {MAX_POIS} points of interest reach one tile"),
                    });
                }
                self.pois.push((lon, lat));
            }
        }
        Ok(())
    }

    /// Add the POIs of another partial state of the same tile, size and radius (parallel
    /// aggregation's combine step).
    pub fn merge(&mut self, other: &AccessState) -> CoreResult<()> {
        if (self.tile, self.size, self.radius_km) != (other.tile, other.size, other.radius_km) {
            return Err(CoreError::out_of_range(
                "tile and radius",
                "must be the same in every row of one accessibility grid",
            ));
        }
        if self.pois.len() + other.pois.len() > MAX_POIS {
            return Err(CoreError::TooLarge {
                detail: format!("more than {MAX_POIS} points of interest reach one tile"),
            });
        }
        self.pois.extend_from_slice(&other.pois);
        Ok(())
    }

    /// Morton key ranges holding every POI that can reach the tile (and some that cannot).
    pub fn key_ranges(&self) -> Vec<(i64, i64)> {
        let (w, s, e, n) = self.reach;
        let to_x = |lon: f64| {
            ((lon + std::f64::consts::PI) / std::f64::consts::TAU * VCS_SPAN as f64)
                .clamp(0.0, (VCS_SPAN - 1) as f64) as u32
        };
        let to_y = |lat: f64| {
            let lat = lat.clamp(-1.4844222297453322, 1.4844222297453322); // Mercator's limit
            let m = lat.tan().asinh();
            ((1.0 - m / std::f64::consts::PI) / 2.0 * VCS_SPAN as f64)
                .clamp(0.0, (VCS_SPAN - 1) as f64) as u32
        };
        let (pi, tau) = (std::f64::consts::PI, std::f64::consts::TAU);
        let mut ranges = bbox_key_ranges(to_x(w), to_y(n), to_x(e), to_y(s), 8);
        // The reach beyond the map's edge continues from the other edge.
        if w < -pi {
            ranges.extend(bbox_key_ranges(
                to_x(w + tau),
                to_y(n),
                to_x(pi),
                to_y(s),
                8,
            ));
        }
        if e > pi {
            ranges.extend(bbox_key_ranges(
                to_x(-pi),
                to_y(n),
                to_x(e - tau),
                to_y(s),
                8,
            ));
        }
        merge_ranges(ranges)
    }

    /// Serialised for parallel aggregation: tile, size, radius, then the POIs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.pois.len() * 16);
        for v in [self.tile.z, self.tile.x, self.tile.y, self.size.px()] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.radius_km.to_le_bytes());
        for (lon, lat) in &self.pois {
            out.extend_from_slice(&lon.to_le_bytes());
            out.extend_from_slice(&lat.to_le_bytes());
        }
        out
    }

    /// Decode [`AccessState::to_bytes`]. Untrusted input: a bad length, tile, size, radius or a
    /// non-finite POI is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> CoreResult<AccessState> {
        let bad = || CoreError::out_of_range("accessibility state", "is corrupt");
        if bytes.len() < 24 || !(bytes.len() - 24).is_multiple_of(16) {
            return Err(bad());
        }
        let u = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let f = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[i..i + 8]);
            f64::from_le_bytes(a)
        };
        if (bytes.len() - 24) / 16 > MAX_POIS {
            return Err(CoreError::TooLarge {
                detail: format!("more than {MAX_POIS} points of interest reach one tile"),
            });
        }
        let tile = Tile::new(u(0) as i32, u(4) as i32, u(8) as i32)?;
        let mut st = AccessState::new(tile, TileSize::from_px(u(12) as i64)?, f(16))?;
        st.pois = (24..bytes.len())
            .step_by(16)
            .map(|i| (f(i), f(i + 8)))
            .collect();
        if st
            .pois
            .iter()
            .any(|(a, b)| !a.is_finite() || !b.is_finite())
        {
            return Err(bad());
        }
        Ok(st)
    }

    /// Geographic position of each pixel centre: longitude per column, latitude per row (radians).
    fn pixel_centres(&self) -> (Vec<f64>, Vec<f64>) {
        let s = self.size.px() as i64;
        let (ox, oy) = self.tile.origin_px(self.size);
        let unit = (1i64 << PixelGrid::new(self.tile.z, self.size).map_or(0, |g| g.shift())) as f64;
        let lons = (0..s)
            .map(|i| vcs_to_radians((ox + i) as f64 * unit + unit / 2.0, 0.0).0)
            .collect();
        let lats = (0..s)
            .map(|j| vcs_to_radians(0.0, (oy + j) as f64 * unit + unit / 2.0).1)
            .collect();
        (lons, lats)
    }

    /// The POIs in one order whatever order they came in (parallel and distributed states merge
    /// in any order), so the float sums of a pixel are the same bytes every time.
    fn sorted_pois(&self) -> Vec<(f64, f64)> {
        let mut pois = self.pois.clone();
        pois.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        pois
    }

    /// The sums by cone stamping. `threads` > 1 splits tile rows across the pool;
    /// `on_progress` runs on the calling thread between chunks of POIs.
    pub fn compute(&self, threads: usize, on_progress: &mut dyn FnMut()) -> CoreResult<HeatGrid> {
        let side = self.size.px() as usize;
        let (lons, lats) = self.pixel_centres();
        let mut values = vec![0.0f64; side * side];
        let band_rows = side.div_ceil(threads.max(1) * 4).max(8);
        for chunk in self.sorted_pois().chunks(CHUNK) {
            on_progress();
            parallel::run(threads, || {
                values
                    .par_chunks_mut(band_rows * side)
                    .enumerate()
                    .for_each(|(b, band)| {
                        let first_row = b * band_rows;
                        for &poi in chunk {
                            stamp(band, first_row, side, &lons, &lats, poi, self.radius_km);
                        }
                    })
            });
        }
        HeatGrid::from_values(self.tile, self.size, self.pois.len() as u64, values)
    }

    /// The article's gather, straightforwardly: every pixel, every POI, haversine. The reference
    /// the fast path is tested against, and the baseline of the benchmark.
    pub fn compute_gather(&self) -> CoreResult<HeatGrid> {
        let side = self.size.px() as usize;
        let (lons, lats) = self.pixel_centres();
        let mut values = vec![0.0f64; side * side];
        let pois = self.sorted_pois();
        for (j, &lat) in lats.iter().enumerate() {
            for (i, &lon) in lons.iter().enumerate() {
                let mut sum = 0.0;
                for &(plon, plat) in &pois {
                    sum += (self.radius_km - haversine_km(lon, lat, plon, plat)).max(0.0);
                }
                values[j * side + i] = sum;
            }
        }
        HeatGrid::from_values(self.tile, self.size, self.pois.len() as u64, values)
    }
}

/// The article's distance: haversine on a sphere of `EARTH_RADIUS_KM`.
pub fn haversine_km(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let a = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().atan2((1.0 - a).sqrt())
}

/// Add one POI's cone to the rows of `band` (tile rows `first_row ..`).
fn stamp(
    band: &mut [f64],
    first_row: usize,
    side: usize,
    lons: &[f64],
    lats: &[f64],
    poi: (f64, f64),
    r: f64,
) {
    let (plon, plat) = poi;
    let rows = band.len() / side;
    // Columns are linear in longitude: find the window of those within reach once per row.
    let lon0 = lons[0];
    let dlon_px = if side > 1 { lons[1] - lons[0] } else { 1.0 };
    for row in 0..rows {
        let lat = lats[first_row + row];
        let dy = (lat - plat) * EARTH_RADIUS_KM;
        if dy.abs() >= r {
            continue;
        }
        let kx = EARTH_RADIUS_KM * ((lat + plat) / 2.0).cos();
        let half = (r * r - dy * dy).sqrt() / kx; // reach in longitude at this row
        let c0 = ((plon - half - lon0) / dlon_px).ceil().max(0.0) as usize;
        let c1 = (((plon + half - lon0) / dlon_px).floor() + 1.0).clamp(0.0, side as f64) as usize;
        let out = &mut band[row * side..(row + 1) * side];
        for (c, v) in out.iter_mut().enumerate().take(c1).skip(c0) {
            let dx = (lons[c] - plon) * kx;
            let d = (dx * dx + dy * dy).sqrt();
            if d < r {
                *v += r - d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::png::{decode, RgbaImage};
    use crate::geometry::vcs::{lat_to_vcs, lon_to_vcs};
    use crate::shading::shade::{shade, HeatStyle};

    /// `n` VCS points scattered over central Moscow (the article's city), seeded.
    fn moscow_points(n: usize) -> impl Iterator<Item = (i32, i32)> {
        let mut seed = 7u64;
        (0..n).map(move |_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let lon = 37.55 + ((seed >> 33) % 10000) as f64 / 10000.0 * 0.15;
            let lat = 55.70 + ((seed >> 13) % 10000) as f64 / 10000.0 * 0.10;
            (lon_to_vcs(lon).unwrap(), lat_to_vcs(lat).unwrap())
        })
    }

    /// POIs scattered around Moscow's centre (the article's city), some far away.
    fn moscow(n: usize, tile: Tile, size: TileSize) -> AccessState {
        let mut st = AccessState::new(tile, size, 1.2).unwrap();
        for (x, y) in moscow_points(n) {
            st.add_point(x, y).unwrap();
        }
        st
    }

    fn z12_tile() -> Tile {
        // The z12 tile over central Moscow.
        let x = lon_to_vcs(37.62).unwrap() as u32 >> 19;
        let y = lat_to_vcs(55.75).unwrap() as u32 >> 19;
        Tile::new(12, x as i32, y as i32).unwrap()
    }

    fn rgba(grid: &HeatGrid) -> RgbaImage {
        let png = shade(grid, &HeatStyle::accessibility_defaults()).unwrap();
        png.map_or_else(
            || RgbaImage::transparent(grid.side(), grid.side()),
            |p| decode(&p).unwrap(),
        )
    }

    #[test]
    fn a_state_of_too_many_pois_is_too_large_even_from_bytes() {
        let st = AccessState::new(Tile::new(4, 4, 6).unwrap(), TileSize::Px256, 1.2).unwrap();
        let mut bytes = st.to_bytes();
        bytes.resize(24 + (MAX_POIS + 1) * 16, 0);
        assert!(matches!(
            AccessState::from_bytes(&bytes),
            Err(CoreError::TooLarge { .. })
        ));
        bytes.truncate(24 + 16);
        assert_eq!(AccessState::from_bytes(&bytes).unwrap().pois.len(), 1);
    }

    #[test]
    fn stamping_equals_the_gather_within_one_level_per_channel() {
        for size in [TileSize::Px256, TileSize::Px512] {
            let st = moscow(300, z12_tile(), size);
            assert!(
                st.pois.len() > 20 && st.pois.len() < 300,
                "{}",
                st.pois.len()
            );
            let fast = st.compute(1, &mut || {}).unwrap();
            let exact = st.compute_gather().unwrap();
            let worst = fast
                .values()
                .iter()
                .zip(exact.values())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            // Both are rounded to millionths, so they may differ by one step.
            assert!(worst <= 1.000001e-6, "max |fast - gather| = {worst} km");
            let (a, b) = (rgba(&fast), rgba(&exact));
            for (p, q) in a.data.chunks_exact(4).zip(b.data.chunks_exact(4)) {
                if p[3] == 0 && q[3] == 0 {
                    continue;
                }
                assert!(
                    p.iter().zip(q).all(|(x, y)| x.abs_diff(*y) <= 1),
                    "{p:?} vs {q:?}"
                );
            }
        }
    }

    #[test]
    fn threads_do_not_change_the_result() {
        let st = moscow(1000, z12_tile(), TileSize::Px256);
        let mut calls = 0;
        let one = st.compute(1, &mut || calls += 1).unwrap();
        assert_eq!(calls, st.pois.len().div_ceil(CHUNK));
        assert_eq!(st.compute(4, &mut || {}).unwrap(), one);
    }

    #[test]
    fn pruned_pois_could_not_have_reached_the_tile() {
        let tile = z12_tile();
        let mut all = AccessState::new(tile, TileSize::Px256, 1.2).unwrap();
        all.reach = (-10.0, -10.0, 10.0, 10.0); // keep everything
        let pruned = moscow(2000, tile, TileSize::Px256);
        for (x, y) in moscow_points(2000) {
            all.add_point(x, y).unwrap();
        }
        assert!(pruned.pois.len() < all.pois.len());
        assert_eq!(
            pruned.compute(1, &mut || {}).unwrap().values(),
            all.compute(1, &mut || {}).unwrap().values()
        );
    }

    #[test]
    fn a_single_poi_draws_a_cone_of_the_right_height() {
        let tile = z12_tile();
        let (x0, y0, _, _) = tile.vcs_bounds();
        let mut st = AccessState::new(tile, TileSize::Px256, 1.2).unwrap();
        // At the centre of pixel (128, 128).
        let unit = 1i64 << (31 - 20);
        st.add_point(
            (x0 + 128 * unit + unit / 2) as i32,
            (y0 + 128 * unit + unit / 2) as i32,
        )
        .unwrap();
        let g = st.compute(1, &mut || {}).unwrap();
        let peak = g.values()[128 * 256 + 128];
        assert!((peak - 1.2).abs() < 1e-3, "{peak}");
        // z12 pixels at 55.75 N are about 21.5 m: 1.2 km is about 56 px.
        assert_eq!(g.values()[128 * 256 + 128 + 70], 0.0);
        assert!(g.values()[128 * 256 + 128 + 40] > 0.0);
    }

    #[test]
    fn key_ranges_hold_every_reaching_poi_and_bytes_round_trip() {
        let st = moscow(2000, z12_tile(), TileSize::Px256);
        let ranges = st.key_ranges();
        assert!(ranges.len() <= 81);
        for (x, y) in moscow_points(2000) {
            let mut one = AccessState::new(st.tile, st.size, 1.2).unwrap();
            one.add_point(x, y).unwrap();
            if !one.pois.is_empty() {
                let key = crate::geometry::vcs::vcs_key(x, y).unwrap();
                assert!(ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&key)));
            }
        }
        assert_eq!(AccessState::from_bytes(&st.to_bytes()).unwrap(), st);
        assert!(AccessState::from_bytes(&st.to_bytes()[..30]).is_err());
    }

    #[test]
    fn bad_radius_is_an_error() {
        for r in [0.0, -1.0, f64::NAN, 101.0] {
            assert!(
                AccessState::new(z12_tile(), TileSize::Px256, r).is_err(),
                "{r}"
            );
        }
    }

    /// A POI within its radius of +-180 reaches the tiles at the other edge of the map: its key
    /// is in their ranges and its cone shows at their edge column, at z10 and at z0.
    #[test]
    fn cones_near_the_antimeridian_reach_the_other_edge() {
        let (x, y) = (lon_to_vcs(179.999).unwrap(), lat_to_vcs(-17.0).unwrap());
        let key = crate::geometry::vcs::morton_interleave(x as u32, y as u32) as i64;
        // 1.2 km at z10; at z3 (20 km pixels) a 50 km radius, for which the whole-world tiles
        // of low zooms keep the POI at both edges.
        for (z, radius) in [(10, 1.2), (3, 50.0)] {
            let ty = Tile::containing(x as u32, y as u32, z).y;
            let tile = Tile::new(z as i32, 0, ty as i32).unwrap();
            let mut st = AccessState::new(tile, TileSize::Px256, radius).unwrap();
            assert!(
                st.key_ranges()
                    .iter()
                    .any(|&(lo, hi)| (lo..hi).contains(&key)),
                "z{z}"
            );
            st.add_point(x, y).unwrap();
            let grid = st.compute(2, &mut || {}).unwrap();
            let row = ((y as i64 >> (23 - z)) - ty as i64 * 256) as usize;
            assert!(
                grid.values()[row * 256] > 0.0,
                "z{z}: no heat at the west edge"
            );
            // A cone is a few pixels wide: nothing at the tile's east side.
            assert_eq!(grid.values()[row * 256 + 255], 0.0, "z{z}");
        }
    }
}

//! The Vast Coordinate System: the pixel space of Web Mercator at zoom 23.
//!
//! 2^23 tiles x 256 pixels = 2^31 units per axis. `x` grows east from longitude -180, `y` grows
//! south from latitude +85.0511287798. Both fit `int4` (0 ..= 2^31 - 1). Everything about zooms,
//! tiles and pixels is then an integer shift, and the Morton key (x and y interleaved) orders the
//! plane so that every tile and every pixel at every zoom is one contiguous key range.

use crate::error::{CoreError, CoreResult};

/// Bits per VCS axis.
pub const VCS_BITS: u32 = 31;
/// Units per VCS axis (2^31); valid coordinates are `0 .. VCS_SPAN`.
pub const VCS_SPAN: i64 = 1 << VCS_BITS;
/// Deepest zoom: 256-px tiles at zoom 23 have one VCS unit per pixel.
pub const MAX_ZOOM: u32 = 23;
/// Web Mercator's latitude limit, atan(sinh(pi)) in degrees; latitudes beyond it are clamped to it.
pub const MAX_LAT: f64 = 85.051_128_779_806_59;

/// Output size of a tile. A 512-px tile of zoom z covers the ground of the 256-px tile of zoom z
/// at twice the resolution, so its pixels are those of zoom z + 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileSize {
    /// 256 x 256 pixels, the usual web map tile.
    Px256,
    /// 512 x 512 pixels (high-DPI): the pixels of one zoom deeper.
    Px512,
}

impl TileSize {
    /// The size of `px` pixels per side: 256 or 512, else an error.
    pub fn from_px(px: i64) -> CoreResult<TileSize> {
        match px {
            256 => Ok(TileSize::Px256),
            512 => Ok(TileSize::Px512),
            other => Err(CoreError::out_of_range(
                "tile size",
                format!("must be 256 or 512, got {other}"),
            )),
        }
    }

    /// Pixels per tile side.
    pub fn px(self) -> u32 {
        match self {
            TileSize::Px256 => 256,
            TileSize::Px512 => 512,
        }
    }

    /// log2 of the pixel count per tile side.
    pub fn bits(self) -> u32 {
        match self {
            TileSize::Px256 => 8,
            TileSize::Px512 => 9,
        }
    }
}

/// A validated zoom: `0 ..= 23`.
pub fn check_zoom(z: i32) -> CoreResult<u32> {
    if (0..=MAX_ZOOM as i32).contains(&z) {
        Ok(z as u32)
    } else {
        Err(CoreError::out_of_range(
            "zoom",
            format!("must be between 0 and {MAX_ZOOM}, got {z}"),
        ))
    }
}

/// A validated VCS coordinate: `0 ..= 2^31 - 1` (negative `int4` values are not coordinates).
pub fn check_vcs(v: i32, what: &'static str) -> CoreResult<u32> {
    if v >= 0 {
        Ok(v as u32)
    } else {
        Err(CoreError::out_of_range(
            what,
            format!("must be between 0 and {}, got {v}", i32::MAX),
        ))
    }
}

/// A validated VCS point: both coordinates in `0 ..= 2^31 - 1`.
#[inline]
pub fn check_point(x: i32, y: i32) -> CoreResult<(u32, u32)> {
    if x < 0 || y < 0 {
        return Err(CoreError::out_of_range(
            "VCS point",
            format!(
                "must have coordinates between 0 and {}, got ({x}, {y})",
                i32::MAX
            ),
        ));
    }
    Ok((x as u32, y as u32))
}

/// Pixel grid of a zoom and tile size: world pixels have `level` bits per axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelGrid {
    /// Bits per axis of world pixel coordinates: zoom + log2(tile px), at most [`VCS_BITS`].
    pub level: u32,
}

impl PixelGrid {
    /// The grid in which tiles of zoom `z` and size `size` are drawn. 512-px tiles stop at zoom 22:
    /// beyond it a pixel would be smaller than a VCS unit.
    pub fn new(z: u32, size: TileSize) -> CoreResult<PixelGrid> {
        let level = z + size.bits();
        if level > VCS_BITS {
            return Err(CoreError::out_of_range(
                "zoom",
                format!(
                    "must be at most {} for {}-px tiles (a pixel cannot be smaller than a VCS unit), got {z}",
                    VCS_BITS - size.bits(),
                    size.px()
                ),
            ));
        }
        Ok(PixelGrid { level })
    }

    /// Right shift from a VCS coordinate to a world pixel of this grid.
    pub fn shift(self) -> u32 {
        VCS_BITS - self.level
    }

    /// World pixel of a VCS coordinate.
    pub fn pixel(self, v: u32) -> u32 {
        v >> self.shift()
    }

    /// One value per pixel of this grid: the Morton key with the sub-pixel bits dropped.
    pub fn pixel_key(self, key: i64) -> i64 {
        key >> (2 * self.shift())
    }
}

/// A validated tile address `(z, x, y)`, x and y in `0 .. 2^z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Zoom, `0 ..= 23`.
    pub z: u32,
    /// Column, counted east from longitude -180.
    pub x: u32,
    /// Row, counted south from the northern limit.
    pub y: u32,
}

impl Tile {
    /// Validate a tile address from SQL `int4` arguments.
    pub fn new(z: i32, x: i32, y: i32) -> CoreResult<Tile> {
        let z = check_zoom(z)?;
        let n = 1i64 << z;
        for (what, v) in [("tile x", x), ("tile y", y)] {
            if !(0..n).contains(&(v as i64)) {
                return Err(CoreError::out_of_range(
                    what,
                    format!("must be between 0 and {} at zoom {z}, got {v}", n - 1),
                ));
            }
        }
        Ok(Tile {
            z,
            x: x as u32,
            y: y as u32,
        })
    }

    /// The tile of zoom `z` holding a VCS point.
    pub fn containing(x: u32, y: u32, z: u32) -> Tile {
        Tile {
            z,
            x: tile_at_zoom(x, z),
            y: tile_at_zoom(y, z),
        }
    }

    /// Width of the tile in VCS units.
    pub fn span(self) -> i64 {
        VCS_SPAN >> self.z
    }

    /// Half-open Morton key range `[lo, hi)` holding exactly the keys of the points in this tile.
    pub fn key_range(self) -> (i64, i64) {
        let shift = 2 * (VCS_BITS - self.z);
        let t = morton_interleave(self.x, self.y) as i64;
        (t << shift, (t + 1) << shift)
    }

    /// Half-open VCS bounds `(xmin, ymin, xmax, ymax)`.
    pub fn vcs_bounds(self) -> (i64, i64, i64, i64) {
        let s = self.span();
        let (x0, y0) = (self.x as i64 * s, self.y as i64 * s);
        (x0, y0, x0 + s, y0 + s)
    }

    /// Envelope in degrees `(west, south, east, north)`.
    pub fn envelope(self) -> (f64, f64, f64, f64) {
        let (x0, y0, x1, y1) = self.vcs_bounds();
        (
            edge_to_lon(x0),
            edge_to_lat(y1),
            edge_to_lon(x1),
            edge_to_lat(y0),
        )
    }

    /// World pixel of the tile's top-left corner in the tile's pixel grid.
    pub fn origin_px(self, size: TileSize) -> (i64, i64) {
        let s = size.px() as i64;
        (self.x as i64 * s, self.y as i64 * s)
    }
}

/// Longitude in degrees to VCS x. Longitude must lie in `[-180, 180]`; 180 maps to the last unit.
pub fn lon_to_vcs(lon: f64) -> CoreResult<i32> {
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(CoreError::out_of_range(
            "longitude",
            format!("must be a finite number between -180 and 180, got {lon}"),
        ));
    }
    let v = ((lon + 180.0) / 360.0 * VCS_SPAN as f64).floor();
    Ok(v.min((VCS_SPAN - 1) as f64) as i32)
}

/// Latitude in degrees to VCS y. Latitude must lie in `[-90, 90]`; beyond Web Mercator's limit
/// (+-85.0511287798) it is clamped to the limit, as web maps draw it.
pub fn lat_to_vcs(lat: f64) -> CoreResult<i32> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(CoreError::out_of_range(
            "latitude",
            format!("must be a finite number between -90 and 90, got {lat}"),
        ));
    }
    let phi = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    // asinh(tan(phi)) is the Mercator ordinate ln(tan(pi/4 + phi/2)), stable near the equator.
    let m = phi.tan().asinh();
    let v = ((1.0 - m / std::f64::consts::PI) / 2.0 * VCS_SPAN as f64).floor();
    Ok(v.clamp(0.0, (VCS_SPAN - 1) as f64) as i32)
}

/// VCS x to the longitude of the centre of its unit.
pub fn vcs_to_lon(x: i32) -> CoreResult<f64> {
    let x = check_vcs(x, "VCS x")?;
    Ok(edge_to_lon(x as i64) + 180.0 / VCS_SPAN as f64)
}

/// VCS y to the latitude of the centre of its unit.
pub fn vcs_to_lat(y: i32) -> CoreResult<f64> {
    let y = check_vcs(y, "VCS y")?;
    Ok(ordinate_to_lat(y as f64 + 0.5))
}

fn edge_to_lon(x: i64) -> f64 {
    x as f64 / VCS_SPAN as f64 * 360.0 - 180.0
}

fn edge_to_lat(y: i64) -> f64 {
    ordinate_to_lat(y as f64)
}

fn ordinate_to_lat(y: f64) -> f64 {
    let m = std::f64::consts::PI * (1.0 - 2.0 * y / VCS_SPAN as f64);
    m.sinh().atan().to_degrees()
}

/// Pixel coordinate at zoom `z` (256-px tiles): `v >> (23 - z)`.
pub fn pixel_at_zoom(v: u32, z: u32) -> u32 {
    v >> (MAX_ZOOM - z)
}

/// Tile coordinate at zoom `z`: `v >> (31 - z)`.
pub fn tile_at_zoom(v: u32, z: u32) -> u32 {
    v >> (VCS_BITS - z)
}

/// Pixel coordinate inside its tile at zoom `z`.
pub fn pixel_in_tile(v: u32, z: u32, size: TileSize) -> CoreResult<u32> {
    let grid = PixelGrid::new(z, size)?;
    Ok(grid.pixel(v) & (size.px() - 1))
}

/// Spread the low 32 bits of `v` to the even bits of a u64.
#[inline]
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    x = (x | (x << 1)) & 0x5555_5555_5555_5555;
    x
}

/// Gather the even bits of `x` into a u32 (inverse of `spread`).
#[inline]
fn gather(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Morton code: x on the even bits, y on the odd bits.
#[inline]
pub fn morton_interleave(x: u32, y: u32) -> u64 {
    spread(x) | (spread(y) << 1)
}

/// Inverse of [`morton_interleave`].
#[inline]
pub fn morton_deinterleave(key: u64) -> (u32, u32) {
    (gather(key), gather(key >> 1))
}

/// The Morton key of a VCS point: 62 bits, so always a non-negative `int8` whose B-tree order
/// is key order.
pub fn vcs_key(x: i32, y: i32) -> CoreResult<i64> {
    let x = check_vcs(x, "VCS x")?;
    let y = check_vcs(y, "VCS y")?;
    Ok(morton_interleave(x, y) as i64)
}

/// The VCS point of a Morton key.
pub fn vcs_from_key(key: i64) -> CoreResult<(i32, i32)> {
    if !(0..VCS_SPAN * VCS_SPAN).contains(&key) {
        return Err(CoreError::out_of_range(
            "Morton key",
            format!("must be between 0 and 2^62 - 1, got {key}"),
        ));
    }
    let (x, y) = morton_deinterleave(key as u64);
    Ok((x as i32, y as i32))
}

/// Check that every key is a VCS point's; an error names the first that is not.
pub fn check_keys(keys: &[i64]) -> CoreResult<()> {
    // One check for the whole path: every key is in range when their bits together are.
    let bits = keys.iter().fold(0i64, |a, &k| a | k);
    if !(0..VCS_SPAN * VCS_SPAN).contains(&bits) {
        for &k in keys {
            vcs_from_key(k)?;
        }
    }
    Ok(())
}

/// Append the VCS points of Morton `keys` to `out` (a path as its table holds it); an error
/// names the first key out of range.
pub fn vcs_points_of_keys(keys: &[i64], out: &mut Vec<(u32, u32)>) -> CoreResult<()> {
    check_keys(keys)?;
    // (BMI2's bit gather would save about 1 ns a key on Intel, but costs hundreds of cycles
    // on AMD before Zen 3.)
    out.extend(keys.iter().map(|&k| morton_deinterleave(k as u64)));
    Ok(())
}

/// Morton key ranges holding every point within `margin` pixels of the tile (the tile itself
/// included), for dots that straddle tile edges. The ring around the tile is covered with aligned
/// square blocks (each one key range) no narrower than 1/32 of the tile, so a ring costs a bounded
/// number of index probes; ranges are sorted and merged. Callers still filter by pixel, since
/// blocks overshoot the ring. The world does not wrap across the antimeridian.
pub fn tile_key_ranges(tile: Tile, size: TileSize, margin: i64) -> CoreResult<Vec<(i64, i64)>> {
    let grid = PixelGrid::new(tile.z, size)?;
    let s = size.px() as i64;
    if !(0..=s).contains(&margin) {
        return Err(CoreError::out_of_range(
            "margin",
            format!("must be between 0 and the tile size ({s} px), got {margin}"),
        ));
    }
    let mut ranges = vec![tile.key_range()];
    if margin > 0 {
        let block = (margin as u64).next_power_of_two().max(s as u64 / 32) as i64;
        let block_bits = block.trailing_zeros();
        let world = 1i64 << grid.level;
        let (ox, oy) = tile.origin_px(size);
        let m = margin;
        let clamp = |v: i64| v.clamp(0, world - 1);
        // Across the antimeridian the ring wraps to the other edge of the map (x only: the
        // poles do not wrap).
        let (bx0, bx1) = (
            (ox - m).div_euclid(block),
            (ox + s + m - 1).div_euclid(block),
        );
        let (by0, by1) = (clamp(oy - m) / block, clamp(oy + s + m - 1) / block);
        let blocks_across = (world / block).max(1);
        let key_shift = 2 * (grid.shift() + block_bits);
        for by in by0..=by1 {
            for bx in bx0..=bx1 {
                let inside = bx * block >= ox
                    && (bx + 1) * block <= ox + s
                    && by * block >= oy
                    && (by + 1) * block <= oy + s;
                if !inside {
                    let b =
                        morton_interleave(bx.rem_euclid(blocks_across) as u32, by as u32) as i64;
                    ranges.push((b << key_shift, (b + 1) << key_shift));
                }
            }
        }
    }
    Ok(merge_ranges(ranges))
}

/// Half-open key ranges sorted, with overlapping and touching ones merged.
pub fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// Morton key ranges covering the VCS box `[x0, x1] x [y0, y1]` (inclusive) with aligned square
/// blocks, at most `per_side` + 1 of them along each side, sorted and merged.
pub fn bbox_key_ranges(x0: u32, y0: u32, x1: u32, y1: u32, per_side: u32) -> Vec<(i64, i64)> {
    let extent = (x1.saturating_sub(x0)).max(y1.saturating_sub(y0)) as u64 + 1;
    let mut bits = 0u32;
    while (extent >> bits) > per_side.max(1) as u64 && bits < VCS_BITS {
        bits += 1;
    }
    let mut ranges = Vec::new();
    for by in (y0 >> bits)..=(y1 >> bits) {
        for bx in (x0 >> bits)..=(x1 >> bits) {
            let b = morton_interleave(bx, by) as i64;
            ranges.push((b << (2 * bits), (b + 1) << (2 * bits)));
        }
    }
    merge_ranges(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn corners_of_the_world() {
        assert_eq!(lon_to_vcs(-180.0).unwrap(), 0);
        assert_eq!(lon_to_vcs(180.0).unwrap(), i32::MAX);
        assert_eq!(lon_to_vcs(0.0).unwrap(), 1 << 30);
        assert_eq!(lat_to_vcs(0.0).unwrap(), 1 << 30);
        assert_eq!(lat_to_vcs(MAX_LAT).unwrap(), 0);
        assert_eq!(lat_to_vcs(90.0).unwrap(), 0);
        assert_eq!(lat_to_vcs(-90.0).unwrap(), i32::MAX);
        let (w, s, e, n) = Tile::new(0, 0, 0).unwrap().envelope();
        assert_eq!((w, e), (-180.0, 180.0));
        assert!((n - MAX_LAT).abs() < 1e-9 && (s + MAX_LAT).abs() < 1e-9);
    }

    #[test]
    fn bad_coordinates_are_errors() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 180.0001, -181.0] {
            assert!(lon_to_vcs(bad).is_err(), "{bad}");
        }
        for bad in [f64::NAN, f64::INFINITY, 90.0001, -91.0] {
            assert!(lat_to_vcs(bad).is_err(), "{bad}");
        }
        assert!(vcs_to_lon(-1).is_err());
        assert!(vcs_key(0, -5).is_err());
        assert!(vcs_from_key(-1).is_err());
        assert!(vcs_from_key(1 << 62).is_err());
        let mut out = Vec::new();
        for bad in [-1, 1 << 62, i64::MAX, i64::MIN] {
            let err = vcs_points_of_keys(&[5, bad, 7], &mut out).unwrap_err();
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }

    /// Keys decoded a path at a time are the points one `vcs_from_key` at a time gives.
    #[test]
    fn keys_decode_as_points() {
        let keys: Vec<i64> = (0..10_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2) as i64)
            .chain([0, (1 << 62) - 1])
            .collect();
        let mut out = Vec::new();
        vcs_points_of_keys(&keys, &mut out).unwrap();
        let one_by_one: Vec<(u32, u32)> = keys
            .iter()
            .map(|&k| vcs_from_key(k).map(|(x, y)| (x as u32, y as u32)).unwrap())
            .collect();
        assert_eq!(out, one_by_one);
    }

    #[test]
    fn bad_tiles_are_errors() {
        assert!(Tile::new(-1, 0, 0).is_err());
        assert!(Tile::new(24, 0, 0).is_err());
        assert!(Tile::new(3, 8, 0).is_err());
        assert!(Tile::new(3, 0, -1).is_err());
        assert!(Tile::new(23, (1 << 23) - 1, (1 << 23) - 1).is_ok());
        assert!(PixelGrid::new(23, TileSize::Px512).is_err());
        assert!(PixelGrid::new(22, TileSize::Px512).is_ok());
        assert!(TileSize::from_px(300).is_err());
    }

    #[test]
    fn key_range_of_deepest_and_shallowest_tiles() {
        assert_eq!(Tile::new(0, 0, 0).unwrap().key_range(), (0, 1 << 62));
        let t = Tile::new(23, 5, 9).unwrap();
        let (lo, hi) = t.key_range();
        assert_eq!(hi - lo, 1 << 16);
        assert_eq!(lo, morton_interleave(5 << 8, 9 << 8) as i64);
    }

    #[test]
    fn margin_ranges_cover_the_ring_and_stay_bounded() {
        let tile = Tile::new(10, 262, 380).unwrap();
        let ranges = tile_key_ranges(tile, TileSize::Px256, 3).unwrap();
        assert!(ranges.len() <= 4 * 34 + 1, "{}", ranges.len());
        let (ox, oy) = tile.origin_px(TileSize::Px256);
        let grid = PixelGrid::new(10, TileSize::Px256).unwrap();
        // Every pixel within 3 px of the tile lies in some range; pixels 40 px away do not.
        for py in oy - 3..oy + 259 {
            for px in [ox - 3, ox - 1, ox + 100, ox + 258] {
                let key =
                    morton_interleave((px as u32) << grid.shift(), (py as u32) << grid.shift());
                assert!(ranges
                    .iter()
                    .any(|&(lo, hi)| (lo..hi).contains(&(key as i64))));
            }
            let far = morton_interleave(
                ((ox - 40) as u32) << grid.shift(),
                (py as u32) << grid.shift(),
            );
            assert!(!ranges
                .iter()
                .any(|&(lo, hi)| (lo..hi).contains(&(far as i64))));
        }
        assert_eq!(
            tile_key_ranges(tile, TileSize::Px256, 0).unwrap(),
            vec![tile.key_range()]
        );
        // At the world's edge the ring is clipped, not wrapped.
        let corner = Tile::new(2, 0, 0).unwrap();
        for (lo, _) in tile_key_ranges(corner, TileSize::Px256, 8).unwrap() {
            assert!(lo >= 0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn bbox_ranges_hold_every_point_of_the_box(x0 in 0u32..1 << 31, y0 in 0u32..1 << 31,
                                                   w in 0u32..1 << 26, h in 0u32..1 << 26,
                                                   fx in 0.0f64..=1.0, fy in 0.0f64..=1.0) {
            let (x1, y1) = (x0.saturating_add(w).min(i32::MAX as u32), y0.saturating_add(h).min(i32::MAX as u32));
            let ranges = bbox_key_ranges(x0, y0, x1, y1, 8);
            prop_assert!(ranges.len() <= 81);
            let px = x0 + ((x1 - x0) as f64 * fx) as u32;
            let py = y0 + ((y1 - y0) as f64 * fy) as u32;
            let key = morton_interleave(px, py) as i64;
            prop_assert!(ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&key)));
        }

        #[test]
        fn lonlat_round_trip_within_one_unit(lon in -180.0f64..=180.0, lat in -MAX_LAT..=MAX_LAT) {
            let unit_lon = 360.0 / VCS_SPAN as f64;
            let x = lon_to_vcs(lon).unwrap();
            let back = vcs_to_lon(x).unwrap();
            prop_assert!((back - lon).abs() <= unit_lon, "lon {lon} -> {x} -> {back}");
            let y = lat_to_vcs(lat).unwrap();
            let back = vcs_to_lat(y).unwrap();
            // One VCS unit in latitude is largest at the equator: 360 / 2^31 degrees times cos(lat).
            prop_assert!((back - lat).abs() <= unit_lon, "lat {lat} -> {y} -> {back}");
        }

        #[test]
        fn vcs_round_trip_is_exact(x in 0i32..=i32::MAX, y in 0i32..=i32::MAX) {
            prop_assert_eq!(lon_to_vcs(vcs_to_lon(x).unwrap()).unwrap(), x);
            prop_assert_eq!(lat_to_vcs(vcs_to_lat(y).unwrap()).unwrap(), y);
            prop_assert_eq!(vcs_from_key(vcs_key(x, y).unwrap()).unwrap(), (x, y));
        }

        #[test]
        fn a_points_tile_contains_its_pixel(x in 0i32..=i32::MAX, y in 0i32..=i32::MAX) {
            let key = vcs_key(x, y).unwrap();
            let (x, y) = (x as u32, y as u32);
            for z in 0..=MAX_ZOOM {
                for size in [TileSize::Px256, TileSize::Px512] {
                    let Ok(grid) = PixelGrid::new(z, size) else {
                        prop_assert!(z == 23 && size == TileSize::Px512);
                        continue;
                    };
                    let tile = Tile::containing(x, y, z);
                    let (ox, oy) = tile.origin_px(size);
                    let (px, py) = (grid.pixel(x) as i64, grid.pixel(y) as i64);
                    let s = size.px() as i64;
                    prop_assert!((ox..ox + s).contains(&px) && (oy..oy + s).contains(&py));
                    prop_assert_eq!(px - ox, pixel_in_tile(x, z, size).unwrap() as i64);
                    prop_assert_eq!(py - oy, pixel_in_tile(y, z, size).unwrap() as i64);
                    // The pixel key is one value per pixel: it decodes to the same pixel.
                    let (kx, ky) = morton_deinterleave(grid.pixel_key(key) as u64);
                    prop_assert_eq!((kx as i64, ky as i64), (px, py));
                }
                // The 256-px pixel helper is the grid of 256-px tiles.
                prop_assert_eq!(pixel_at_zoom(x, z), PixelGrid::new(z, TileSize::Px256).unwrap().pixel(x));
            }
        }

        #[test]
        fn a_tiles_key_range_holds_exactly_its_points(x in 0i32..=i32::MAX, y in 0i32..=i32::MAX,
                                                       tx in 0u32..1 << 23, ty in 0u32..1 << 23) {
            let key = vcs_key(x, y).unwrap();
            for z in 0..=MAX_ZOOM {
                // A random tile (usually not the point's) and the point's own tile.
                let other = Tile { z, x: tx >> (23 - z), y: ty >> (23 - z) };
                let own = Tile::containing(x as u32, y as u32, z);
                for tile in [other, own] {
                    let (lo, hi) = tile.key_range();
                    let (x0, y0, x1, y1) = tile.vcs_bounds();
                    let inside = (x0..x1).contains(&(x as i64)) && (y0..y1).contains(&(y as i64));
                    prop_assert_eq!((lo..hi).contains(&key), inside);
                }
                prop_assert!((own.key_range().0..own.key_range().1).contains(&key));
            }
        }

        #[test]
        fn envelope_matches_vcs_bounds(z in 0u32..=23, tx in 0u32..1 << 23, ty in 0u32..1 << 23) {
            let tile = Tile { z, x: tx >> (23 - z), y: ty >> (23 - z) };
            let (w, s, e, n) = tile.envelope();
            prop_assert!(w < e && s < n);
            // The envelope's corners map back to the tile's first unit and just past its last.
            let (x0, y0, _, _) = tile.vcs_bounds();
            prop_assert_eq!(lon_to_vcs(w).unwrap() as i64, x0);
            prop_assert!((lat_to_vcs(n).unwrap() as i64 - y0).abs() <= 1);
        }
    }
}

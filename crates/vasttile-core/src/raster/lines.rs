//! Paths drawn as lines into heat grids (the Strava post: heat from activity paths, each segment
//! rasterised with Bresenham's line into the count grid of every tile it crosses).
//!
//! A segment's pixels are defined in the world pixel grid of the tile's zoom, by the midpoint
//! rule: along the major axis, step k in 0..n puts the minor coordinate at
//! m0 + round((k * dm) / n) (halves rounding up), which is what Bresenham draws. Since the pixels
//! depend only on world coordinates, a tile jumps straight to the steps that fall inside it and
//! the tiles a path crosses join exactly, with no seam and no pixel counted twice. Each segment
//! draws its start but not its end (the next segment starts there), and a path adds its last
//! point once: one pass of a path adds 1 (its weight) to each pixel on it.
//!
//! The world wraps at +-180: a segment whose ends are more than half the world apart in x
//! (180 degrees of longitude) goes the short way, across the antimeridian. It is drawn in the
//! frame of its start (its end moved by one world width), and again one world width over, so the
//! part beyond the map's edge enters from the other edge, with the same pixels.

use crate::error::CoreResult;
use crate::geometry::vcs::{check_keys, morton_deinterleave, morton_interleave, VCS_BITS};
use crate::raster::heat::{fixed_weight, tile_index, tile_pixel, HeatGrid};
use crate::raster::line_patterns::{short_lanes, short_segment, LANES};

/// Half the world in VCS units: segments longer than this in x go the other way round.
pub const HALF_WORLD: i64 = 1 << (VCS_BITS - 1);

/// The VCS box (xmin, ymin, xmax, ymax) of the pixels a path may draw: its points' box, or
/// the whole width of the world in x when a segment goes round across the antimeridian (a box
/// on the flat map cannot hold both ends). `None` for no points.
pub fn path_bounds(points: impl IntoIterator<Item = (u32, u32)>) -> Option<(u32, u32, u32, u32)> {
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    let mut last: Option<u32> = None;
    let mut across = false;
    for (x, y) in points {
        across |= last.is_some_and(|l| (x as i64 - l as i64).abs() > HALF_WORLD);
        last = Some(x);
        bounds = Some(match bounds {
            None => (x, y, x, y),
            Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x), d.max(y)),
        });
    }
    bounds.map(|(a, b, c, d)| {
        if across {
            (0, b, (1 << VCS_BITS) - 1, d)
        } else {
            (a, b, c, d)
        }
    })
}

/// Add one path (VCS points in order) to `grid` with `weight`. Returns the pixels drawn; the
/// grid's row count counts the paths that reached the tile.
pub fn add_path(grid: &mut HeatGrid, points: &[(u32, u32)], weight: f64) -> CoreResult<u64> {
    HeatGrid::check_weight(weight)?;
    let drawn = draw_segments(grid, points, weight);
    grid.check_sums()?;
    if drawn > 0 {
        grid.rows += 1;
    }
    Ok(drawn)
}

/// [`add_path`] of a path as its table holds it, Morton keys in order.
pub fn add_path_keys(grid: &mut HeatGrid, keys: &[i64], weight: f64) -> CoreResult<u64> {
    HeatGrid::check_weight(weight)?;
    let drawn = draw_keys(grid, keys, weight)?;
    grid.check_sums()?;
    if drawn > 0 {
        grid.rows += 1;
    }
    Ok(drawn)
}

/// [`draw_segments`] of a path as Morton keys, read where they lie in the tile without
/// decoding them whole: a key's bits above the pixel's are the tile's Morton code, the next
/// ones the pixel's index in it.
fn draw_keys(grid: &mut HeatGrid, keys: &[i64], weight: f64) -> CoreResult<u64> {
    check_keys(keys)?;
    if grid.tile.z == 0 {
        // The one tile of z0 is the whole world: two ends inside may be half a world apart.
        thread_local! {
            static POINTS: std::cell::RefCell<Vec<(u32, u32)>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        return POINTS.with_borrow_mut(|points| {
            points.clear();
            points.extend(keys.iter().map(|&k| morton_deinterleave(k as u64)));
            let drawn = draw_segments(grid, points, weight);
            // A long path's buffer is not kept.
            if points.capacity() > 1 << 16 {
                *points = Vec::new();
            }
            Ok(drawn)
        });
    }
    let pixel_bits = 2 * grid.pixel_shift();
    let side_bits = 2 * grid.side().trailing_zeros();
    let code = morton_interleave(grid.tile.x, grid.tile.y);
    let locate = |first: usize, at: &mut Located| {
        let keys = &keys[first..first + at.z.len()];
        for (z, &k) in at.z.iter_mut().zip(keys) {
            let pixel = k as u64 >> pixel_bits;
            let outside = (pixel >> side_bits != code) as u32;
            *z = (pixel as u32 & ((1 << side_bits) - 1)) | outside << 31;
        }
        // Apart, so that both loops are vector code.
        for ((x, y), &z) in at.x.iter_mut().zip(at.y.iter_mut()).zip(at.z.iter()) {
            let (px, py) = tile_pixel(z & !OUTSIDE);
            (*x, *y) = (px as i32, py as i32);
        }
    };
    let point = |i: usize| morton_deinterleave(keys[i] as u64);
    Ok(draw_path(grid, keys.len(), weight, locate, point))
}

/// Separates the runs of one path in one tile in [`add_tile_runs`] (Morton keys are >= 0).
pub const RUN_BREAK: i64 = -1;

/// Add the runs of one path that fall in the grid's tile (Morton keys, runs separated by
/// [`RUN_BREAK`], as a pyramid build splits a path), drawing each like [`draw_segments`]; the
/// path counts as one row when it drew a pixel. Returns the pixels drawn.
pub fn add_tile_runs(grid: &mut HeatGrid, keys: &[i64], weight: f64) -> CoreResult<u64> {
    HeatGrid::check_weight(weight)?;
    let mut drawn = 0;
    for part in keys.split(|&k| k == RUN_BREAK) {
        drawn += draw_keys(grid, part, weight)?;
    }
    grid.check_sums()?;
    if drawn > 0 {
        grid.rows += 1;
    }
    Ok(drawn)
}

/// Draw the segments between consecutive points (each its start, not its end) and the last
/// point; returns the pixels drawn. A path split into runs of segments draws the same pixels
/// as the whole path, as long as each run's last point starts no segment of the tile.
pub fn draw_segments(grid: &mut HeatGrid, points: &[(u32, u32)], weight: f64) -> u64 {
    let shift = grid.pixel_shift();
    let side = grid.side() as i64;
    let (ox, oy) = grid.tile.origin_px(grid.size);
    if grid.tile.z == 0 {
        // The one tile of z0 is the whole world: two ends inside may be half a world apart.
        let mut adder = grid.pixel_adder(fixed_weight(weight));
        return raster_segments(points, shift, (ox, oy), side, |z| adder.add_at(z));
    }
    let locate = |first: usize, at: &mut Located| {
        let points = &points[first..first + at.z.len()];
        for (((z, x), y), &(px, py)) in
            at.z.iter_mut()
                .zip(at.x.iter_mut())
                .zip(at.y.iter_mut())
                .zip(points)
        {
            let (tx, ty) = ((px >> shift) as i64 - ox, (py >> shift) as i64 - oy);
            let inside = (0..side).contains(&tx) && (0..side).contains(&ty);
            *z = tile_index(tx as u32, ty as u32) as u32 | (!inside as u32) << 31;
            (*x, *y) = (tx as i32, ty as i32);
        }
    };
    draw_path(grid, points.len(), weight, locate, |i| points[i])
}

/// Where points of a path lie in a tile, a chunk at a time: each one's pixel column, row and
/// index ([`tile_index`]), the index with [`OUTSIDE`] set for a point outside the tile.
#[derive(Default)]
struct Located {
    x: Vec<i32>,
    y: Vec<i32>,
    z: Vec<u32>,
}

/// Marks a point outside the tile in [`Located`].
const OUTSIDE: u32 = 1 << 31;

/// Points located at a time.
const LOCATED: usize = 1024;

/// Tile indices of short segments gathered before they are added (a multiple of [`LANES`]).
const GATHERED: usize = 128 * LANES;

/// [`draw_segments`] of the `n` points of a path in a tile of zoom >= 1 (so two points inside
/// are less than half a world apart), located by `locate(first, at)` (points from `first` on,
/// as many as `at` holds) and given in VCS by `point`. Segments inside the tile are drawn from
/// the table of short segments or by [`raster_inside`], the others by [`raster_pair`].
#[inline(always)]
fn draw_path(
    grid: &mut HeatGrid,
    n: usize,
    weight: f64,
    locate: impl Fn(usize, &mut Located),
    point: impl Fn(usize) -> (u32, u32),
) -> u64 {
    thread_local! {
        // Reused by every path a thread draws.
        static BUFFERS: std::cell::RefCell<(Located, Vec<u32>)> = std::cell::RefCell::default();
    }
    if n == 0 {
        return 0;
    }
    let shift = grid.pixel_shift();
    let side = grid.side() as i64;
    let origin = grid.tile.origin_px(grid.size);
    BUFFERS.with_borrow_mut(|(at, gathered)| {
        gathered.resize(GATHERED, 0);
        let mut adder = grid.pixel_adder(fixed_weight(weight));
        let mut len = 0;
        let mut drawn = 0u64;
        // Chunks overlap by a point: the last of one starts the first segment of the next.
        let mut first = 0;
        loop {
            let m = (n - first).min(LOCATED);
            for v in [&mut at.x, &mut at.y] {
                v.resize(m, 0);
            }
            at.z.resize(m, 0);
            locate(first, at);
            let (xs, ys, zs) = (&at.x[..m], &at.y[..m], &at.z[..m]);
            for j in 1..m {
                let (za, zb) = (zs[j - 1], zs[j]);
                if (za | zb) & OUTSIDE == 0 {
                    let (dx, dy) = (xs[j] - xs[j - 1], ys[j] - ys[j - 1]);
                    if let Some(slot) = short_segment(dx, dy) {
                        let (lanes, steps) = short_lanes(za, slot);
                        gathered[len..len + LANES].copy_from_slice(&lanes);
                        len += steps as usize;
                        drawn += steps as u64;
                        // Room for the next segment's lanes.
                        if len + LANES > GATHERED {
                            gathered[..len]
                                .iter()
                                .for_each(|&z| adder.add_at(z as usize));
                            len = 0;
                        }
                    } else {
                        let p = (xs[j - 1] as u32, ys[j - 1] as u32);
                        let q = (xs[j] as u32, ys[j] as u32);
                        drawn += raster_inside(p, q, &mut |z| adder.add_at(z));
                    }
                } else {
                    let (p, q) = (point(first + j - 1), point(first + j));
                    drawn += raster_pair(p, q, shift, origin, side, &mut |z| adder.add_at(z));
                }
            }
            if first + m == n {
                // The last point.
                if zs[m - 1] & OUTSIDE == 0 {
                    gathered[len] = zs[m - 1];
                    len += 1;
                    drawn += 1;
                }
                break;
            }
            first += m - 1;
        }
        gathered[..len]
            .iter()
            .for_each(|&z| adder.add_at(z as usize));
        drawn
    })
}

/// The pixels of `draw_segments` handed to `plot`, as their Morton index in the tile
/// ([`tile_index`]).
#[inline]
pub fn raster_segments(
    points: &[(u32, u32)],
    shift: u32,
    (ox, oy): (i64, i64),
    side: i64,
    mut plot: impl FnMut(usize),
) -> u64 {
    let mut drawn = 0u64;
    for w in points.windows(2) {
        drawn += raster_pair(w[0], w[1], shift, (ox, oy), side, &mut plot);
    }
    if let Some(&(x, y)) = points.last() {
        let (x, y) = ((x >> shift) as i64 - ox, (y >> shift) as i64 - oy);
        if (0..side).contains(&x) && (0..side).contains(&y) {
            plot(tile_index(x as u32, y as u32));
            drawn += 1;
        }
    }
    drawn
}

/// The pixels of the segment between VCS points `p` and `q` in the tile whose corner is world
/// pixel `(ox, oy)` (at `shift`), going the short way round the world.
#[inline(always)]
fn raster_pair(
    p: (u32, u32),
    q: (u32, u32),
    shift: u32,
    (ox, oy): (i64, i64),
    side: i64,
    plot: &mut impl FnMut(usize),
) -> u64 {
    // Coordinates relative to the tile's corner from here on.
    let px = |(x, y): (u32, u32)| ((x >> shift) as i64 - ox, (y >> shift) as i64 - oy);
    let world = (1i64 << VCS_BITS) >> shift;
    let ((x0, y0), (x1, y1)) = (px(p), px(q));
    let across = q.0 as i64 - p.0 as i64;
    let wrap = if across > HALF_WORLD {
        -world
    } else if across < -HALF_WORLD {
        world
    } else {
        0
    };
    let mut drawn = raster_segment((x0, y0), (x1 + wrap, y1), side, plot);
    if wrap != 0 {
        drawn += raster_segment((x0 - wrap, y0), (x1, y1), side, plot);
    }
    drawn
}

/// The pixels of one segment from `(x0, y0)` to `(x1, y1)` (world pixels relative to the tile's
/// corner) that fall in the tile, its start drawn and its end not.
#[inline(always)]
fn raster_segment(
    (x0, y0): (i64, i64),
    (x1, y1): (i64, i64),
    side: i64,
    plot: &mut impl FnMut(usize),
) -> u64 {
    // Most segments of a tile lie wholly inside it: no clipping, no check per pixel.
    let inside = |v: i64| (0..side).contains(&v);
    if inside(x0) && inside(x1) && inside(y0) && inside(y1) {
        return raster_inside((x0 as u32, y0 as u32), (x1 as u32, y1 as u32), plot);
    }
    raster_clipped((x0, y0), (x1, y1), side, plot)
}

/// [`raster_segment`] of a segment whose ends both lie in the tile (so every step does): the
/// same steps from k = 0, where the quotient is 0 and the rest n. The coordinates are kept
/// spread to the even (x) and odd (y) bits of the Morton index, where a step is an add and a
/// mask: +1 adds the complement of the mask plus one (so carries run through the other bits),
/// -1 adds all ones.
#[inline(always)]
fn raster_inside((x0, y0): (u32, u32), (x1, y1): (u32, u32), plot: &mut impl FnMut(usize)) -> u64 {
    const XS: u32 = 0x5555_5555;
    const YS: u32 = 0xAAAA_AAAA;
    let step = |d: i32, bits: u32| match d.signum() {
        1 => bits.wrapping_neg(),
        -1 => u32::MAX,
        _ => 0,
    };
    let (dx, dy) = (x1 as i32 - x0 as i32, y1 as i32 - y0 as i32);
    let (adx, ady) = (dx.unsigned_abs(), dy.unsigned_abs());
    let (sx, sy) = (step(dx, XS), step(dy, YS));
    let z0 = tile_index(x0, y0) as u32;
    let (zx, zy) = (z0 & XS, z0 & YS);
    // The two axes get their own loop (masks as constants), so the step does not choose
    // between them per pixel.
    if adx >= ady {
        walk_spread::<XS, YS>((zx, zy), (sx, sy), adx, ady, plot)
    } else {
        walk_spread::<YS, XS>((zy, zx), (sy, sx), ady, adx, plot)
    }
}

/// The `n` steps of [`raster_inside`] along the major axis `a` (its bits `A`), the minor axis `b`
/// (bits `B`) moving `m` times: each coordinate spread to its bits, each step an add and a mask.
#[inline(always)]
fn walk_spread<const A: u32, const B: u32>(
    (mut za, mut zb): (u32, u32),
    (sa, sb): (u32, u32),
    n: u32,
    m: u32,
    plot: &mut impl FnMut(usize),
) -> u64 {
    let mut rest = n;
    for _ in 0..n {
        plot((za | zb) as usize);
        za = za.wrapping_add(sa) & A;
        rest += 2 * m;
        let carry = rest >= 2 * n;
        rest -= if carry { 2 * n } else { 0 };
        zb = if carry { zb.wrapping_add(sb) & B } else { zb };
    }
    n as u64
}

/// [`raster_segment`] of any segment: the steps that fall in the tile along the major axis are
/// found by arithmetic, the minor coordinate is checked per pixel.
#[inline(always)]
fn raster_clipped(
    (x0, y0): (i64, i64),
    (x1, y1): (i64, i64),
    side: i64,
    plot: &mut impl FnMut(usize),
) -> u64 {
    let mut drawn = 0u64;
    // Skip segments whose box misses the tile.
    if x0.max(x1) < 0 || x0.min(x1) >= side || y0.max(y1) < 0 || y0.min(y1) >= side {
        return 0;
    }
    let (dx, dy) = (x1 - x0, y1 - y0);
    let x_major = dx.abs() >= dy.abs();
    // Major axis: coordinate a from a0 in direction sa for n steps; minor b from b0 in sb.
    let (a0, b0, da, db) = if x_major {
        (x0, y0, dx, dy)
    } else {
        (y0, x0, dy, dx)
    };
    let n = da.abs();
    if n == 0 {
        return 0;
    }
    let (sa, sb, m) = (da.signum(), db.signum(), db.abs());
    // Steps k in [0, n) whose major coordinate a0 + sa k lies in [0, side).
    let (k_lo, k_hi) = if sa > 0 {
        (-a0, side - 1 - a0)
    } else {
        (a0 - (side - 1), a0)
    };
    let (k_start, k_end) = (k_lo.max(0), k_hi.min(n - 1));
    if k_start > k_end {
        return 0;
    }
    // minor(k) = b0 + sb * floor((2 k m + n) / (2 n)), kept incrementally as quotient and rest.
    let two_n = 2 * n;
    let num = 2 * k_start * m + n;
    let (q, mut rest) = (num / two_n, num % two_n);
    let (mut a, mut b) = (a0 + sa * k_start, b0 + sb * q);
    let step = 2 * m;
    for _ in k_start..=k_end {
        // The major coordinate is inside by the choice of k; only the minor can be out.
        if (0..side).contains(&b) {
            let (x, y) = if x_major { (a, b) } else { (b, a) };
            plot(tile_index(x as u32, y as u32));
            drawn += 1;
        }
        a += sa;
        // Branch-free carry: for slopes between the axes it is taken at random.
        rest += step;
        let carry = rest >= two_n;
        rest -= if carry { two_n } else { 0 };
        b += if carry { sb } else { 0 };
    }
    drawn
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::vcs::{Tile, TileSize};
    use proptest::prelude::*;

    /// The same path in world pixels of zoom 1 (512 x 512 px), as VCS points at pixel corners.
    fn vcs(p: &[(u32, u32)]) -> Vec<(u32, u32)> {
        p.iter().map(|&(x, y)| (x << 22, y << 22)).collect()
    }

    #[test]
    fn a_straight_line_lights_each_pixel_once() {
        let mut g = HeatGrid::new(Tile::new(1, 0, 0).unwrap(), TileSize::Px256).unwrap();
        let drawn = add_path(&mut g, &vcs(&[(10, 10), (30, 10), (30, 20)]), 1.0).unwrap();
        assert_eq!(drawn, 21 + 10);
        let v = g.values();
        assert!(v.iter().all(|&h| h == 0.0 || h == 1.0));
        assert_eq!(v[10 * 256 + 30], 1.0); // the corner, shared by two segments, counted once
        assert_eq!(v[20 * 256 + 30], 1.0);
        assert_eq!((g.lit(), g.rows), (31, 1));
    }

    #[test]
    fn a_diagonal_is_bresenham() {
        let mut g = HeatGrid::new(Tile::new(1, 0, 0).unwrap(), TileSize::Px256).unwrap();
        add_path(&mut g, &vcs(&[(0, 0), (6, 3)]), 2.0).unwrap();
        let lit: Vec<usize> = g
            .values()
            .iter()
            .enumerate()
            .filter(|(_, &h)| h > 0.0)
            .map(|(i, _)| i)
            .collect();
        // (0,0) (1,1) (2,1) (3,2) (4,2) (5,3) (6,3): halves round up.
        let expected: Vec<usize> = [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)]
            .iter()
            .map(|&(x, y)| y * 256 + x)
            .collect();
        let mut e = expected.clone();
        e.sort();
        assert_eq!(lit, e);
        assert!(g.values().iter().all(|&h| h == 0.0 || h == 2.0));
    }

    /// A path heavier than a pixel can sum is an error, not a wrapped sum.
    #[test]
    fn too_much_heat_on_a_line_is_an_error() {
        let mut g = HeatGrid::new(Tile::new(1, 0, 0).unwrap(), TileSize::Px256).unwrap();
        let path = vcs(&[(10, 10), (20, 10)]);
        for _ in 0..9 {
            add_path(&mut g, &path, 1e12).unwrap();
        }
        let err = add_path(&mut g, &path, 1e12).unwrap_err().to_string();
        assert!(err.contains("heat"), "{err}");
    }

    proptest! {
        /// The fast path of segments inside the tile lights the pixels, in the order, of the
        /// general one (which clips by arithmetic and checks every pixel).
        #[test]
        fn segments_inside_draw_as_clipped_ones(
            a in (0i64..512, 0i64..512),
            b in (0i64..512, 0i64..512),
            near_edge in any::<bool>(),
        ) {
            // Both tile sizes; ends pulled to the last rows and columns half of the time.
            let edge = |v: i64| if near_edge { 500 + v % 12 } else { v };
            let (a, b) = ((edge(a.0), a.1), (b.0, edge(b.1)));
            for side in [256, 512] {
                let (a, b) = ((a.0 % side, a.1 % side), (b.0 % side, b.1 % side));
                let (mut fast, mut clipped) = (Vec::new(), Vec::new());
                let n = raster_inside((a.0 as u32, a.1 as u32), (b.0 as u32, b.1 as u32), &mut |z| fast.push(z));
                let m = raster_clipped(a, b, side, &mut |z| clipped.push(z));
                prop_assert_eq!(n, m);
                prop_assert_eq!(fast, clipped);
            }
        }

        /// Whatever the segment (in, across or outside the tile), the dispatch draws what the
        /// clipping path draws.
        #[test]
        fn any_segment_draws_as_the_clipping_path(
            a in (-600i64..1100, -600i64..1100),
            b in (-600i64..1100, -600i64..1100),
        ) {
            for side in [256, 512] {
                let (mut any, mut clipped) = (Vec::new(), Vec::new());
                let n = raster_segment(a, b, side, &mut |z| any.push(z));
                let m = raster_clipped(a, b, side, &mut |z| clipped.push(z));
                prop_assert_eq!(n, m);
                prop_assert_eq!(any, clipped);
            }
        }

        /// Paths drawn through the table of short segments and from their keys light what the
        /// per-segment path lights, wherever their points lie: inside the tile, around it, far
        /// away or across the antimeridian, with steps short and long, at both tile sizes.
        #[test]
        fn paths_draw_as_segment_by_segment(
            start in (0u32..1024, 0u32..1024),
            steps in prop::collection::vec((-12i64..=12, -12i64..=12, 0u32..40), 1..60),
            z in 1u32..=23,
            big in any::<bool>(),
        ) {
            // Zoom 23 has 256-px tiles only.
            let (size, z) = if big { (TileSize::Px512, z.min(22)) } else { (TileSize::Px256, z) };
            // A tile near the start, and points around it in world pixels of its zoom: mostly
            // short steps, now and then a long one.
            let tile = Tile::new(z as i32, (start.0 >> 2).min((1 << z) - 1) as i32, (start.1 >> 2).min((1 << z) - 1) as i32).unwrap();
            let side = size.px() as i64;
            let world = (1i64 << z) * side;
            let (ox, oy) = tile.origin_px(size);
            let (mut x, mut y) = (ox + (start.0 as i64 % (2 * side)) - side / 2, oy + (start.1 as i64 % (2 * side)) - side / 2);
            let shift = VCS_BITS - z - side.trailing_zeros();
            let mut points = Vec::new();
            for &(dx, dy, long) in &steps {
                let k = if long >= 36 { 30 } else { 1 };
                x = (x + dx * k).rem_euclid(world);
                y = (y + dy * k).clamp(0, world - 1);
                // Within the pixel, off its corner where a pixel spans VCS units.
                let inner = ((1i64 << shift) - 1).min(7);
                points.push(((x << shift | inner) as u32, (y << shift) as u32));
            }
            let fixed = fixed_weight(1.0);
            let mut want = HeatGrid::new(tile, size).unwrap();
            let n = {
                let shift = want.pixel_shift();
                let mut adder = want.pixel_adder(fixed);
                raster_segments(&points, shift, (ox, oy), side, |z| adder.add_at(z))
            };
            let mut from_points = HeatGrid::new(tile, size).unwrap();
            prop_assert_eq!(draw_segments(&mut from_points, &points, 1.0), n);
            prop_assert_eq!(from_points.values(), want.values());
            let keys: Vec<i64> = points.iter().map(|&(x, y)| morton_interleave(x, y) as i64).collect();
            let mut from_keys = HeatGrid::new(tile, size).unwrap();
            prop_assert_eq!(add_path_keys(&mut from_keys, &keys, 1.0).unwrap(), n);
            prop_assert_eq!(from_keys.values(), want.values());
        }

        /// Drawing a path into the four z1 tiles equals drawing it into one 512-px z0 tile (the
        /// same pixels): tiles join exactly.
        #[test]
        fn tiles_join_exactly(path in prop::collection::vec((0u32..512, 0u32..512), 1..40)) {
            let path = vcs(&path);
            let mut whole = HeatGrid::new(Tile::new(0, 0, 0).unwrap(), TileSize::Px512).unwrap();
            let total = add_path(&mut whole, &path, 1.0).unwrap();
            let w = whole.values();
            let mut sum = 0;
            for (tx, ty) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let mut g = HeatGrid::new(Tile::new(1, tx, ty).unwrap(), TileSize::Px256).unwrap();
                sum += add_path(&mut g, &path, 1.0).unwrap();
                let v = g.values();
                for y in 0..256 {
                    for x in 0..256 {
                        let (wx, wy) = (tx as usize * 256 + x, ty as usize * 256 + y);
                        prop_assert_eq!(v[y * 256 + x], w[wy * 512 + wx]);
                    }
                }
            }
            prop_assert_eq!(sum, total);
        }
    }

    /// A path longer than a chunk of located points (the chunks share a point) draws what the
    /// per-segment path draws, wandering in and out of the tile.
    #[test]
    fn long_paths_draw_across_chunks() {
        use crate::geometry::vcs::morton_interleave;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for size in [TileSize::Px256, TileSize::Px512] {
            let tile = Tile::new(13, 4000, 3000).unwrap();
            let side = size.px() as i64;
            let (ox, oy) = tile.origin_px(size);
            let shift = VCS_BITS - 13 - side.trailing_zeros();
            let (mut x, mut y) = (ox + side / 2, oy + side / 2);
            let points: Vec<(u32, u32)> = (0..3 * LOCATED + 17)
                .map(|_| {
                    x += rng.random_range(-9..=9i64);
                    y += rng.random_range(-9..=9i64);
                    ((x << shift) as u32, (y << shift) as u32)
                })
                .collect();
            let mut want = HeatGrid::new(tile, size).unwrap();
            let n = {
                let shift = want.pixel_shift();
                let mut adder = want.pixel_adder(fixed_weight(1.0));
                raster_segments(&points, shift, (ox, oy), side, |z| adder.add_at(z))
            };
            assert!(n > 2000, "{n}");
            let mut from_points = HeatGrid::new(tile, size).unwrap();
            assert_eq!(draw_segments(&mut from_points, &points, 1.0), n);
            assert_eq!(from_points.values(), want.values());
            let keys: Vec<i64> = points
                .iter()
                .map(|&(x, y)| morton_interleave(x, y) as i64)
                .collect();
            let mut from_keys = HeatGrid::new(tile, size).unwrap();
            assert_eq!(add_path_keys(&mut from_keys, &keys, 1.0).unwrap(), n);
            assert_eq!(from_keys.values(), want.values());
        }
    }

    /// Tokyo to Los Angeles goes the short way, over the Pacific: at z2 it lights only the tiles
    /// at the map's east and west edges, and the pixels drawn in both equal those of the same
    /// path moved half a world east (where it crosses no edge), pixel for pixel.
    #[test]
    fn paths_across_the_antimeridian_go_the_short_way() {
        use crate::geometry::vcs::{lat_to_vcs, lon_to_vcs, morton_interleave};
        use crate::pyramid::build::tiles_of_path;
        let p = |lon: f64, lat: f64| {
            (
                lon_to_vcs(lon).unwrap() as u32,
                lat_to_vcs(lat).unwrap() as u32,
            )
        };
        let path = [p(139.69, 35.69), p(-118.24, 34.05)];
        let tiles = tiles_of_path(&path, 2).unwrap();
        assert_eq!(
            tiles,
            vec![morton_interleave(0, 1), morton_interleave(3, 1)]
        );
        // Its box (for a GiST index) spans the world's width; a path that stays is boxed tight.
        let (x0, _, x1, _) = path_bounds(path).unwrap();
        assert_eq!((x0, x1), (0, (1 << VCS_BITS) - 1));
        let (x0, _, x1, _) = path_bounds([path[0], p(150.0, 30.0)]).unwrap();
        assert_eq!((x0, x1), (path[0].0, p(150.0, 30.0).0));
        // Half a world east: an exact number of pixels at every zoom up to 22.
        let half = 1u32 << 30;
        let moved: Vec<(u32, u32)> = path
            .iter()
            .map(|&(x, y)| ((x + half) % (1 << 31), y))
            .collect();
        for z in [2, 5, 9] {
            let world = 1u32 << z;
            let world_px = world as i64 * 256;
            // Every pixel drawn, in world pixels (each once: heat 1).
            let draw = |path: &[(u32, u32)]| {
                let t = Tile::containing(path[0].0, path[0].1, z).y;
                let mut pixels = Vec::new();
                for tx in 0..world {
                    for ty in t.saturating_sub(1)..=(t + 1).min(world - 1) {
                        let tile = Tile::new(z as i32, tx as i32, ty as i32).unwrap();
                        let mut g = HeatGrid::new(tile, TileSize::Px256).unwrap();
                        draw_segments(&mut g, path, 1.0);
                        for (i, &h) in g.values().iter().enumerate().filter(|(_, &h)| h > 0.0) {
                            assert_eq!(h, 1.0, "z{z}: a pixel drawn twice");
                            pixels.push((
                                tx as i64 * 256 + (i % 256) as i64,
                                ty as i64 * 256 + (i / 256) as i64,
                            ));
                        }
                    }
                }
                pixels
            };
            let mut across: Vec<(i64, i64)> = draw(&path)
                .into_iter()
                .map(|(x, y)| ((x + world_px / 2) % world_px, y))
                .collect();
            let mut plain = draw(&moved);
            across.sort_unstable();
            plain.sort_unstable();
            assert!(plain.len() > 100, "z{z}");
            assert_eq!(across, plain, "z{z}");
        }
    }
}

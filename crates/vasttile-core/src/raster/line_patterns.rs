//! Short segments drawn from a table. Most segments of real paths span a few pixels, where a
//! per-pixel loop costs little but its length and direction, different for every segment, cost
//! a mispredicted branch or two each. A segment of at most [`REACH`] pixels along each axis
//! instead looks up its pixels' offsets (made at compile time by the rule of
//! [`super::lines`]) and makes [`LANES`] tile indices at once, with no branch; the caller keeps
//! as many as the segment has pixels and overwrites the rest with the next segment's.

use wide::u32x8;

/// The longest segment, in pixels along each axis, drawn from the table.
pub const REACH: i32 = 8;
/// Tile indices made per short segment: at least its pixels (at most `REACH`).
pub const LANES: usize = 8;

const SPAN: usize = (2 * REACH + 1) as usize;
/// Even bits of a Morton index: x.
const XS: u32 = 0x5555_5555;
/// Odd bits: y.
const YS: u32 = 0xAAAA_AAAA;

/// The offsets of one segment's pixels from its start, added to the start's x bits and y bits
/// (a cache line). A step >= 0 is spread to its axis's bits plus the other axis's bits (so a
/// carry runs through them); a step < 0 is the negated spread (a borrow runs through the
/// zeros). Either way the sum, masked to the axis's bits, is the spread coordinate.
#[repr(align(64))]
struct Pattern {
    x: [u32; LANES],
    y: [u32; LANES],
}

/// Every short segment's pattern and its number of pixels, by [`short_segment`]'s slot.
struct Table {
    patterns: [Pattern; SPAN * SPAN],
    steps: [u8; SPAN * SPAN],
}

static TABLE: Table = table();

/// Bits of `v` (< 2^16) moved to the even bits.
const fn spread(v: u32) -> u32 {
    let mut out = 0;
    let mut b = 0;
    while b < 16 {
        out |= ((v >> b) & 1) << (2 * b);
        b += 1;
    }
    out
}

/// The offset of step `d` along the axis whose bits are `bits`.
const fn offset(d: i32, bits: u32) -> u32 {
    let s = if bits == XS { 1 } else { 2 };
    if d >= 0 {
        (spread(d as u32) * s).wrapping_add(!bits)
    } else {
        (spread(d.unsigned_abs()) * s).wrapping_neg()
    }
}

const fn table() -> Table {
    let mut out = Table {
        patterns: [const {
            Pattern {
                x: [0; LANES],
                y: [0; LANES],
            }
        }; SPAN * SPAN],
        steps: [0; SPAN * SPAN],
    };
    let mut dx = -REACH;
    while dx <= REACH {
        let mut dy = -REACH;
        while dy <= REACH {
            let p = &mut out.patterns[index(dx, dy)];
            // Major axis a (n steps), minor b moving m times: step k puts b at
            // floor((2 k m + n) / (2 n)), halves rounding up, as `lines` draws.
            let x_major = dx.abs() >= dy.abs();
            let (n, m) = if x_major {
                (dx.abs(), dy.abs())
            } else {
                (dy.abs(), dx.abs())
            };
            let (sa, sb) = if x_major {
                (dx.signum(), dy.signum())
            } else {
                (dy.signum(), dx.signum())
            };
            out.steps[index(dx, dy)] = n as u8;
            let mut k = 0;
            while k < n {
                let (a, b) = (sa * k, sb * ((2 * k * m + n) / (2 * n)));
                let (ox, oy) = if x_major { (a, b) } else { (b, a) };
                p.x[k as usize] = offset(ox, XS);
                p.y[k as usize] = offset(oy, YS);
                k += 1;
            }
            // Unused lanes repeat the start (offset 0).
            while k < LANES as i32 {
                p.x[k as usize] = offset(0, XS);
                p.y[k as usize] = offset(0, YS);
                k += 1;
            }
            dy += 1;
        }
        dx += 1;
    }
    out
}

/// The table slot of a segment with steps (dx, dy), both within `REACH`.
const fn index(dx: i32, dy: i32) -> usize {
    (dx + REACH) as usize * SPAN + (dy + REACH) as usize
}

/// The table slot of a segment from a pixel to another `(dx, dy)` away, or `None` when it is
/// longer than `REACH` along an axis.
#[inline(always)]
pub fn short_segment(dx: i32, dy: i32) -> Option<usize> {
    let (ux, uy) = ((dx + REACH) as u32, (dy + REACH) as u32);
    (ux < SPAN as u32 && uy < SPAN as u32).then_some(ux as usize * SPAN + uy as usize)
}

/// The tile indices (Morton, [`super::heat::tile_index`]) of the pixels of short segment `slot`
/// starting at tile index `z0`, and how many of them are the segment's (its start drawn, its
/// end not; the other lanes repeat the start). Both ends must lie in the tile.
#[inline(always)]
pub fn short_lanes(z0: u32, slot: usize) -> ([u32; LANES], u32) {
    let p = &TABLE.patterns[slot];
    let (zx, zy) = (z0 & XS, z0 & YS);
    // Vectors (wide's adds wrap), which the compiler's own vectorising made a muddle of.
    let x = (u32x8::splat(zx) + u32x8::from(p.x)) & u32x8::splat(XS);
    let y = (u32x8::splat(zy) + u32x8::from(p.y)) & u32x8::splat(YS);
    ((x | y).to_array(), TABLE.steps[slot] as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::heat::tile_index;

    /// Every slot against the rule, from starts across both tile sizes (ends inside).
    #[test]
    fn the_table_draws_the_midpoint_rule() {
        for dx in -REACH..=REACH {
            for dy in -REACH..=REACH {
                let slot = short_segment(dx, dy).unwrap();
                for (x0, y0) in [(8, 8), (100, 37), (247, 255 - 8), (503, 8), (300, 503)] {
                    let (out, n) = short_lanes(tile_index(x0, y0) as u32, slot);
                    let (adx, ady) = (dx.abs(), dy.abs());
                    assert_eq!(n as i32, adx.max(ady));
                    for k in 0..n as i32 {
                        // Along the major axis k; the minor rounds halves up.
                        let (n, m) = (adx.max(ady), adx.min(ady));
                        let minor = (2 * k * m + n) / (2 * n);
                        let (ox, oy) = if adx >= ady {
                            (k * dx.signum(), minor * dy.signum())
                        } else {
                            (minor * dx.signum(), k * dy.signum())
                        };
                        let want = tile_index((x0 as i32 + ox) as u32, (y0 as i32 + oy) as u32);
                        assert_eq!(out[k as usize] as usize, want, "({dx}, {dy}) step {k}");
                    }
                }
            }
        }
        assert_eq!(short_segment(REACH + 1, 0), None);
        assert_eq!(short_segment(0, -REACH - 1), None);
    }
}

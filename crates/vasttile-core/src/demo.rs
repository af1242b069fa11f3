//! Demo data: a synthetic city of activities (the `synthetic_activities` SQL function), for
//! demos, tests and benchmarks. Behind the `demo` feature.

use crate::geometry::activity::metres_per_unit;
use crate::geometry::vcs::VCS_SPAN;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A synthetic city of activities for demos, tests and benchmarks: a jittered street grid with
/// arterial roads, activities that wander it at realistic speeds by type, GPS noise, stops at
/// junctions, some flagged virtual (drawn as straight laps, the made-up GPS they would carry)
/// and a few car trips labelled as rides.
pub struct SyntheticCity {
    /// Centre of the city as a VCS point `(x, y)`.
    pub centre: (u32, u32),
    /// Half-width of the square street grid around the centre, in metres.
    pub radius_m: f64,
    /// Spacing of the streets (side of a block), in metres.
    pub block_m: f64,
    /// Points in every activity (each activity has exactly this many).
    pub points_per_activity: usize,
}

/// One activity of a [`SyntheticCity`]: a path of VCS points with a time for each.
pub struct SyntheticActivity {
    /// Activity type: `"run"`, `"ride"` or `"walk"` (car trips are labelled `"ride"`).
    pub kind: &'static str,
    /// A virtual ride: a made-up lap off the street grid.
    pub is_virtual: bool,
    /// Flagged private (about 2% of activities).
    pub is_private: bool,
    /// The path as VCS points, clamped to the valid range.
    pub points: Vec<(u32, u32)>,
    /// Seconds since the start of the activity, one per point, non-decreasing.
    pub times: Vec<f64>,
}

impl SyntheticCity {
    /// Activity number `id` of the city (the same for the same seed and id).
    pub fn activity(&self, seed: u64, id: u64) -> SyntheticActivity {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(id));
        let unit = metres_per_unit(self.centre.1);
        let blocks = (self.radius_m / self.block_m) as i64;
        // Junction (i, j) of the grid, jittered by a hash so every activity sees the same city.
        let junction = |i: i64, j: i64| -> (f64, f64) {
            let h = (i.wrapping_mul(73_856_093) ^ j.wrapping_mul(19_349_663)) as u64;
            let h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let jx = ((h >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 0.3;
            let jy = (((h >> 16) & 0xFF_FFFF) as f64 / (1u64 << 24) as f64 - 0.5) * 0.3;
            (
                (i as f64 + jx) * self.block_m,
                (j as f64 + jy) * self.block_m,
            )
        };
        let roll: f64 = rng.random();
        let (kind, speed, dt, is_virtual, car) = match roll {
            r if r < 0.45 => ("run", rng.random_range(2.3..4.2), 3.0, false, false),
            r if r < 0.80 => ("ride", rng.random_range(4.5..9.0), 4.0, false, false),
            r if r < 0.92 => ("walk", rng.random_range(1.1..1.6), 5.0, false, false),
            r if r < 0.97 => ("ride", rng.random_range(6.0..10.0), 4.0, true, false),
            _ => ("ride", rng.random_range(14.0..30.0), 4.0, false, true),
        };
        let n = self.points_per_activity;
        let gps = Normal::new(0.0, 3.0).expect("finite");
        let mut points_m: Vec<(f64, f64)> = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        if is_virtual {
            // A made-up lap: a circle far from any street, the same for every virtual rider.
            let r = 0.6 * self.radius_m;
            let phase: f64 = rng.random_range(0.0..std::f64::consts::TAU);
            for k in 0..n {
                let a = phase + k as f64 * speed * dt / r;
                points_m.push((1.8 * self.radius_m + r * a.cos(), r * a.sin()));
                times.push(k as f64 * dt);
            }
        } else {
            // Start near the centre more often than at the edge (busier in town).
            let spread = (blocks as f64 * 0.45).max(1.0);
            let pick = |rng: &mut ChaCha8Rng| -> i64 {
                let v: f64 = Normal::new(0.0, spread).expect("finite").sample(rng);
                (v.round() as i64).clamp(-blocks, blocks)
            };
            let (mut i, mut j) = (pick(&mut rng), pick(&mut rng));
            let (mut di, mut dj) = (1i64, 0i64);
            let mut t = 0.0;
            let mut at = junction(i, j);
            'walk: while points_m.len() < n {
                // Turn at junctions now and then. Arterials (every 8th street) carry more: on
                // one, keep going; crossing one, turn onto it half the time.
                let on_arterial = if di != 0 { j % 8 == 0 } else { i % 8 == 0 };
                let crossing_arterial = if di != 0 { i % 8 == 0 } else { j % 8 == 0 };
                let turn = if on_arterial {
                    0.08
                } else if crossing_arterial {
                    0.5
                } else {
                    0.3
                };
                if rng.random::<f64>() < turn {
                    (di, dj) = if rng.random::<bool>() {
                        (dj, -di)
                    } else {
                        (-dj, di)
                    };
                }
                if (i + di).abs() > blocks || (j + dj).abs() > blocks {
                    (di, dj) = (-di, -dj);
                }
                let next = junction(i + di, j + dj);
                let len = ((next.0 - at.0).powi(2) + (next.1 - at.1).powi(2)).sqrt();
                let steps = ((len / (speed * dt)).ceil() as usize).max(1);
                for s in 1..=steps {
                    let f = s as f64 / steps as f64;
                    let p = (at.0 + f * (next.0 - at.0), at.1 + f * (next.1 - at.1));
                    points_m.push((p.0 + gps.sample(&mut rng), p.1 + gps.sample(&mut rng)));
                    t += dt;
                    times.push(t);
                    if points_m.len() == n {
                        break 'walk;
                    }
                }
                (i, j, at) = (i + di, j + dj, next);
                // Wait at a junction now and then (not cars: they are already too fast).
                if !car && rng.random::<f64>() < 0.12 {
                    let wait = rng.random_range(20.0..90.0);
                    let mut w = 0.0;
                    while w < wait && points_m.len() < n {
                        points_m.push((at.0 + gps.sample(&mut rng), at.1 + gps.sample(&mut rng)));
                        w += dt;
                        t += dt;
                        times.push(t);
                    }
                }
            }
        }
        let max = (VCS_SPAN - 1) as f64;
        let to_vcs = |(x, y): (f64, f64)| {
            (
                (self.centre.0 as f64 + x / unit).round().clamp(0.0, max) as u32,
                (self.centre.1 as f64 - y / unit).round().clamp(0.0, max) as u32,
            )
        };
        SyntheticActivity {
            kind,
            is_virtual,
            is_private: rng.random::<f64>() < 0.02,
            points: points_m.into_iter().map(to_vcs).collect(),
            times,
        }
    }
}

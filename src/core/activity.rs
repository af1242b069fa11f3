//! Activities (the Strava post): ordered GPS points with timestamps and a type, filtered before
//! they are drawn as paths.
//!
//! The filters, each of which can be turned off:
//! - flagged activities (virtual, such as indoor-trainer rides with made-up GPS; private) are
//!   left out;
//! - an activity faster on average than its type's speed limit is left out (a "run" at car
//!   speed is mislabelled);
//! - stops: once the time-averaged velocity over a window falls below a threshold, later points
//!   are dropped until the track leaves a radius around where it stopped (no blobs of heat at
//!   traffic lights and cafés);
//! - every point of an activity moves by one random offset drawn from a normal distribution
//!   (2 m by default), seeded by the activity's id so a rebuild draws the same offset: it breaks
//!   up one-pixel-wide lines where phones snapped GPS to the road.

use super::error::{CoreError, CoreResult};
use super::style::StyleReader;
use super::vcs::{vcs_to_lat, VCS_SPAN};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::Value;
use std::collections::BTreeMap;

/// Web Mercator's equatorial circumference in metres (EPSG:3857's sphere).
const EQUATOR_M: f64 = 2.0 * std::f64::consts::PI * 6_378_137.0;

/// Metres per VCS unit on the ground at VCS row `y`.
pub fn metres_per_unit(y: u32) -> f64 {
    let lat = vcs_to_lat(y.min(VCS_SPAN as u32 - 1) as i32).unwrap_or(0.0);
    EQUATOR_M * lat.to_radians().cos() / VCS_SPAN as f64
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActivityFilters {
    pub exclude_virtual: bool,
    pub exclude_private: bool,
    /// Largest average speed (m/s) per activity type; types not named have no limit.
    pub speed_limits: BTreeMap<String, f64>,
    /// Stop detection: (window in s, speed threshold in m/s, radius in m), or off.
    pub stops: Option<StopRule>,
    /// Standard deviation of the per-activity offset in metres (0: off), and the seed.
    pub offset_m: f64,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StopRule {
    pub window_s: f64,
    pub speed: f64,
    pub radius_m: f64,
}

impl Default for ActivityFilters {
    fn default() -> Self {
        ActivityFilters {
            exclude_virtual: true,
            exclude_private: true,
            // Faster than a world-record marathon pace; a fast descent on a bike; a brisk hike.
            speed_limits: [("run", 6.5), ("ride", 22.0), ("walk", 3.0), ("hike", 3.0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            stops: Some(StopRule {
                window_s: 30.0,
                speed: 0.5,
                radius_m: 15.0,
            }),
            offset_m: 2.0,
            seed: 0,
        }
    }
}

impl ActivityFilters {
    pub const KEYS: [&'static str; 5] = [
        "exclude_flagged",
        "speed_limits",
        "stops",
        "offset_m",
        "seed",
    ];

    /// Filters from JSON such as `{"stops": false, "offset_m": 0, "speed_limits": {"run": 7}}`
    /// (`exclude_flagged`: true/false; `stops`: false or {"window_s", "speed", "radius_m"};
    /// `speed_limits`: false or an object of type -> m/s replacing the defaults).
    pub fn from_json(value: &Value) -> CoreResult<ActivityFilters> {
        let mut r = StyleReader::new(value)?;
        let mut f = ActivityFilters::default();
        if let Some(v) = r.take("exclude_flagged") {
            let b = v.as_bool().ok_or_else(|| {
                CoreError::style("exclude_flagged", format!("must be true or false, got {v}"))
            })?;
            f.exclude_virtual = b;
            f.exclude_private = b;
        }
        match r.take("speed_limits") {
            None => {}
            Some(Value::Bool(false)) => f.speed_limits.clear(),
            Some(Value::Object(m)) => {
                f.speed_limits.clear();
                for (kind, v) in m {
                    let limit = v
                        .as_f64()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| {
                            CoreError::style(
                                "speed_limits",
                                format!(
                                    "\"{kind}\" must be a speed in m/s greater than 0, got {v}"
                                ),
                            )
                        })?;
                    f.speed_limits.insert(kind, limit);
                }
            }
            Some(v) => {
                return Err(CoreError::style(
                    "speed_limits",
                    format!("must be false or an object of activity type to m/s, got {v}"),
                ))
            }
        }
        match r.take("stops") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => f.stops = None,
            Some(v @ Value::Object(_)) => {
                let mut s = StyleReader::new(&v)?;
                let d = f.stops.expect("on by default");
                f.stops = Some(StopRule {
                    window_s: s.number("window_s", d.window_s, 1.0, 86_400.0)?,
                    speed: s.number("speed", d.speed, 0.0, 1_000.0)?,
                    radius_m: s.number("radius_m", d.radius_m, 0.0, 100_000.0)?,
                });
                s.finish(&["window_s", "speed", "radius_m"])?;
            }
            Some(v) => {
                return Err(CoreError::style(
                    "stops",
                    format!("must be true, false or an object, got {v}"),
                ))
            }
        }
        f.offset_m = r.number("offset_m", f.offset_m, 0.0, 1_000.0)?;
        f.seed = r.number("seed", 0.0, 0.0, u32::MAX as f64)? as u64;
        r.finish(&Self::KEYS)?;
        Ok(f)
    }

    /// No filtering at all.
    pub fn none() -> ActivityFilters {
        ActivityFilters {
            exclude_virtual: false,
            exclude_private: false,
            speed_limits: BTreeMap::new(),
            stops: None,
            offset_m: 0.0,
            seed: 0,
        }
    }
}

/// One activity as stored: VCS points in order, seconds since its start, its type and flags.
pub struct Activity<'a> {
    pub id: i64,
    pub kind: &'a str,
    pub is_virtual: bool,
    pub is_private: bool,
    pub points: &'a [(u32, u32)],
    /// One per point, non-decreasing; `None` when the activity has no times (then the speed and
    /// stop filters do not apply).
    pub times: Option<&'a [f64]>,
}

/// The path to draw, or `None` when the filters leave the activity out.
pub fn filter(a: &Activity<'_>, f: &ActivityFilters) -> CoreResult<Option<Vec<(u32, u32)>>> {
    if (f.exclude_virtual && a.is_virtual) || (f.exclude_private && a.is_private) {
        return Ok(None);
    }
    if let Some(t) = a.times {
        if t.len() != a.points.len() {
            return Err(CoreError::out_of_range(
                "activity times",
                format!(
                    "must be one per point: {} points, {} times (activity {})",
                    a.points.len(),
                    t.len(),
                    a.id
                ),
            ));
        }
        if t.iter().any(|v| !v.is_finite()) || t.windows(2).any(|w| w[1] < w[0]) {
            return Err(CoreError::out_of_range(
                "activity times",
                format!("must be finite and never decrease (activity {})", a.id),
            ));
        }
    }
    if a.points.is_empty() {
        return Ok(None);
    }
    let scale = metres_per_unit(a.points[0].1);
    let dist = |p: (u32, u32), q: (u32, u32)| {
        let dx = p.0 as f64 - q.0 as f64;
        let dy = p.1 as f64 - q.1 as f64;
        (dx * dx + dy * dy).sqrt() * scale
    };
    if let (Some(limit), Some(t)) = (f.speed_limits.get(a.kind), a.times) {
        let length: f64 = a.points.windows(2).map(|w| dist(w[0], w[1])).sum();
        let duration = t[t.len() - 1] - t[0];
        if duration > 0.0 && length / duration > *limit {
            return Ok(None);
        }
    }
    let mut kept: Vec<(u32, u32)> = match (f.stops, a.times) {
        (Some(rule), Some(t)) => drop_stops(a.points, t, rule, dist),
        _ => a.points.to_vec(),
    };
    if f.offset_m > 0.0 {
        let mut rng =
            ChaCha8Rng::seed_from_u64(f.seed ^ (a.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let normal = Normal::new(0.0, f.offset_m).expect("offset_m is finite and >= 0");
        let (dx, dy) = (
            normal.sample(&mut rng) / scale,
            normal.sample(&mut rng) / scale,
        );
        let max = (VCS_SPAN - 1) as f64;
        for p in &mut kept {
            p.0 = (p.0 as f64 + dx).round().clamp(0.0, max) as u32;
            p.1 = (p.1 as f64 + dy).round().clamp(0.0, max) as u32;
        }
    }
    Ok(Some(kept))
}

/// Drop the points of stops: when the displacement over the last `window_s` seconds, divided by
/// the time, falls below `speed`, drop what follows until the track is more than `radius_m`
/// from the point where it stopped.
fn drop_stops(
    points: &[(u32, u32)],
    t: &[f64],
    rule: StopRule,
    dist: impl Fn((u32, u32), (u32, u32)) -> f64,
) -> Vec<(u32, u32)> {
    let mut kept = Vec::with_capacity(points.len());
    // Start of the averaging window among the points kept since the last stop.
    let mut window_start = 0;
    let mut stopped_at: Option<(u32, u32)> = None;
    for i in 0..points.len() {
        if let Some(s) = stopped_at {
            if dist(points[i], s) <= rule.radius_m {
                continue;
            }
            stopped_at = None;
            window_start = i;
        }
        kept.push(points[i]);
        while t[i] - t[window_start] > rule.window_s {
            window_start += 1;
        }
        // A full window is needed before speaking of a stop (the window may have skipped
        // ahead past a gap; then the previous point starts it).
        let start = if window_start == i {
            i.saturating_sub(1)
        } else {
            window_start
        };
        let elapsed = t[i] - t[start];
        if elapsed >= rule.window_s * 0.5 && start < i {
            let v = dist(points[start], points[i]) / elapsed;
            if v < rule.speed {
                stopped_at = Some(points[i]);
            }
        }
    }
    kept
}

/// A synthetic city of activities for demos, tests and benchmarks: a jittered street grid with
/// arterial roads, activities that wander it at realistic speeds by type, GPS noise, stops at
/// junctions, some flagged virtual (drawn as straight laps, the made-up GPS they would carry)
/// and a few car trips labelled as rides.
pub struct SyntheticCity {
    pub centre: (u32, u32),
    pub radius_m: f64,
    pub block_m: f64,
    pub points_per_activity: usize,
}

pub struct SyntheticActivity {
    pub kind: &'static str,
    pub is_virtual: bool,
    pub is_private: bool,
    pub points: Vec<(u32, u32)>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::vcs::{lat_to_vcs, lon_to_vcs};

    fn london() -> (u32, u32) {
        (
            lon_to_vcs(-0.1).unwrap() as u32,
            lat_to_vcs(51.5).unwrap() as u32,
        )
    }

    /// A straight line east at `speed` m/s, one point a second, pausing `pause` s at its middle.
    fn track(speed: f64, pause: usize) -> (Vec<(u32, u32)>, Vec<f64>) {
        let unit = metres_per_unit(london().1);
        let (mut pts, mut t) = (Vec::new(), Vec::new());
        let mut x = 0.0;
        for s in 0..(200 + pause) {
            if !(100..100 + pause).contains(&s) {
                x += speed;
            }
            pts.push((london().0 + (x / unit) as u32, london().1));
            t.push(s as f64);
        }
        (pts, t)
    }

    fn run<'a>(pts: &'a [(u32, u32)], t: &'a [f64], kind: &'a str) -> Activity<'a> {
        Activity {
            id: 1,
            kind,
            is_virtual: false,
            is_private: false,
            points: pts,
            times: Some(t),
        }
    }

    #[test]
    fn flagged_and_too_fast_activities_are_left_out() {
        let (pts, t) = track(3.0, 0);
        let f = ActivityFilters::default();
        assert!(filter(&run(&pts, &t, "run"), &f).unwrap().is_some());
        let mut a = run(&pts, &t, "run");
        a.is_virtual = true;
        assert!(filter(&a, &f).unwrap().is_none());
        assert!(filter(&a, &ActivityFilters::none()).unwrap().is_some());
        let (fast, t) = track(12.0, 0);
        assert!(filter(&run(&fast, &t, "run"), &f).unwrap().is_none());
        assert!(filter(&run(&fast, &t, "ride"), &f).unwrap().is_some());
        assert!(filter(&run(&fast, &t, "swim"), &f).unwrap().is_some()); // no limit for it
    }

    #[test]
    fn a_stop_is_dropped_until_the_track_leaves_its_radius() {
        let (pts, t) = track(3.0, 120);
        let mut f = ActivityFilters::none();
        f.stops = ActivityFilters::default().stops;
        let kept = filter(&run(&pts, &t, "run"), &f).unwrap().unwrap();
        // Over a 30 s window from 3 m/s, the average falls below 0.5 m/s 25 s into the pause;
        // the rest of the pause and the points within 15 m of the stop go.
        let dropped = pts.len() - kept.len();
        assert!((95..=105).contains(&dropped), "dropped {dropped}");
        // Moving steadily, nothing is dropped.
        let (pts, t) = track(3.0, 0);
        assert_eq!(
            filter(&run(&pts, &t, "run"), &f).unwrap().unwrap().len(),
            pts.len()
        );
    }

    #[test]
    fn offsets_are_seeded_per_activity_and_about_two_metres() {
        let (pts, t) = track(3.0, 0);
        let mut f = ActivityFilters::none();
        f.offset_m = 2.0;
        let unit = metres_per_unit(pts[0].1);
        let mut sq = 0.0;
        for id in 0..2000 {
            let mut a = run(&pts, &t, "run");
            a.id = id;
            let moved = filter(&a, &f).unwrap().unwrap();
            assert_eq!(moved, filter(&a, &f).unwrap().unwrap(), "reproducible");
            let dx = (moved[0].0 as f64 - pts[0].0 as f64) * unit;
            let dy = (moved[0].1 as f64 - pts[0].1 as f64) * unit;
            // One offset for the whole activity.
            assert_eq!(
                moved[199].0 as i64 - pts[199].0 as i64,
                moved[0].0 as i64 - pts[0].0 as i64
            );
            sq += dx * dx + dy * dy;
        }
        let sigma = (sq / 4000.0).sqrt();
        assert!((1.8..2.2).contains(&sigma), "sigma {sigma}");
    }

    #[test]
    fn bad_times_and_filters_are_errors() {
        let (pts, t) = track(3.0, 0);
        let f = ActivityFilters::default();
        assert!(filter(&run(&pts, &t[1..], "run"), &f).is_err());
        let mut back = t.clone();
        back[5] = 1.0;
        assert!(filter(&run(&pts, &back, "run"), &f).is_err());
        for bad in [
            r#"{"stops": 3}"#,
            r#"{"speed_limits": {"run": -1}}"#,
            r#"{"offset_m": "x"}"#,
            r#"{"nope": 1}"#,
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(ActivityFilters::from_json(&v).is_err(), "{bad}");
        }
        let v: Value =
            serde_json::from_str(r#"{"stops": false, "speed_limits": {"run": 7}, "offset_m": 0}"#)
                .unwrap();
        let f = ActivityFilters::from_json(&v).unwrap();
        assert!(f.stops.is_none() && f.offset_m == 0.0 && f.speed_limits.len() == 1);
    }

    #[test]
    fn the_synthetic_city_is_reproducible_and_realistic() {
        let city = SyntheticCity {
            centre: london(),
            radius_m: 8_000.0,
            block_m: 120.0,
            points_per_activity: 200,
        };
        let (mut kinds, mut excluded) = (BTreeMap::new(), 0);
        for id in 0..500 {
            let a = city.activity(1, id);
            assert_eq!(a.points.len(), 200);
            assert_eq!(a.times.len(), 200);
            let b = city.activity(1, id);
            assert_eq!(a.points, b.points);
            *kinds.entry(a.kind).or_insert(0) += 1;
            let act = Activity {
                id: id as i64,
                kind: a.kind,
                is_virtual: a.is_virtual,
                is_private: false,
                points: &a.points,
                times: Some(&a.times),
            };
            if filter(&act, &ActivityFilters::default()).unwrap().is_none() {
                excluded += 1;
            }
        }
        assert!(
            kinds["run"] > 150 && kinds["ride"] > 150 && kinds["walk"] > 20,
            "{kinds:?}"
        );
        // Virtual rides (5%) and cars labelled as rides (3%) are left out.
        assert!((20..70).contains(&excluded), "{excluded}");
    }
}

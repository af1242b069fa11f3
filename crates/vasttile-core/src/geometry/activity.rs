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

use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::{vcs_to_lat, VCS_SPAN};
use crate::style::StyleReader;
use rand::SeedableRng;
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

/// Which activities to draw and how to clean their paths (see the module docs); the default
/// turns every filter on.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityFilters {
    /// Leave out activities flagged virtual (made-up GPS, e.g. indoor trainers).
    pub exclude_virtual: bool,
    /// Leave out activities flagged private.
    pub exclude_private: bool,
    /// Largest average speed (m/s) per activity type; types not named have no limit.
    pub speed_limits: BTreeMap<String, f64>,
    /// Stop detection: (window in s, speed threshold in m/s, radius in m), or off.
    pub stops: Option<StopRule>,
    /// Standard deviation of the per-activity offset in metres (0: off).
    pub offset_m: f64,
    /// Seed of the offsets, mixed with each activity's id so a rebuild draws the same ones.
    pub seed: u64,
}

/// When a track counts as stopped, and when it has left the stop again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StopRule {
    /// Averaging window, in seconds.
    pub window_s: f64,
    /// Stopped when the displacement over the window divided by its time is below this, in m/s.
    pub speed: f64,
    /// Points within this distance of where the track stopped are dropped, in metres.
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
    /// The JSON keys [`ActivityFilters::from_json`] accepts.
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
    /// Its id: seeds its offset and names it in errors.
    pub id: i64,
    /// Its type (`"run"`, `"ride"`, ...), the key of the speed limits.
    pub kind: &'a str,
    /// Flagged virtual (made-up GPS).
    pub is_virtual: bool,
    /// Flagged private.
    pub is_private: bool,
    /// The path, VCS points in order.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::vcs::{lat_to_vcs, lon_to_vcs};

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

    #[cfg(feature = "demo")]
    #[test]
    fn the_synthetic_city_is_reproducible_and_realistic() {
        use crate::demo::SyntheticCity;
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

//! Shading heat: normalise a grid to one byte per pixel, colour it through a 256-entry lookup
//! table, encode it as an indexed PNG.
//!
//! The byte is the Strava post's stored form: level 0 is "no heat" (transparent) and levels
//! 1..=255 stand for normalised heat t = (level - 1) / 254 in [0, 1], so any heat at all is a
//! level and a colour is a table lookup. At most 256 colours, so tiles are always indexed PNG.

use crate::encoding::png::{encode_indexed, Effort};
use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::TileSize;
use crate::pyramid::cdf::Cdf;
use crate::raster::heat::HeatGrid;
use crate::style::{parse_color, StyleReader};
use colorgrad::Gradient;
use serde_json::Value;

/// How raw heat maps to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Normalize {
    /// h / max
    Linear,
    /// ln(1 + h) / ln(1 + max)
    Log,
    /// (h / max)^(1/3)
    Cbrt,
    /// Histogram equalisation: the share of lit pixels with less heat (Strava's CDF), with a guard
    /// for very low heat (see `cdf_levels`).
    EqHist,
}

/// 256 colours, index 0 for t = 0 up to index 255 for t = 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Colormap {
    /// Preset name, or `"custom"` for colormaps given as colours.
    pub name: String,
    /// Exactly 256 straight RGBA colours.
    pub colors: Vec<[u8; 4]>,
}

/// Names [`Colormap::named`] knows.
pub const COLORMAPS: [&str; 11] = [
    "fire", "hot", "jet", "viridis", "inferno", "magma", "plasma", "turbo", "cividis", "greys",
    "blues",
];

impl Colormap {
    /// A preset of [`COLORMAPS`], or `None` for any other name.
    pub fn named(name: &str) -> Option<Colormap> {
        let f: Box<dyn Fn(f32) -> [u8; 4]> = match name {
            // The Numba article's jet (matplotlib's, piecewise linear).
            "jet" => Box::new(|x| {
                let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                let r = if x < 0.7 {
                    4.0 * x - 1.5
                } else {
                    -4.0 * x + 4.5
                };
                let g = if x < 0.5 {
                    4.0 * x - 0.5
                } else {
                    -4.0 * x + 3.5
                };
                let b = if x < 0.3 {
                    4.0 * x + 0.5
                } else {
                    -4.0 * x + 2.5
                };
                [c(r), c(g), c(b), 255]
            }),
            // matplotlib's hot: black, red, yellow, white.
            "hot" => Box::new(|x| {
                let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                [
                    c(x / 0.365_079),
                    c((x - 0.365_079) / 0.380_953),
                    c((x - 0.746_032) / 0.253_968),
                    255,
                ]
            }),
            "fire" => {
                return Colormap::from_stops(
                    "fire",
                    &[
                        (0.0, "#000000"),
                        (0.18, "#5f0000"),
                        (0.36, "#b20b00"),
                        (0.52, "#f03a00"),
                        (0.68, "#ff7f00"),
                        (0.84, "#ffc700"),
                        (0.94, "#ffef6e"),
                        (1.0, "#ffffff"),
                    ],
                )
                .ok()
            }
            "viridis" => gradient(colorgrad::preset::viridis()),
            "inferno" => gradient(colorgrad::preset::inferno()),
            "magma" => gradient(colorgrad::preset::magma()),
            "plasma" => gradient(colorgrad::preset::plasma()),
            "turbo" => gradient(colorgrad::preset::turbo()),
            "cividis" => gradient(colorgrad::preset::cividis()),
            "greys" => gradient(colorgrad::preset::greys()),
            "blues" => gradient(colorgrad::preset::blues()),
            _ => return None,
        };
        Some(Colormap {
            name: name.to_string(),
            colors: (0..256).map(|i| f(i as f32 / 255.0)).collect(),
        })
    }

    /// Colour stops at positions in [0, 1], interpolated linearly in sRGB.
    pub fn from_stops(name: &str, stops: &[(f32, &str)]) -> Result<Colormap, String> {
        if stops.len() < 2 {
            return Err("needs at least two colours".into());
        }
        let mut positions = Vec::with_capacity(stops.len());
        let mut colors = Vec::with_capacity(stops.len());
        for (pos, css) in stops {
            if !(0.0..=1.0).contains(pos) || positions.last().is_some_and(|p| pos < p) {
                return Err(format!("positions must rise from 0 to 1, got {pos}"));
            }
            let [r, g, b, a] = parse_color(css)?;
            positions.push(*pos);
            colors.push(colorgrad::Color::from_rgba8(r, g, b, a));
        }
        let grad = colorgrad::GradientBuilder::new()
            .colors(&colors)
            .domain(&positions)
            .build::<colorgrad::LinearGradient>()
            .map_err(|e| e.to_string())?;
        Ok(Colormap {
            name: name.to_string(),
            colors: (0..256)
                .map(|i| grad.at(i as f32 / 255.0).to_rgba8())
                .collect(),
        })
    }

    /// `"viridis"`, `["#000", "red", "yellow"]` (evenly spaced) or `[[0, "#000"], [0.8, "red"], [1, "#fff"]]`.
    pub fn from_json(key: &str, value: &Value) -> CoreResult<Colormap> {
        let err = |detail: String| CoreError::style(key, detail);
        match value {
            Value::String(name) => Colormap::named(name).ok_or_else(|| {
                err(format!(
                    "unknown colormap \"{name}\" (known: {})",
                    COLORMAPS.join(", ")
                ))
            }),
            Value::Array(items) => {
                let n = items.len();
                let mut stops: Vec<(f32, String)> = Vec::with_capacity(n);
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(css) => {
                            stops.push((i as f32 / (n.max(2) - 1) as f32, css.clone()))
                        }
                        Value::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                            (Value::Number(p), Value::String(css)) => {
                                stops.push((p.as_f64().unwrap_or(-1.0) as f32, css.clone()))
                            }
                            _ => return Err(err("stops must be [position, \"colour\"]".into())),
                        },
                        _ => {
                            return Err(err(
                                "must be a colormap name, an array of colours or of [position, colour] pairs".into(),
                            ))
                        }
                    }
                }
                let refs: Vec<(f32, &str)> = stops.iter().map(|(p, c)| (*p, c.as_str())).collect();
                Colormap::from_stops("custom", &refs).map_err(err)
            }
            _ => Err(err("must be a colormap name or an array of colours".into())),
        }
    }
}

fn gradient(g: impl Gradient + 'static) -> Box<dyn Fn(f32) -> [u8; 4]> {
    Box::new(move |x| g.at(x).to_rgba8())
}

/// Everything that turns a heat grid into pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatStyle {
    /// How raw heat maps to t in [0, 1].
    pub normalize: Normalize,
    /// Heat at which linear/log/cbrt saturate; `None`: the tile's own maximum.
    pub max: Option<f64>,
    /// eq_hist only: below this heat a pixel gets only part of its level's CDF step.
    pub low_heat: f64,
    /// Colours from t = 0 to t = 1.
    pub colormap: Colormap,
    /// alpha = clamp(alpha_min + alpha_scale * t, 0, alpha_max), times `opacity`.
    pub alpha_min: f64,
    /// How fast alpha grows with t (see `alpha_min`).
    pub alpha_scale: f64,
    /// Largest alpha before `opacity`, 0 ..= 1.
    pub alpha_max: f64,
    /// Multiplies the alpha of every level, 0 ..= 1 (as does the colormap colour's own alpha).
    pub opacity: f64,
}

impl HeatStyle {
    /// The JSON keys [`HeatStyle::read`] consumes.
    pub const KEYS: [&'static str; 8] = [
        "normalize",
        "max",
        "low_heat",
        "colormap",
        "alpha_min",
        "alpha_scale",
        "alpha_max",
        "opacity",
    ];

    /// Defaults for counts: eq_hist, fire, opaque.
    pub fn heat_defaults() -> HeatStyle {
        HeatStyle {
            normalize: Normalize::EqHist,
            max: None,
            low_heat: 4.0,
            colormap: Colormap::named("fire").expect("fire is a preset"),
            alpha_min: 1.0,
            alpha_scale: 0.0,
            alpha_max: 1.0,
            opacity: 1.0,
        }
    }

    /// The Numba article's accessibility look: linear to a saturation of 4, jet, alpha = clamp(2t, 0, 0.95).
    pub fn accessibility_defaults() -> HeatStyle {
        HeatStyle {
            normalize: Normalize::Linear,
            max: Some(4.0),
            low_heat: 4.0,
            colormap: Colormap::named("jet").expect("jet is a preset"),
            alpha_min: 0.0,
            alpha_scale: 2.0,
            alpha_max: 0.95,
            opacity: 1.0,
        }
    }

    /// Read the style keys over `defaults`; keys of the caller's own stay in the reader.
    pub fn read(r: &mut StyleReader, defaults: HeatStyle) -> CoreResult<HeatStyle> {
        let mut s = defaults;
        if let Some(v) = r.take("normalize") {
            s.normalize = match v.as_str() {
                Some("linear") => Normalize::Linear,
                Some("log") => Normalize::Log,
                Some("cbrt") => Normalize::Cbrt,
                Some("eq_hist") | Some("cdf") => Normalize::EqHist,
                _ => {
                    return Err(CoreError::style(
                        "normalize",
                        format!(
                            "must be one of \"linear\", \"log\", \"cbrt\", \"eq_hist\", got {v}"
                        ),
                    ))
                }
            };
        }
        if let Some(m) = r.optional_number("max", f64::MIN_POSITIVE, f64::MAX)? {
            s.max = Some(m);
        }
        s.low_heat = r.number("low_heat", s.low_heat, 0.0, 1e300)?;
        if let Some(v) = r.take("colormap") {
            s.colormap = Colormap::from_json("colormap", &v)?;
        }
        s.alpha_min = r.number("alpha_min", s.alpha_min, 0.0, 1.0)?;
        s.alpha_scale = r.number("alpha_scale", s.alpha_scale, 0.0, 1e6)?;
        s.alpha_max = r.number("alpha_max", s.alpha_max, 0.0, 1.0)?;
        s.opacity = r.number("opacity", s.opacity, 0.0, 1.0)?;
        Ok(s)
    }

    /// A heat tile's style: `size` (256 or 512) and the keys of `read` over `defaults`, plus the
    /// caller's own keys that `extra` reads; any other key is an error.
    pub fn read_tile<T>(
        style: &Value,
        defaults: HeatStyle,
        extra_keys: &[&str],
        extra: impl FnOnce(&mut StyleReader) -> CoreResult<T>,
    ) -> CoreResult<(TileSize, HeatStyle, T)> {
        let mut r = StyleReader::new(style)?;
        let size = r.tile_size("size")?;
        let more = extra(&mut r)?;
        let s = HeatStyle::read(&mut r, defaults)?;
        let mut known = HeatStyle::KEYS.to_vec();
        known.extend_from_slice(extra_keys);
        known.push("size");
        r.finish(&known)?;
        Ok((size, s, more))
    }

    /// Read a JSON style of only [`HeatStyle::KEYS`] over `defaults`; any other key is an error.
    pub fn from_json(style: &Value, defaults: HeatStyle) -> CoreResult<HeatStyle> {
        let mut r = StyleReader::new(style)?;
        let s = HeatStyle::read(&mut r, defaults)?;
        r.finish(&HeatStyle::KEYS)?;
        Ok(s)
    }

    /// RGBA of each level: 0 transparent, 1..=255 through the colormap and the alpha rule.
    pub fn palette(&self) -> Vec<[u8; 4]> {
        let mut out = Vec::with_capacity(256);
        out.push([0; 4]);
        for level in 1..256u32 {
            let t = (level - 1) as f64 / 254.0;
            let [r, g, b, a] = self.colormap.colors[((t * 255.0).round() as usize).min(255)];
            let alpha = (self.alpha_min + self.alpha_scale * t).clamp(0.0, self.alpha_max);
            let alpha = alpha * self.opacity * a as f64 / 255.0;
            out.push([r, g, b, (alpha * 255.0).round() as u8]);
        }
        out
    }
}

/// Normalised level (0 = no heat, 1..=255) of every pixel.
pub fn levels(grid: &HeatGrid, style: &HeatStyle) -> Vec<u8> {
    let values = &grid.values();
    let max_heat = values.iter().fold(0.0f64, |m, &v| m.max(v));
    if max_heat == 0.0 {
        return vec![0; values.len()];
    }
    let sat = style.max.unwrap_or(max_heat);
    let level = level_of;
    match style.normalize {
        Normalize::Linear => map_lit(values, |h| level(h.min(sat) / sat)),
        Normalize::Log => {
            let d = sat.ln_1p();
            map_lit(values, |h| level(h.min(sat).ln_1p() / d))
        }
        Normalize::Cbrt => map_lit(values, |h| level((h.min(sat) / sat).cbrt())),
        Normalize::EqHist => cdf_levels(values, style.low_heat),
    }
}

fn map_lit(values: &[f64], f: impl Fn(f64) -> u8) -> Vec<u8> {
    values
        .iter()
        .map(|&h| if h > 0.0 { f(h) } else { 0 })
        .collect()
}

/// Histogram equalisation over the lit pixels of the tile (Strava's CDF, see `Cdf::rank` for
/// the low-heat guard). Beyond 4096 distinct values the CDF is sampled toward the high end.
/// Pixels share few distinct values (counts, or sums of few weights): each distinct value's
/// level is computed once, walking the CDF's breakpoints in order, and each pixel looks its
/// value up among the distinct ones.
fn cdf_levels(values: &[f64], low_heat: f64) -> Vec<u8> {
    if let Some(levels) = small_count_levels(values, low_heat) {
        return levels;
    }
    // Lit values are positive, so their bit patterns sort as the values do.
    let mut lit: Vec<u64> = values
        .iter()
        .filter(|&&h| h > 0.0)
        .map(|h| h.to_bits())
        .collect();
    lit.sort_unstable();
    let sorted: Vec<f64> = lit.iter().map(|&b| f64::from_bits(b)).collect();
    let cdf = Cdf::of_sorted(&sorted).sampled(4096);
    lit.dedup();
    let mut rank = cdf.ranks_ascending(low_heat);
    let level_by_value: Vec<u8> = lit
        .iter()
        .map(|&b| level_of(rank(f64::from_bits(b))))
        .collect();
    values
        .iter()
        .map(|&h| {
            if h > 0.0 {
                level_by_value[lit.partition_point(|&b| b < h.to_bits())]
            } else {
                0
            }
        })
        .collect()
}

/// Counts up to this many are equalised through a histogram instead of a sort.
const SMALL_COUNTS: usize = 1 << 16;

/// `cdf_levels` of a tile whose values are all whole numbers up to [`SMALL_COUNTS`] (counts,
/// the common case): a histogram gives the CDF without sorting, and each pixel's level is read
/// by its count. None for other tiles.
fn small_count_levels(values: &[f64], low_heat: f64) -> Option<Vec<u8>> {
    let mut hist = vec![0u32; SMALL_COUNTS + 1];
    for &v in values {
        let c = v as usize;
        // `as` saturates: a fraction, a value past the table or NaN fails the round trip.
        if c > SMALL_COUNTS || c as f64 != v {
            return None;
        }
        hist[c] += 1;
    }
    let counted = hist
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, &n)| n > 0)
        .map(|(c, &n)| (c as f64, n as u64));
    let cdf = Cdf::of_counted(counted).sampled(4096);
    let mut rank = cdf.ranks_ascending(low_heat);
    let mut level_of_count = vec![0u8; SMALL_COUNTS + 1];
    for (c, &n) in hist.iter().enumerate().skip(1) {
        if n > 0 {
            level_of_count[c] = level_of(rank(c as f64));
        }
    }
    Some(values.iter().map(|&v| level_of_count[v as usize]).collect())
}

/// Level 1..=255 of normalised heat t in [0, 1].
#[inline]
pub fn level_of(t: f64) -> u8 {
    // x.round() for x in [0, 254], without a libm call: x - floor(x) is exact there.
    let x = t.clamp(0.0, 1.0) * 254.0;
    let floor = x as u8;
    1 + floor + (x - floor as f64 >= 0.5) as u8
}

/// Levels to an indexed PNG through the style's palette (only the levels in use are written).
pub fn encode_levels(
    levels: &[u8],
    side: u32,
    palette: &[[u8; 4]],
    effort: Effort,
) -> CoreResult<Vec<u8>> {
    let mut used = [false; 256];
    for &l in levels {
        used[l as usize] = true;
    }
    let mut index_of = [0u8; 256];
    let mut entries: Vec<[u8; 4]> = Vec::with_capacity(256);
    for l in (0..256).filter(|&l| used[l]) {
        index_of[l] = entries.len() as u8;
        entries.push(palette[l]);
    }
    let indices: Vec<u8> = levels.iter().map(|&l| index_of[l as usize]).collect();
    encode_indexed(side, side, &indices, &entries, effort)
}

/// The tile as PNG, or `None` when nothing shows (no heat, or every used colour transparent).
pub fn shade(grid: &HeatGrid, style: &HeatStyle) -> CoreResult<Option<Vec<u8>>> {
    let levels = levels(grid, style);
    let palette = style.palette();
    if levels.iter().all(|&l| palette[l as usize][3] == 0) {
        return Ok(None);
    }
    encode_levels(&levels, grid.side(), &palette, Effort::Fast).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::vcs::{Tile, TileSize};

    fn grid_with(values: &[(usize, f64)]) -> HeatGrid {
        let mut v = vec![0.0; 65536];
        for &(i, h) in values {
            v[i] = h;
        }
        HeatGrid::from_values(
            Tile::new(3, 1, 2).unwrap(),
            TileSize::Px256,
            values.len() as u64,
            v,
        )
        .unwrap()
    }

    #[test]
    fn level_of_rounds_as_f64_round_does() {
        let mut cases: Vec<f64> = (0..=254 * 64).map(|i| i as f64 / (254.0 * 64.0)).collect();
        for k in 0..=254 {
            // Just around each half step, where rounding decides.
            let half = (k as f64 + 0.5) / 254.0;
            cases.extend([
                half,
                f64::from_bits(half.to_bits() - 1),
                f64::from_bits(half.to_bits() + 1),
            ]);
        }
        cases.extend([-1.0, 2.0, f64::NAN, 0.49999999999999994 / 254.0]);
        for &c in &cases {
            let expected = 1 + (c.clamp(0.0, 1.0) * 254.0).round() as u8;
            assert_eq!(level_of(c), expected, "t = {c:e}");
        }
    }

    #[test]
    fn eq_hist_levels_equal_a_search_per_pixel() {
        // Many distinct values (sampled CDF, interpolated ranks), repeated values, and weights.
        let mut next = crate::test_numbers(7);
        // Whole counts (the histogram path, up to SMALL_COUNTS) and the rest (sorted).
        for (distinct, scale) in [
            (3u64, 1.0),
            (300, 1.0),
            (20_000, 1.0),
            (20_000, 0.37),
            (1 << 30, 1.0),
            (1 << 30, 0.37),
        ] {
            let values: Vec<f64> = (0..256 * 256)
                .map(|_| match next() % 4 {
                    0 => 0.0,
                    _ => (next() % distinct + 1) as f64 * scale,
                })
                .collect();
            let whole = scale == 1.0 && distinct <= SMALL_COUNTS as u64;
            assert_eq!(small_count_levels(&values, 0.0).is_some(), whole);
            for low_heat in [0.0, 4.0] {
                let cdf = Cdf::of(values.iter().copied()).sampled(4096);
                let searched: Vec<u8> = values
                    .iter()
                    .map(|&h| {
                        if h > 0.0 {
                            level_of(cdf.rank(h, low_heat))
                        } else {
                            0
                        }
                    })
                    .collect();
                assert_eq!(
                    cdf_levels(&values, low_heat),
                    searched,
                    "{distinct} {low_heat}"
                );
            }
        }
    }

    #[test]
    fn every_colormap_is_256_colours_from_dark_or_light_ends() {
        for name in COLORMAPS {
            let c = Colormap::named(name).unwrap();
            assert_eq!(c.colors.len(), 256, "{name}");
        }
        let jet = Colormap::named("jet").unwrap();
        assert_eq!(jet.colors[0], [0, 0, 128, 255]);
        assert_eq!(jet.colors[255], [128, 0, 0, 255]);
        let hot = Colormap::named("hot").unwrap();
        assert_eq!(
            (hot.colors[0], hot.colors[255]),
            ([0, 0, 0, 255], [255, 255, 255, 255])
        );
        let custom = Colormap::from_json("colormap", &serde_json::json!(["#000", "#fff"])).unwrap();
        assert_eq!(custom.colors[255], [255, 255, 255, 255]);
        assert_eq!(custom.colors[0], [0, 0, 0, 255]);
        let stops = serde_json::json!([[0, "red"], [0.5, "blue"], [1, "blue"]]);
        assert_eq!(
            Colormap::from_json("colormap", &stops).unwrap().colors[200],
            [0, 0, 255, 255]
        );
        for bad in [
            serde_json::json!("nope"),
            serde_json::json!(["#000"]),
            serde_json::json!([[0.5, "#000"], [0.1, "#fff"]]),
            serde_json::json!(3),
        ] {
            assert!(Colormap::from_json("colormap", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn normalisations_are_monotonic_and_span_the_levels() {
        let g = grid_with(&[(0, 1.0), (1, 2.0), (2, 10.0), (3, 100.0), (4, 1000.0)]);
        for normalize in [
            Normalize::Linear,
            Normalize::Log,
            Normalize::Cbrt,
            Normalize::EqHist,
        ] {
            let style = HeatStyle {
                normalize,
                low_heat: 0.0,
                ..HeatStyle::heat_defaults()
            };
            let l = levels(&g, &style);
            assert!(
                l[..5].windows(2).all(|w| w[0] < w[1]),
                "{normalize:?} {:?}",
                &l[..5]
            );
            assert_eq!(l[4], 255, "{normalize:?}");
            assert!(l[0] >= 1 && l[5] == 0, "{normalize:?}");
        }
    }

    #[test]
    fn eq_hist_spreads_levels_evenly_and_guards_low_heat() {
        // 1,000 pixels of distinct heat: equalised, each level holds about the same number.
        let vals: Vec<(usize, f64)> = (0..1000).map(|i| (i, 1.0 + (i * i) as f64)).collect();
        let g = grid_with(&vals);
        let style = HeatStyle {
            low_heat: 0.0,
            ..HeatStyle::heat_defaults()
        };
        let l = levels(&g, &style);
        let mut hist = [0u32; 256];
        for &x in &l[..1000] {
            hist[x as usize] += 1;
        }
        assert!(hist[1..].iter().all(|&c| c <= 8), "{hist:?}");
        // A quiet tile: 900 single hits and 100 busier pixels. Plain CDF puts single hits at
        // 0.9; the guard keeps them low.
        let quiet: Vec<(usize, f64)> = (0..1000)
            .map(|i| (i, if i < 900 { 1.0 } else { 50.0 }))
            .collect();
        let g = grid_with(&quiet);
        let plain = levels(
            &g,
            &HeatStyle {
                low_heat: 0.0,
                ..HeatStyle::heat_defaults()
            },
        );
        let guarded = levels(&g, &HeatStyle::heat_defaults());
        assert!(plain[0] > 200, "{}", plain[0]);
        assert!(guarded[0] < 70, "{}", guarded[0]);
        assert_eq!(guarded[999], 255);
    }

    #[test]
    fn eq_hist_samples_many_distinct_values() {
        let vals: Vec<(usize, f64)> = (0..60000).map(|i| (i, 1.0 + i as f64 * 0.37)).collect();
        let l = levels(&grid_with(&vals), &HeatStyle::heat_defaults());
        assert!(l[..60000].windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((l[59999], l[60000]), (255, 0));
    }

    #[test]
    fn alpha_rule_and_empty_tiles() {
        let style = HeatStyle::accessibility_defaults();
        let p = style.palette();
        assert_eq!(p[0], [0, 0, 0, 0]);
        assert_eq!(p[1][3], 0); // t = 0
        assert_eq!(p[255][3], (0.95f64 * 255.0).round() as u8); // clamp(2, 0, 0.95)
        assert_eq!(
            p[128][3],
            (2.0 * 127.0 / 254.0f64)
                .min(0.95)
                .mul_add(255.0, 0.0)
                .round() as u8
        );
        assert_eq!(
            shade(&grid_with(&[]), &HeatStyle::heat_defaults()).unwrap(),
            None
        );
        let one = shade(&grid_with(&[(7, 3.0)]), &HeatStyle::heat_defaults())
            .unwrap()
            .unwrap();
        assert_eq!(
            crate::encoding::png::decode(&one).unwrap().opaque_count(),
            1
        );
    }

    #[test]
    fn style_keys_are_checked() {
        let ok = serde_json::json!({"normalize": "log", "colormap": "viridis", "max": 10, "alpha_min": 0.2});
        let s = HeatStyle::from_json(&ok, HeatStyle::heat_defaults()).unwrap();
        assert_eq!((s.normalize, s.max), (Normalize::Log, Some(10.0)));
        for (bad, key) in [
            (serde_json::json!({"normalise": "log"}), "normalise"),
            (serde_json::json!({"normalize": "sqrt"}), "normalize"),
            (serde_json::json!({"max": -1}), "max"),
            (serde_json::json!({"colormap": "rainbowz"}), "colormap"),
            (serde_json::json!({"alpha_max": 2}), "alpha_max"),
        ] {
            let err = HeatStyle::from_json(&bad, HeatStyle::heat_defaults())
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("\"{key}\"")), "{err}");
        }
    }
}

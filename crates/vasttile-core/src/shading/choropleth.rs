//! Colour mappings for skeletons: classes, a continuous colormap, explicit ID -> colour, and
//! feature bits switched on and off by colour alone.

use crate::error::{CoreError, CoreResult};
use crate::shading::shade::Colormap;
use crate::style::{parse_color, StyleReader};
use serde_json::Value;
use std::collections::HashMap;

/// How a skeleton's pixel values (IDs or feature bits) become colours.
#[derive(Clone, Debug, PartialEq)]
pub enum Mapping {
    /// value -> colormap over [min, max] (min and max default to the values' range).
    Continuous {
        /// The colormap, sampled at 256 points from `min` to `max`.
        colormap: Colormap,
        /// Value drawn with the colormap's first colour; lower values clamp to it.
        min: Option<f64>,
        /// Value drawn with the colormap's last colour; higher values clamp to it.
        max: Option<f64>,
    },
    /// `value < breaks[0]` -> `colors[0]`, ..., `value >= breaks[n-1]` -> `colors[n]`.
    Classes {
        /// Class boundaries, finite and strictly rising.
        breaks: Vec<f64>,
        /// One colour per class: one more than `breaks`.
        colors: Vec<[u8; 4]>,
    },
    /// ID -> colour, values ignored.
    Explicit(HashMap<u32, [u8; 4]>),
    /// Feature bits: the first listed bit a pixel has gives its colour (none: transparent, not
    /// `missing`).
    Features(Vec<(u32, [u8; 4])>),
}

/// A choropleth style: the mapping, the colour of IDs without a value, and an overall opacity.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoroplethStyle {
    /// How values become colours.
    pub mapping: Mapping,
    /// Colour of IDs with no value (default transparent).
    pub missing: [u8; 4],
    /// Multiplies every colour's alpha, 0 ..= 1.
    pub opacity: f64,
}

/// The JSON keys [`ChoroplethStyle::from_json`] accepts.
pub const KEYS: [&str; 8] = [
    "colormap", "min", "max", "classes", "colors", "features", "missing", "opacity",
];

fn colour(key: &str, v: &Value) -> CoreResult<[u8; 4]> {
    match v {
        Value::String(s) => parse_color(s).map_err(|d| CoreError::style(key, d)),
        other => Err(CoreError::style(
            key,
            format!("colours must be CSS strings, got {other}"),
        )),
    }
}

impl ChoroplethStyle {
    /// Read a JSON style with at most one of `colormap` (the default, viridis), `classes`
    /// (`{"breaks": [..], "colors": [..]}`), `colors` (`{"id": colour}`) or `features`
    /// (`[[bit, colour], ..]`), plus `min`, `max`, `missing` and `opacity`.
    pub fn from_json(style: &Value) -> CoreResult<ChoroplethStyle> {
        let mut r = StyleReader::new(style)?;
        let min = r.optional_number("min", -f64::MAX, f64::MAX)?;
        let max = r.optional_number("max", -f64::MAX, f64::MAX)?;
        let missing = match r.take("missing") {
            Some(v) => colour("missing", &v)?,
            None => [0; 4],
        };
        let opacity = r.number("opacity", 1.0, 0.0, 1.0)?;
        let colormap = r.take("colormap");
        let classes = r.take("classes");
        let colors = r.take("colors");
        let features = r.take("features");
        r.finish(&KEYS)?;
        let given = [
            colormap.is_some(),
            classes.is_some(),
            colors.is_some(),
            features.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(CoreError::style(
                "colormap",
                "give one of \"colormap\", \"classes\", \"colors\", \"features\"",
            ));
        }
        let mapping = if let Some(c) = classes {
            let breaks: Vec<f64> = c
                .get("breaks")
                .and_then(Value::as_array)
                .ok_or_else(|| CoreError::style("classes", "needs \"breaks\": [numbers]"))?
                .iter()
                .map(|b| {
                    b.as_f64()
                        .filter(|f| f.is_finite())
                        .ok_or_else(|| CoreError::style("classes", "breaks must be numbers"))
                })
                .collect::<CoreResult<_>>()?;
            let colors: Vec<[u8; 4]> = c
                .get("colors")
                .and_then(Value::as_array)
                .ok_or_else(|| CoreError::style("classes", "needs \"colors\": [colours]"))?
                .iter()
                .map(|v| colour("classes", v))
                .collect::<CoreResult<_>>()?;
            if colors.len() != breaks.len() + 1 || breaks.windows(2).any(|w| w[0] >= w[1]) {
                return Err(CoreError::style(
                    "classes",
                    format!("needs rising breaks and one more colour than breaks, got {} breaks and {} colours", breaks.len(), colors.len()),
                ));
            }
            Mapping::Classes { breaks, colors }
        } else if let Some(c) = colors {
            let obj = c
                .as_object()
                .ok_or_else(|| CoreError::style("colors", "must be an object of id -> colour"))?;
            let mut map = HashMap::with_capacity(obj.len());
            for (id, v) in obj {
                let id: u32 = id.parse().map_err(|_| {
                    CoreError::style("colors", format!("ids must be integers, got \"{id}\""))
                })?;
                map.insert(id, colour("colors", v)?);
            }
            Mapping::Explicit(map)
        } else if let Some(f) = features {
            let list = f
                .as_array()
                .ok_or_else(|| CoreError::style("features", "must be [[bit, colour], ...]"))?;
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                match item.as_array().map(Vec::as_slice) {
                    Some([b, c]) => {
                        let bit = b
                            .as_u64()
                            .filter(|&b| b < 32)
                            .ok_or_else(|| CoreError::style("features", "bits must be 0..31"))?;
                        out.push((bit as u32, colour("features", c)?));
                    }
                    _ => return Err(CoreError::style("features", "must be [[bit, colour], ...]")),
                }
            }
            Mapping::Features(out)
        } else {
            let colormap = Colormap::from_json(
                "colormap",
                colormap
                    .as_ref()
                    .unwrap_or(&Value::String("viridis".into())),
            )?;
            Mapping::Continuous { colormap, min, max }
        };
        Ok(ChoroplethStyle {
            mapping,
            missing,
            opacity,
        })
    }

    /// The colour of each pixel value, given the values of IDs.
    pub fn colorer<'a>(&'a self, values: &'a HashMap<u32, f64>) -> impl FnMut(u32) -> [u8; 4] + 'a {
        let (lo, hi) = match &self.mapping {
            Mapping::Continuous { min, max, .. } => {
                let lo =
                    min.unwrap_or_else(|| values.values().copied().fold(f64::INFINITY, f64::min));
                let hi = max
                    .unwrap_or_else(|| values.values().copied().fold(f64::NEG_INFINITY, f64::max));
                (lo, hi)
            }
            _ => (0.0, 0.0),
        };
        move |cell: u32| {
            let c = match &self.mapping {
                Mapping::Features(list) => list
                    .iter()
                    .find(|(b, _)| cell & (1 << b) != 0)
                    .map_or([0; 4], |(_, c)| *c),
                Mapping::Explicit(map) => map.get(&cell).copied().unwrap_or(self.missing),
                Mapping::Classes { breaks, colors } => match values.get(&cell) {
                    Some(v) => colors[breaks.partition_point(|b| b <= v)],
                    None => self.missing,
                },
                Mapping::Continuous { colormap, .. } => match values.get(&cell) {
                    Some(v) => {
                        let t = if hi > lo {
                            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                        } else {
                            1.0
                        };
                        colormap.colors[(t * 255.0).round() as usize]
                    }
                    None => self.missing,
                },
            };
            [c[0], c[1], c[2], (c[3] as f64 * self.opacity).round() as u8]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_mapping_colours_as_documented() {
        let values = HashMap::from([(1u32, 2.0), (2, 5.0), (3, 9.0)]);
        let s = ChoroplethStyle::from_json(&json!({"classes": {"breaks": [3, 6], "colors": ["#100", "#200", "#300"]}, "missing": "#999"})).unwrap();
        let mut f = s.colorer(&values);
        assert_eq!(
            (f(1)[0], f(2)[0], f(3)[0], f(4)),
            (0x11, 0x22, 0x33, [0x99, 0x99, 0x99, 255])
        );
        let s = ChoroplethStyle::from_json(&json!({"colormap": ["#000", "#fff"]})).unwrap();
        let mut f = s.colorer(&values);
        assert_eq!(
            (f(1), f(3), f(4)),
            ([0, 0, 0, 255], [255, 255, 255, 255], [0, 0, 0, 0])
        );
        let s =
            ChoroplethStyle::from_json(&json!({"colors": {"2": "red"}, "opacity": 0.5})).unwrap();
        assert_eq!(s.colorer(&values)(2), [255, 0, 0, 128]);
        let s =
            ChoroplethStyle::from_json(&json!({"features": [[3, "blue"], [0, "red"]]})).unwrap();
        let mut f = s.colorer(&values);
        assert_eq!(
            (f(0b1001), f(0b0001), f(0b0100)),
            ([0, 0, 255, 255], [255, 0, 0, 255], [0, 0, 0, 0])
        );
    }

    #[test]
    fn bad_styles_name_their_key() {
        for (bad, key) in [
            (
                json!({"classes": {"breaks": [3, 1], "colors": ["#1", "#2", "#3"]}}),
                "classes",
            ),
            (
                json!({"classes": {"breaks": [3], "colors": ["#111"]}}),
                "classes",
            ),
            (json!({"colors": {"abc": "red"}}), "colors"),
            (json!({"features": [[40, "red"]]}), "features"),
            (json!({"colormap": "nope"}), "colormap"),
            (json!({"colormap": "viridis", "colors": {}}), "colormap"),
            (json!({"missing": 3}), "missing"),
            (json!({"palette": 3}), "palette"),
        ] {
            let err = ChoroplethStyle::from_json(&bad).unwrap_err().to_string();
            assert!(err.contains(&format!("\"{key}\"")), "{bad}: {err}");
        }
    }
}

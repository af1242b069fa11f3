//! Style options arrive as a JSON object (SQL `jsonb`). Each family reads its keys with these
//! helpers, so that an unknown key or a bad value is an error naming the key.

use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::TileSize;
use serde_json::{Map, Value};

/// The options of one style object, consumed key by key; whatever is left over is unknown.
pub struct StyleReader {
    entries: Map<String, Value>,
}

impl StyleReader {
    /// Read a JSON object; `null` is an empty style, anything else is an error.
    pub fn new(style: &Value) -> CoreResult<StyleReader> {
        match style {
            Value::Object(map) => Ok(StyleReader {
                entries: map.clone(),
            }),
            Value::Null => Ok(StyleReader {
                entries: Map::new(),
            }),
            other => Err(CoreError::style(
                "",
                format!("must be a JSON object, got {}", kind(other)),
            )),
        }
    }

    /// Parse JSON text, then as [`StyleReader::new`].
    pub fn parse(text: &str) -> CoreResult<StyleReader> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| CoreError::style("", format!("is not valid JSON: {e}")))?;
        StyleReader::new(&value)
    }

    /// The raw value of a key, for options with their own shapes.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.entries.remove(key)
    }

    /// A number within `[min, max]`, or `default` when absent.
    pub fn number(&mut self, key: &str, default: f64, min: f64, max: f64) -> CoreResult<f64> {
        Ok(self.optional_number(key, min, max)?.unwrap_or(default))
    }

    /// A number within `[min, max]`, or `None` when absent.
    pub fn optional_number(&mut self, key: &str, min: f64, max: f64) -> CoreResult<Option<f64>> {
        match self.entries.remove(key) {
            None => Ok(None),
            // Tile servers pass URL query parameters as strings: "2.5" is a number too.
            Some(v @ (Value::Number(_) | Value::String(_))) => {
                let n = match &v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if n.is_finite() && n >= min && n <= max => Ok(Some(n)),
                    Some(_) => Err(CoreError::style(
                        key,
                        format!("must be {}, got {v}", bounds(min, max)),
                    )),
                    None => Err(CoreError::style(key, format!("must be a number, got {v}"))),
                }
            }
            Some(other) => Err(CoreError::style(
                key,
                format!("must be a number, got {}", kind(&other)),
            )),
        }
    }

    /// A CSS colour (`#rgb`, `#rrggbbaa`, `rgb(...)`, `hsl(...)`, names like `steelblue`) as RGBA8.
    pub fn color(&mut self, key: &str, default: [u8; 4]) -> CoreResult<[u8; 4]> {
        match self.entries.remove(key) {
            None => Ok(default),
            Some(Value::String(s)) => {
                parse_color(&s).map_err(|detail| CoreError::style(key, detail))
            }
            Some(other) => Err(CoreError::style(
                key,
                format!("must be a CSS colour string, got {}", kind(&other)),
            )),
        }
    }

    /// Tile size in pixels: 256 (default) or 512.
    pub fn tile_size(&mut self, key: &str) -> CoreResult<TileSize> {
        match self.entries.remove(key) {
            None => Ok(TileSize::Px256),
            Some(v @ (Value::Number(_) | Value::String(_))) => {
                let px = match &v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                TileSize::from_px(px.unwrap_or(-1))
                    .map_err(|_| CoreError::style(key, format!("must be 256 or 512, got {v}")))
            }
            Some(other) => Err(CoreError::style(
                key,
                format!("must be 256 or 512, got {}", kind(&other)),
            )),
        }
    }

    /// Call once every known key was read: any key left is unknown.
    pub fn finish(self, known: &[&str]) -> CoreResult<()> {
        match self.entries.keys().next() {
            None => Ok(()),
            Some(key) => Err(CoreError::style(
                key.clone(),
                format!("is not a known option (known: {})", known.join(", ")),
            )),
        }
    }
}

/// "between 0 and 64", "greater than 0", "at least 1" for a number's allowed range.
fn bounds(min: f64, max: f64) -> String {
    match (min, max) {
        (m, x) if m == f64::MIN_POSITIVE && x >= 1e300 => "greater than 0".into(),
        (m, x) if m == f64::MIN_POSITIVE => format!("greater than 0 and at most {x}"),
        (m, x) if x >= 1e300 => format!("at least {m}"),
        (m, x) => format!("between {m} and {x}"),
    }
}

/// A CSS colour string as RGBA8; the error is a message quoting the string.
pub fn parse_color(s: &str) -> Result<[u8; 4], String> {
    csscolorparser::parse(s)
        .map(|c| c.to_rgba8())
        .map_err(|e| format!("\"{s}\" is not a colour: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_keys_and_rejects_the_rest() {
        let mut r =
            StyleReader::parse(r##"{"radius": 2, "color": "#ff000080", "size": 512}"##).unwrap();
        assert_eq!(r.number("radius", 1.0, 0.0, 64.0).unwrap(), 2.0);
        assert_eq!(r.color("color", [0; 4]).unwrap(), [255, 0, 0, 128]);
        assert_eq!(r.tile_size("size").unwrap(), TileSize::Px512);
        assert!(r.finish(&["radius", "color", "size"]).is_ok());

        let mut r = StyleReader::parse(r#"{"radius": 2, "colour": "red"}"#).unwrap();
        r.number("radius", 1.0, 0.0, 64.0).unwrap();
        let err = r.finish(&["radius", "color"]).unwrap_err().to_string();
        assert!(err.contains("\"colour\""), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (r#"{"radius": -1}"#, "radius"),
            (r#"{"radius": "big"}"#, "radius"),
            (r#"{"radius": true}"#, "radius"),
            (r#"{"radius": 1e300}"#, "radius"),
            (r#"{"color": "blurple"}"#, "color"),
            (r#"{"color": 7}"#, "color"),
            (r#"{"size": 300}"#, "size"),
        ];
        for (json, key) in cases {
            let mut r = StyleReader::parse(json).unwrap();
            let err = r
                .number("radius", 1.0, 0.0, 64.0)
                .and_then(|_| r.color("color", [0; 4]))
                .and_then(|_| r.tile_size("size"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("\"{key}\"")), "{json}: {err}");
        }
        assert!(StyleReader::parse("[1]").is_err());
        assert!(StyleReader::parse("{").is_err());
    }
}

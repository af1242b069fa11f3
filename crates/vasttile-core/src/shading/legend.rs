//! Legends: a horizontal bar of the colours a layer's style paints, as an indexed PNG, so a web
//! page can show exactly what the tiles use (same palette, same alpha rule).

use crate::encoding::png::{encode_indexed, Effort};
use crate::error::{CoreError, CoreResult};
use crate::shading::choropleth::{ChoroplethStyle, Mapping};
use crate::shading::shade::HeatStyle;

fn check_size(width: i32, height: i32) -> CoreResult<(u32, u32)> {
    if (2..=2048).contains(&width) && (1..=512).contains(&height) {
        Ok((width as u32, height as u32))
    } else {
        Err(CoreError::out_of_range(
            "legend size",
            format!("must be 2..2048 wide and 1..512 high, got {width} x {height}"),
        ))
    }
}

/// `colors` spread over the width in equal parts, left to right.
fn bar(colors: &[[u8; 4]], width: u32, height: u32) -> CoreResult<Vec<u8>> {
    if colors.is_empty() {
        // A mapping with no colours (an empty explicit map): a transparent bar.
        return bar(&[[0; 4]], width, height);
    }
    let n = colors.len().min(256);
    let row: Vec<u8> = (0..width)
        .map(|x| ((x as usize * n) / width as usize).min(n - 1) as u8)
        .collect();
    let indices: Vec<u8> = (0..height).flat_map(|_| row.iter().copied()).collect();
    encode_indexed(width, height, &indices, &colors[..n], Effort::Fast)
}

/// Heat from no heat (left, level 1) to the most (right, level 255), through the style's palette.
pub fn heat_legend(style: &HeatStyle, width: i32, height: i32) -> CoreResult<Vec<u8>> {
    let (w, h) = check_size(width, height)?;
    let palette = style.palette();
    // Levels 1..=255 sampled across the width (at most 255 distinct colours).
    let colors: Vec<[u8; 4]> = (0..w.min(255))
        .map(|i| palette[1 + (i as usize * 254) / (w.min(255) as usize - 1)])
        .collect();
    bar(&colors, w, h)
}

/// Classes as equal swatches (missing last, when it shows); a continuous mapping as its
/// colormap; explicit and feature colours as swatches.
pub fn choropleth_legend(style: &ChoroplethStyle, width: i32, height: i32) -> CoreResult<Vec<u8>> {
    let (w, h) = check_size(width, height)?;
    let alpha = |c: [u8; 4]| {
        [
            c[0],
            c[1],
            c[2],
            (c[3] as f64 * style.opacity).round() as u8,
        ]
    };
    let mut colors: Vec<[u8; 4]> = match &style.mapping {
        Mapping::Classes { colors, .. } => colors.clone(),
        Mapping::Continuous { colormap, .. } => colormap.colors.clone(),
        Mapping::Explicit(map) => {
            let mut v: Vec<_> = map.iter().collect();
            v.sort_by_key(|(id, _)| **id);
            v.into_iter().map(|(_, c)| *c).collect()
        }
        Mapping::Features(list) => list.iter().map(|(_, c)| *c).collect(),
    };
    if style.missing[3] > 0 && colors.len() < 256 {
        colors.push(style.missing);
    }
    let colors: Vec<[u8; 4]> = colors.into_iter().take(256).map(alpha).collect();
    bar(&colors, w, h)
}

/// One swatch of a single colour (point layers).
pub fn swatch_legend(color: [u8; 4], width: i32, height: i32) -> CoreResult<Vec<u8>> {
    let (w, h) = check_size(width, height)?;
    bar(&[color], w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::png::decode;
    use serde_json::json;

    #[test]
    fn a_heat_legend_runs_through_the_palette() {
        let style =
            HeatStyle::from_json(&json!({"colormap": "viridis"}), HeatStyle::heat_defaults())
                .unwrap();
        let png = heat_legend(&style, 256, 10).unwrap();
        let img = decode(&png).unwrap();
        assert_eq!((img.width, img.height), (256, 10));
        let palette = style.palette();
        assert_eq!(img.pixel(0, 0), palette[1]);
        assert_eq!(img.pixel(255, 9), palette[255]);
    }

    #[test]
    fn a_choropleth_legend_has_a_swatch_per_class() {
        let style = ChoroplethStyle::from_json(&json!({
            "classes": {"breaks": [1, 2], "colors": ["#ff0000", "#00ff00", "#0000ff"]},
            "missing": "#cccccc"
        }))
        .unwrap();
        let img = decode(&choropleth_legend(&style, 40, 4).unwrap()).unwrap();
        assert_eq!(img.pixel(0, 0), [255, 0, 0, 255]);
        assert_eq!(img.pixel(15, 0), [0, 255, 0, 255]);
        assert_eq!(img.pixel(25, 0), [0, 0, 255, 255]);
        assert_eq!(img.pixel(39, 3), [204, 204, 204, 255]);
        assert!(swatch_legend([1, 2, 3, 4], 1, 1).is_err());
    }

    #[test]
    fn a_legend_of_no_colours_is_transparent() {
        let img = decode(&bar(&[], 8, 2).unwrap()).unwrap();
        assert_eq!(img.opaque_count(), 0);
    }
}

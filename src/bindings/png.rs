//! SQL family: PNG helpers for looking at tiles from psql and tests.

use super::OrRaise;
use pgrx::prelude::*;
use vasttile_core::encoding::png::{self, Effort, RgbaImage};
use vasttile_core::geometry::vcs::TileSize;

/// A fully transparent tile, for callers that want a PNG where vasttile returns NULL.
#[pg_extern(immutable, strict, parallel_safe)]
fn empty_tile(tile_size: default!(i32, 256)) -> Vec<u8> {
    let s = TileSize::from_px(tile_size as i64).or_raise().px();
    png::encode(&RgbaImage::transparent(s, s), Effort::Fast).or_raise()
}

/// Header facts and the number of visible (alpha > 0) pixels of a PNG.
#[pg_extern(immutable, strict, parallel_safe)]
fn png_info(
    png: &[u8],
) -> TableIterator<
    'static,
    (
        name!(width, i32),
        name!(height, i32),
        name!(color_type, String),
        name!(bit_depth, i32),
        name!(visible_pixels, i64),
    ),
> {
    let info = png::info(png).or_raise();
    let visible = png::decode(png).or_raise().opaque_count() as i64;
    TableIterator::once((
        info.width as i32,
        info.height as i32,
        info.color_type.to_string(),
        info.bit_depth as i32,
        visible,
    ))
}

/// Number of pixels that differ between two PNGs of one size (transparent pixels are equal
/// whatever their RGB): compare tiles by what they show, not by their bytes.
#[pg_extern(immutable, strict, parallel_safe)]
fn png_diff(a: &[u8], b: &[u8]) -> i64 {
    let a = png::decode(a).or_raise();
    let b = png::decode(b).or_raise();
    png::pixel_diff(&a, &b).or_raise() as i64
}

//! The core of vasttile: coordinate maths, rasterising, pyramids, shading and PNG encoding in
//! plain Rust, with no PostgreSQL in it (this crate does not depend on pgrx), so all of it runs
//! and is tested with plain `cargo test`, and could run on any thread. The extension's SQL
//! bindings convert arguments, call in here and turn [`error::CoreError`] into SQL errors.
//!
//! The folders follow the data: [`geometry`] (VCS coordinates, polygons, paths, import) ->
//! [`raster`] (grids of counts, dots, lines, accessibility, polygon fill) -> [`pyramid`] (zoom
//! pyramids, CDFs, seams) -> [`shading`] (normalise, colour, choropleth, legends) ->
//! [`encoding`] (PNG, text previews). [`style`] reads the JSON styles of every stage and
//! [`error`] is the one error type.
#![warn(missing_docs)]

#[cfg(feature = "demo")]
pub mod demo;
pub mod encoding;
pub mod error;
pub mod geometry;
pub mod parallel;
pub mod pyramid;
pub mod raster;
pub mod shading;
pub mod style;

#[cfg(test)]
mod fuzz;

/// A small deterministic generator for tests (an LCG): `u64`s of 31 bits.
#[cfg(test)]
pub(crate) fn test_numbers(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    }
}

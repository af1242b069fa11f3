//! Rasterisers: rows to per-pixel values of one tile. Counts and weighted sums ([`heat`]),
//! distinct pixels drawn as dots ([`dots`]), paths as lines ([`lines`], short segments from a table in [`line_patterns`]), accessibility cones
//! ([`access`]) and polygons filled into ID skeletons ([`skeleton`]).
pub mod access;
pub mod dots;
pub mod heat;
pub mod line_patterns;
pub mod lines;
pub mod skeleton;

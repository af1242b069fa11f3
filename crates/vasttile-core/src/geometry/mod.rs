//! Geometry: where things are. VCS coordinates and tiles, polygons and paths imported from
//! GeoJSON, TopoJSON and WKB, and activities (paths with times) with their filters.
pub mod activity;
pub mod polygon;
pub mod vcs;

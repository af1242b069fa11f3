//! The core of vasttile: coordinate maths, rasterising and PNG encoding in plain Rust.
//!
//! Nothing here imports pgrx or touches PostgreSQL memory, so all of it runs and is tested with
//! plain `cargo test`, and could run on any thread. The SQL layer (`crate::bindings`) converts
//! arguments, calls in here and turns `CoreError` into SQL errors.

pub mod access;
pub mod activity;
pub mod cdf;
pub mod choropleth;
pub mod dots;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod heat;
pub mod legend;
pub mod lines;
pub mod parallel;
pub mod png;
pub mod polygon;
pub mod preview;
pub mod pyramid;
pub mod shade;
pub mod skeleton;
pub mod style;
pub mod vcs;

#[cfg(test)]
mod purity {
    /// The core must stay free of pgrx: check the sources, since a `use` would still compile.
    #[test]
    fn core_does_not_import_pgrx() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/core");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for needle in [
                concat!("pgrx", "::"),
                concat!("use ", "pgrx"),
                concat!("pg_", "sys"),
            ] {
                assert!(!text.contains(needle), "{} uses {needle}", path.display());
            }
        }
    }
}

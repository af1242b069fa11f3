//! vasttile: map tiles from rows, rendered inside PostgreSQL.
//!
//! The core (VCS maths, rasterisers, pyramids, shading, PNG) is the plain-Rust crate
//! `vasttile-core` in `crates/`; `bindings` is the thin SQL layer, one file per SQL family.
//! See README.md for the SQL reference.

pub mod bindings;

::pgrx::pg_module_magic!(name, version);

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

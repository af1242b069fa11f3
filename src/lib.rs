//! vasttile: map tiles from rows, rendered inside PostgreSQL.
//!
//! `core` is plain Rust (VCS maths, rasterisers, PNG); `bindings` is the thin SQL layer, one file
//! per SQL family. See README.md for the SQL reference.

pub mod bindings;
pub mod core;

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

//! SQL family: heat pyramids (the Strava global heatmap inside PostgreSQL).
//!
//! `create_heat_pyramid(name, table, options)` registers a table of points, paths or activities,
//! puts statement triggers on it that log changed rows, and builds the pyramid: count tiles at a
//! base zoom drawn in parallel, summed 2x2 down to z0, each tile normalised by its
//! neighbourhood's CDF with bilinear interpolation and stored as one byte per pixel.
//! `heat_pyramid_tile` serves a tile with one row read and a colour lookup (any zoom up to the
//! base; deeper tiles are drawn on the fly from the table), `heat_pyramid_refresh` applies the
//! logged changes to the tiles they touch. Builds and refreshes run in the caller's transaction,
//! so a failed, cancelled or killed one leaves the last good pyramid (and the log) as it was.

mod build;
mod definition;
mod distributed;
mod serve;
mod shards;
mod store;

use crate::bindings::security::{self};
use crate::bindings::HeatGridBytes;
use crate::bindings::OrSpiError;
use crate::bindings::{sql_error, Bytes, Jsonb, OrRaise, Relation, StyleJsonb};
use build::*;
use definition::*;
use pgrx::prelude::*;
use pgrx::spi;
use serde_json::json;
pub(crate) use serve::{points_pyramid_for, pyramid_tile};
use std::collections::HashMap;
use store::*;
use vasttile_core::error::CoreError;
use vasttile_core::geometry::vcs::Tile;
use vasttile_core::pyramid::build::{seam_stats, SeamTile};
use vasttile_core::pyramid::levels::StoredLevels;
use vasttile_core::raster::heat::HeatGrid;
use vasttile_core::shading::shade::HeatStyle;

pgrx::extension_sql_file!(
    "pyramid.sql",
    name = "pyramid_tables",
    requires = ["heatgrid_domain"]
);

/// Register `tbl` as heat pyramid `name` and build it. Options (all optional):
/// `geometry` ("points", "paths" or "activities"), `column` (vcs_key or path), `weight_column`,
/// for activities `id_column`, `times_column`, `kind_column`, `virtual_column`,
/// `private_column` and `filters`; `base_zoom` (14), `tile_size` (256), `radius` (5 tiles) and
/// `low_heat` (4). Paths get a GiST index on their box for drawing beyond the base zoom.
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn create_heat_pyramid(
    name: &str,
    tbl: Relation,
    options: default!(Jsonb, "'{}'"),
    build: default!(bool, true),
) -> pgrx::JsonB {
    security::check_name(name);
    security::lock_name("heat pyramid", name);
    let oid = tbl.oid();
    security::require_table_owner(oid, "create a heat pyramid over it");
    security::require_lasting_table(oid);
    if let Some((existing, old_source)) = owner_of(name) {
        security::require_role(
            existing,
            old_source,
            &format!("heat pyramid \"{name}\""),
            "replace",
        );
    }
    let source = super::quoted_relation_name(&tbl);
    let table_name = tbl.name().to_string();
    // Let go of the relation before DDL on it.
    drop(tbl);
    let mut p = Pyramid::from_options(name, &source, &options.0).or_raise();
    check_columns(oid, &p.options, &source);
    let old_source = security::as_catalog_owner(|| {
        Spi::get_one_with_args::<pgrx::pg_sys::Oid>(
            "SELECT (SELECT source::oid FROM vasttile.heat_pyramids WHERE name = $1)",
            &[name.into()],
        )
    })
    .or_spi_error("create_heat_pyramid");
    // The creator, read before switching to the extension's owner.
    let creator = security::current_user();
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "INSERT INTO vasttile.heat_pyramids (name, source, owner, options, base_zoom, tile_size) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET source = excluded.source, options = excluded.options, \
             base_zoom = excluded.base_zoom, tile_size = excluded.tile_size, built_at = NULL, last_build = NULL, \
             version = nextval('vasttile.pyramid_version_seq')",
            &[
                name.into(),
                oid.into(),
                creator.into(),
                pgrx::JsonB(p.options.clone()).into(),
                (p.base_zoom as i32).into(),
                (p.size.px() as i32).into(),
            ],
        )?;
        // A definition changed: its old tiles and log must not be served or drawn.
        for sql in [
            "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1",
            "DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $1",
        ] {
            Spi::run_with_args(sql, &[name.into()])?;
        }
        Ok::<_, spi::SpiError>(())
    })
    .or_spi_error("create_heat_pyramid");
    // Its tiles are gone (until a build): tile servers must not serve their copies.
    super::versions::notify();
    p = Pyramid::load(name);
    if let Some(old) = old_source {
        if old != oid && super::citus::is_distributed(old) {
            shards::forget_everywhere(name, &security::qualified_name(old));
        }
        security::drop_triggers("vasttile.heat_pyramid_log_rows()", name, old);
    }
    for (event, tables) in [
        ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
        (
            "UPDATE",
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("TRUNCATE", ""),
    ] {
        let trigger = spi::quote_identifier(security::trigger_name("pyramid", name, event));
        // On a distributed table Citus puts the trigger on every shard (TRUNCATE's stays here).
        super::citus::with_triggers_allowed(oid, || {
            Spi::run(&format!(
                "CREATE TRIGGER {trigger} AFTER {event} ON {source} {tables} \
                 FOR EACH STATEMENT EXECUTE FUNCTION vasttile.heat_pyramid_log_rows({lit})",
                lit = spi::quote_literal(name)
            ))
        })
        .or_spi_error("create_heat_pyramid");
    }
    // Tiles past the base zoom are drawn from the table: its changes change the version.
    super::versions::track_table(oid);
    if p.geometry != Geometry::Points {
        let index = truncate_identifier(format!("{table_name}_{}_vasttile_box", p.column));
        Spi::run(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON {source} USING gist (vasttile.path_box({}))",
            spi::quote_identifier(index),
            spi::quote_identifier(&p.column),
        ))
        .or_spi_error("create_heat_pyramid");
    }
    if build {
        pgrx::JsonB(build_all(&p))
    } else {
        pgrx::JsonB(json!({"built": false}))
    }
}

/// The longest prefix of `name` within 63 bytes (PostgreSQL's identifier limit), cut at a
/// character boundary, so the name created is the name looked up.
fn truncate_identifier(mut name: String) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// The caller may rebuild, refresh or drop pyramid `p`: it has the privileges of its creator
/// and of its table's owner.
fn require_manage(p: &Pyramid, action: &str) {
    security::require_role(
        p.owner,
        p.source_oid,
        &format!("heat pyramid \"{}\"", p.name),
        action,
    );
    security::require_table_owner(
        p.source_oid,
        &format!("{action} heat pyramid \"{}\"", p.name),
    );
}

/// Rebuild a pyramid from its table.
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn heat_pyramid_build(name: &str) -> pgrx::JsonB {
    lock(name);
    let p = Pyramid::load(name);
    require_manage(&p, "rebuild");
    pgrx::JsonB(build_all(&p))
}

/// Apply the changes logged since the last build or refresh (a full build after a TRUNCATE).
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn heat_pyramid_refresh(name: &str) -> pgrx::JsonB {
    lock(name);
    let p = Pyramid::load(name);
    require_manage(&p, "refresh");
    pgrx::JsonB(refresh(&p))
}

/// Drop a pyramid: its tiles, log and triggers (the table and its index stay).
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn drop_heat_pyramid(name: &str) -> bool {
    security::lock_name("heat pyramid", name);
    let Some((owner, source)) = owner_of(name) else {
        return false;
    };
    security::require_role(owner, source, &format!("heat pyramid \"{name}\""), "drop");
    let source = security::as_catalog_owner(|| {
        for sql in [
            "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1",
            "DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $1",
        ] {
            Spi::run_with_args(sql, &[name.into()])?;
        }
        Spi::get_one_with_args::<pgrx::pg_sys::Oid>(
            "WITH gone AS (DELETE FROM vasttile.heat_pyramids WHERE name = $1 RETURNING source::oid AS source) \
             SELECT (SELECT source FROM gone)",
            &[name.into()],
        )
    })
    .or_spi_error("drop_heat_pyramid");
    if let Some(source) = source {
        if super::citus::is_distributed(source) {
            shards::forget_everywhere(name, &security::qualified_name(source));
        }
        security::drop_triggers("vasttile.heat_pyramid_log_rows()", name, source);
    }
    super::versions::notify();
    true
}

/// A tile of a pyramid. Up to the base zoom: the stored levels coloured with the style's
/// colormap and alpha (`normalize` other than eq_hist shades the stored counts instead); beyond
/// it: drawn on the fly from the table. Style key `size` 512 on a 256-px pyramid gives retina
/// tiles. NULL when the tile holds no heat.
#[pg_extern(stable, parallel_safe, requires = ["pyramid_tables"])]
fn heat_pyramid_tile(
    name: &str,
    z: i32,
    x: i32,
    y: i32,
    style: default!(StyleJsonb, "'{}'"),
) -> Option<Vec<u8>> {
    let tile = Tile::new(z, x, y).or_raise();
    let (size, style, ()) =
        HeatStyle::read_tile(&style.0, HeatStyle::heat_defaults(), &[], |_| Ok(())).or_raise();
    pyramid_tile(name, tile, &style, size)
}

/// The stored counts of one tile of a pyramid (zoom 0 to its base zoom) as a heat grid: for
/// `heat_stats`, `heat_render` with any style, or a parent check with `heat_grid_parent`. NULL
/// when the tile holds no heat. Needs the same access to the pyramid's table as its tiles.
#[pg_extern(stable, strict, parallel_safe, requires = ["pyramid_tables"])]
fn heat_pyramid_counts(name: &str, z: i32, x: i32, y: i32) -> Option<HeatGridBytes> {
    let tile = Tile::new(z, x, y).or_raise();
    let (base, _, source, bytes) = serve::stored_tile(name, tile, false);
    security::require_full_access(source, &format!("heat pyramid \"{name}\""));
    if tile.z > base {
        // Beyond the base zoom nothing is stored: NULL would read as "no heat".
        crate::bindings::raise(CoreError::out_of_range(
            "z",
            format!("must be at most heat pyramid \"{name}\"'s base zoom {base}, got {z}"),
        ));
    }
    let grid = HeatGrid::from_stored_bytes(&bytes?).or_raise();
    Some(HeatGridBytes(grid.to_bytes()))
}

/// The seam measure of a pyramid's zoom z, one row per measure: the mean absolute level
/// difference of lit neighbouring pixels across tile edges against `near edge` pairs (one step
/// inside the same edges), `inside` pairs (all within tiles), and `equal heat` pairs inside
/// (where only the normalisation can make levels differ).
#[pg_extern(stable, parallel_safe, requires = ["pyramid_tables"])]
fn heat_pyramid_seams(
    name: &str,
    z: i32,
) -> TableIterator<
    'static,
    (
        name!(compared_with, String),
        name!(edge_mean, f64),
        name!(edge_pairs, i64),
        name!(inner_mean, f64),
        name!(inner_pairs, i64),
    ),
> {
    let p = Pyramid::load(name);
    security::require_full_access(p.source_oid, &format!("heat pyramid \"{name}\""));
    // Levels are stored up to the base zoom only: past it there are no seams to measure.
    if !(0..=p.base_zoom as i32).contains(&z) {
        crate::bindings::raise(CoreError::out_of_range(
            "z",
            format!(
                "must be between 0 and heat pyramid \"{name}\"'s base zoom {}, got {z}",
                p.base_zoom
            ),
        ));
    }
    let mut tiles = HashMap::new();
    security::as_catalog_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT x, y, levels, counts::bytea FROM vasttile.heat_pyramid_tiles \
             WHERE pyramid = $1 AND z = $2 AND levels IS NOT NULL",
                None,
                &[name.into(), z.into()],
            )?;
            for row in rows {
                pgrx::check_for_interrupts!();
                if let (Some(x), Some(y), Some(levels), Some(counts)) = (
                    row.get::<i32>(1)?,
                    row.get::<i32>(2)?,
                    row.get::<Bytes>(3)?.map(|b| b.0),
                    row.get::<Bytes>(4)?,
                ) {
                    let side = p.size.px() as usize;
                    // The counts are decoded once, for the levels and the heat.
                    let grid = HeatGrid::from_stored_bytes(&counts.0).or_raise();
                    let stored = StoredLevels::from_bytes(&levels, side).or_raise();
                    let levels = serve::levels_with(stored, side, || &grid);
                    let heat = grid.values();
                    tiles.insert((x as u32, y as u32), SeamTile { levels, heat });
                }
            }
            Ok::<_, spi::SpiError>(())
        })
    })
    .or_spi_error("heat_pyramid_seams");
    let s = seam_stats(&tiles, p.size.px() as usize);
    TableIterator::new(
        [
            ("near edge".to_string(), s.edge, s.near_edge),
            ("inside".to_string(), s.edge, s.inner),
            (
                "equal heat".to_string(),
                s.equal_heat_edge,
                s.equal_heat_inner,
            ),
        ]
        .into_iter()
        .map(|(k, e, i)| (k, e.mean, e.pairs as i64, i.mean, i.pairs as i64)),
    )
}

/// A child's counts summed 2x2 into its parent tile (the rest of the parent empty):
/// `heat_merge(heat_grid_parent(g))` over four children is the parent, as pyramids build it.
#[pg_extern(immutable, strict, parallel_safe)]
fn heat_grid_parent(grid: HeatGridBytes) -> HeatGridBytes {
    let child = HeatGrid::from_bytes(&grid.0).or_raise();
    let t = child.tile;
    if t.z == 0 {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a zoom-0 heat grid has no parent",
        );
    }
    let parent = Tile {
        z: t.z - 1,
        x: t.x >> 1,
        y: t.y >> 1,
    };
    let mut g = HeatGrid::new(parent, child.size).or_raise();
    g.add_child(&child).or_raise();
    HeatGridBytes(g.to_bytes())
}

/// What a layer over pyramid `name` shows in its comment: the source table and the base zoom
/// (raises 42704 when there is no such pyramid).
pub(crate) fn layer_facts(name: &str) -> (String, u32) {
    let p = Pyramid::load(name);
    (p.source, p.base_zoom)
}

/// What the version of pyramid `name` is made of: its table and the number its last build or
/// refresh took (None before the first); raises 42704 when there is no such pyramid.
pub(crate) fn version_facts(name: &str) -> (pgrx::pg_sys::Oid, Option<i64>) {
    let p = Pyramid::load(name);
    let version = security::as_catalog_owner(|| {
        Spi::get_one_with_args::<i64>(
            "SELECT version FROM vasttile.heat_pyramids WHERE name = $1",
            &[name.into()],
        )
    })
    .or_spi_error("reading the pyramid's version");
    (p.source_oid, version)
}

/// The versions of the built pyramids over table `rel`, in name order.
pub(crate) fn built_versions(rel: pgrx::pg_sys::Oid) -> Vec<i64> {
    security::as_catalog_owner(|| {
        Spi::get_one_with_args::<Vec<i64>>(
            "SELECT coalesce(array_agg(coalesce(version, 0) ORDER BY name), '{}') FROM vasttile.heat_pyramids \
             WHERE source = $1 AND built_at IS NOT NULL",
            &[rel.into()],
        )
    })
    .or_spi_error("reading the pyramids' versions")
    .unwrap_or_default()
}

/// The version of heat pyramid `name`: changes with every build or refresh that changed its
/// tiles and with every change to its table (tiles past the base zoom are drawn from it).
#[pg_extern(stable, strict, parallel_safe, requires = ["version_tables", "pyramid_tables"])]
fn heat_pyramid_version(name: &str) -> Option<i64> {
    pyramid_version(name)
}

pub(crate) fn pyramid_version(name: &str) -> Option<i64> {
    let (source, built) = version_facts(name);
    security::require_full_access(source, &format!("heat pyramid \"{name}\""));
    let table = super::versions::table_version_of(source)?;
    Some(super::versions::mix(&[table, built.unwrap_or(-1)]))
}

//! SQL family: choropleth tiles through skeletons.
//!
//! Polygons are stored as `vcspolygon` (imported from GeoJSON, TopoJSON or WKB). A skeleton
//! layer names a table of (id, polygon); `skeleton_tile` rasterises a tile of it into IDs once and
//! caches it in `vasttile.skeleton_cache` (a miss renders and saves, a hit reads; writes to the
//! layer's table empty its cache); `skeleton_render` recolours a skeleton with values from any
//! SQL and a colour mapping.

use super::security::{self, Access};
use super::{quoted_relation_name, required, sql_error, GeoJsonb, OrRaise, Relation, StyleJsonb};
use pgrx::prelude::*;
use pgrx::spi;
use std::collections::HashMap;
use vasttile_core::error::CoreError;
use vasttile_core::geometry::polygon::MultiPolygon;
use vasttile_core::geometry::vcs::{Tile, TileSize};
use vasttile_core::raster::skeleton::{recolor, Skeleton};
use vasttile_core::shading::choropleth::ChoroplethStyle;

pgrx::extension_sql_file!("choropleth.sql", name = "skeleton_tables");

super::bytea_domain!(
    /// A `vcspolygon` argument or result (bytes of a `MultiPolygon`).
    PolygonBytes,
    "vcspolygon"
);

/// A polygon from a GeoJSON Polygon or MultiPolygon (or a Feature of one), in lon/lat degrees.
#[pg_extern(immutable, strict, parallel_safe, requires = ["skeleton_tables"])]
fn polygon_from_geojson(geojson: GeoJsonb) -> PolygonBytes {
    PolygonBytes(MultiPolygon::from_geojson(&geojson.0).or_raise().to_bytes())
}

/// A polygon from WKB of a Polygon or MultiPolygon in lon/lat (PostGIS: `ST_AsBinary(geom)`).
#[pg_extern(immutable, strict, parallel_safe, requires = ["skeleton_tables"])]
fn polygon_from_wkb(wkb: &[u8]) -> PolygonBytes {
    PolygonBytes(MultiPolygon::from_wkb(wkb).or_raise().to_bytes())
}

/// The polygon features of one object of a TopoJSON topology.
#[pg_extern(immutable, strict, parallel_safe, requires = ["skeleton_tables"])]
fn polygons_from_topojson(
    topojson: &str,
    object: &str,
) -> TableIterator<
    'static,
    (
        name!(id, Option<String>),
        name!(properties, pgrx::JsonB),
        name!(polygon, PolygonBytes),
    ),
> {
    let features = MultiPolygon::from_topojson(topojson, object).or_raise();
    TableIterator::new(
        features
            .into_iter()
            .map(|(id, props, mp)| (id, pgrx::JsonB(props), PolygonBytes(mp.to_bytes()))),
    )
}

/// A polygon as a GeoJSON MultiPolygon in lon/lat degrees (for PostGIS, `ST_GeomFromGeoJSON`).
#[pg_extern(immutable, strict, parallel_safe, requires = ["skeleton_tables"])]
fn polygon_to_geojson(polygon: PolygonBytes) -> pgrx::JsonB {
    pgrx::JsonB(MultiPolygon::from_bytes(&polygon.0).or_raise().to_geojson())
}

/// Parts, rings, vertices and VCS bounding box of a polygon.
#[pg_extern(immutable, strict, parallel_safe, requires = ["skeleton_tables"])]
#[allow(clippy::type_complexity)]
fn polygon_info(
    polygon: PolygonBytes,
) -> TableIterator<
    'static,
    (
        name!(polygons, i32),
        name!(rings, i32),
        name!(vertices, i64),
        name!(xmin, i32),
        name!(ymin, i32),
        name!(xmax, i32),
        name!(ymax, i32),
    ),
> {
    let mp = MultiPolygon::from_bytes(&polygon.0).or_raise();
    let (a, b, c, d) = mp.bbox().unwrap_or((0, 0, 0, 0));
    let rings = mp.polygons.iter().map(Vec::len).sum::<usize>();
    TableIterator::once((
        mp.polygons.len() as i32,
        rings as i32,
        mp.vertices() as i64,
        a as i32,
        b as i32,
        c as i32,
        d as i32,
    ))
}

/// Register a table of (id, polygon) as a skeleton layer, with a trigger that empties the layer's
/// cache when the table changes. With `feature_bits`, ids are bit numbers 0..31 and a pixel holds
/// the bits of every polygon covering it.
#[pg_extern(volatile, parallel_unsafe, requires = ["skeleton_tables"])]
fn create_skeleton_layer(
    name: &str,
    tbl: Relation,
    id_column: default!(&str, "'id'"),
    polygon_column: default!(&str, "'polygon'"),
    feature_bits: default!(bool, false),
) -> String {
    security::check_name(name);
    security::lock_name("skeleton layer", name);
    let oid = tbl.oid();
    security::require_table_owner(oid, "create a skeleton layer over it");
    security::require_lasting_table(oid);
    let old = layer_definition(name);
    if let Some(old) = &old {
        security::require_role(
            old.owner,
            old.source,
            &format!("skeleton layer \"{name}\""),
            "replace",
        );
    }
    let table = quoted_relation_name(&tbl);
    drop(tbl);
    check_layer_columns(oid, &table, id_column, polygon_column);
    // The creator, read before switching to the extension's owner.
    let creator = security::current_user();
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "INSERT INTO vasttile.skeleton_layers (name, source, owner, id_column, polygon_column, feature_bits) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET source = excluded.source, id_column = excluded.id_column, \
             polygon_column = excluded.polygon_column, feature_bits = excluded.feature_bits, \
             generation = nextval('vasttile.skeleton_generation')",
            &[
                name.into(),
                oid.into(),
                creator.into(),
                id_column.into(),
                polygon_column.into(),
                feature_bits.into(),
            ],
        )?;
        Spi::run_with_args(
            "DELETE FROM vasttile.skeleton_cache WHERE layer = $1",
            &[name.into()],
        )
    })
    .unwrap_or_else(|e| sql_error(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("create_skeleton_layer: {e}")));
    if let Some(old) = old {
        security::drop_triggers(INVALIDATE, name, old.source);
    }
    security::drop_triggers(INVALIDATE, name, oid);
    // On a distributed table Citus creates a trigger on every shard (see skeleton_invalidate), but
    // never one for TRUNCATE: that one stays on the coordinator, where TRUNCATE fires it.
    let triggers: &[(&str, &str)] = if super::citus::is_distributed(oid) {
        &[
            ("INSERT OR UPDATE OR DELETE", "change"),
            ("TRUNCATE", "truncate"),
        ]
    } else {
        &[("INSERT OR UPDATE OR DELETE OR TRUNCATE", "change")]
    };
    super::citus::with_triggers_allowed(oid, || {
        triggers.iter().try_for_each(|(events, label)| {
            Spi::run(&format!(
                "CREATE TRIGGER {trigger} AFTER {events} ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION vasttile.skeleton_invalidate({lit})",
                trigger = spi::quote_identifier(security::trigger_name("skeleton", name, label)),
                lit = spi::quote_literal(name),
            ))
        })
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("create_skeleton_layer: {e}"),
        )
    });
    name.to_string()
}

/// Drop a skeleton layer: its cache and trigger (the table stays). False when there is none.
#[pg_extern(volatile, parallel_unsafe, requires = ["skeleton_tables"])]
fn drop_skeleton_layer(name: &str) -> bool {
    security::lock_name("skeleton layer", name);
    let Some(old) = layer_definition(name) else {
        return false;
    };
    security::require_role(
        old.owner,
        old.source,
        &format!("skeleton layer \"{name}\""),
        "drop",
    );
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "DELETE FROM vasttile.skeleton_layers WHERE name = $1",
            &[name.into()],
        )
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("drop_skeleton_layer: {e}"),
        )
    });
    security::drop_triggers(INVALIDATE, name, old.source);
    true
}

/// The cache-emptying trigger function, as a regprocedure.
const INVALIDATE: &str = "vasttile.skeleton_invalidate()";

/// A skeleton layer's definition.
struct LayerDefinition {
    source: pgrx::pg_sys::Oid,
    owner: pgrx::pg_sys::Oid,
    /// The table, quoted and schema-qualified; `None` when it no longer exists.
    table: Option<String>,
    id_column: String,
    polygon_column: String,
    feature_bits: bool,
    /// Bumped by every change to the table (see `skeleton_invalidate`).
    generation: i64,
}

/// Read a layer's definition (as the extension's owner: the caller's rights are checked by
/// each use).
fn layer_definition(name: &str) -> Option<LayerDefinition> {
    security::as_catalog_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT l.source::oid, l.owner::oid, \
                        (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
                         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.source), \
                        l.id_column, l.polygon_column, l.feature_bits, l.generation \
                 FROM vasttile.skeleton_layers l WHERE l.name = $1",
                Some(1),
                &[name.into()],
            )?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(None);
            };
            Ok::<_, spi::SpiError>(Some(LayerDefinition {
                source: row.get(1)?.unwrap_or(pgrx::pg_sys::Oid::INVALID),
                owner: row.get(2)?.unwrap_or(pgrx::pg_sys::Oid::INVALID),
                table: row.get(3)?,
                id_column: row.get(4)?.unwrap_or_default(),
                polygon_column: row.get(5)?.unwrap_or_default(),
                feature_bits: row.get(6)?.unwrap_or(false),
                generation: row.get(7)?.unwrap_or(0),
            }))
        })
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("reading skeleton layer \"{name}\": {e}"),
        )
    })
}

/// A layer's definition, or `42704` when there is none.
fn existing_layer(name: &str) -> LayerDefinition {
    layer_definition(name).unwrap_or_else(|| {
        sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("skeleton layer \"{name}\" does not exist"),
        )
    })
}

/// The id column holds integers and the polygon column `vcspolygon` or `bytea` (`42703` when
/// one is missing, `42804` when its type does not fit).
fn check_layer_columns(rel: pgrx::pg_sys::Oid, table: &str, id: &str, polygon: &str) {
    // Types compared by OID, not by name: a user type named like a built-in one is refused.
    let type_of = |column: &str| {
        security::with_fixed_search_path(|| {
            Spi::get_two_with_args::<bool, bool>(
                "SELECT a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype), \
                        a.atttypid IN ('bytea'::regtype, 'vasttile.vcspolygon'::regtype) \
                 FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[rel.into(), column.into()],
            )
        })
        .ok()
        .and_then(|(i, p)| Some((i?, p?)))
        .unwrap_or_else(|| {
            sql_error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column \"{column}\" does not exist in {table}"),
            )
        })
    };
    if !type_of(id).0 {
        sql_error(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("id column \"{id}\" of {table} must be smallint, integer or bigint"),
        );
    }
    if !type_of(polygon).1 {
        sql_error(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("polygon column \"{polygon}\" of {table} must be vasttile.vcspolygon or bytea"),
        );
    }
}

/// Rasterise tile (z, x, y) of a layer from its table.
fn render_skeleton(layer: &str, def: &LayerDefinition, tile: Tile, size: TileSize) -> Skeleton {
    let Some(table) = &def.table else {
        sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("the table of skeleton layer \"{layer}\" no longer exists"),
        )
    };
    let (id, poly, bits) = (&def.id_column, &def.polygon_column, def.feature_bits);
    // The columns may have changed since the layer was made: readers run no user type's code.
    check_layer_columns(def.source, table, id, poly);
    let (x0, y0, x1, y1) = tile.vcs_bounds();
    let mut sk = Skeleton::new(tile, size).or_raise();
    let sql = format!(
        "SELECT {id}::int8, {poly}::bytea FROM {table} WHERE {poly} IS NOT NULL ORDER BY {id}",
        id = spi::quote_identifier(id),
        poly = spi::quote_identifier(poly),
    );
    Spi::connect(|client| -> spi::SpiResult<()> {
        for row in client.select(&sql, None, &[])? {
            pgrx::check_for_interrupts!();
            let (Some(id), Some(bytes)) = (row.get::<i64>(1)?, row.get::<super::Bytes>(2)?) else {
                continue;
            };
            let mp = MultiPolygon::from_bytes(&bytes.0).or_raise();
            let Some((a, b, c, d)) = mp.bbox() else {
                continue;
            };
            if (c as i64) < x0 || (a as i64) >= x1 || (d as i64) < y0 || (b as i64) >= y1 {
                continue;
            }
            if bits {
                sk.fill_bit_checked(u32::try_from(id).unwrap_or(99), &mp, &mut || {
                    pgrx::check_for_interrupts!();
                })
                .or_raise();
            } else {
                let id = u32::try_from(id)
                    .ok()
                    .filter(|&i| i > 0)
                    .unwrap_or_else(|| {
                        super::raise(CoreError::out_of_range(
                            "polygon id",
                            format!("must be between 1 and 4294967295, got {id}"),
                        ))
                    });
                sk.fill_checked(id, &mp, &mut || {
                    pgrx::check_for_interrupts!();
                });
            }
        }
        Ok(())
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("skeleton_tile: {e}"),
        )
    });
    sk
}

/// The skeleton of tile (z, x, y) of a layer: read from the cache, or rendered and saved. Two
/// sessions missing at once both render; the first insert wins and the other is ignored.
#[pg_extern(volatile, parallel_unsafe, requires = ["skeleton_tables"])]
fn skeleton_tile(layer: &str, z: i32, x: i32, y: i32, tile_size: default!(i32, 256)) -> Vec<u8> {
    let tile = Tile::new(z, x, y).or_raise();
    let size = TileSize::from_px(tile_size as i64).or_raise();
    let def = existing_layer(layer);
    match security::source_access(def.source) {
        Access::Full => {}
        // The cache holds every row: draw the caller's own rows instead, and keep them out of it.
        Access::RowSecurity => return render_skeleton(layer, &def, tile, size).to_bytes(),
        Access::Denied => {
            security::require_full_access(def.source, &format!("skeleton layer \"{layer}\""))
        }
    }
    // A distributed table's changes are counted on the nodes that hold its shards.
    let generation = if super::citus::is_distributed(def.source) {
        def.generation + super::citus::shard_changes("skeleton", layer)
    } else {
        def.generation
    };
    let args = || {
        [
            layer.into(),
            generation.into(),
            z.into(),
            x.into(),
            y.into(),
            tile_size.into(),
        ]
    };
    let cached = security::as_catalog_owner(|| {
        Spi::get_one_with_args::<super::Bytes>(
            "SELECT skeleton FROM vasttile.skeleton_cache WHERE layer = $1 AND generation = $2 \
             AND z = $3 AND x = $4 AND y = $5 AND size = $6",
            &args(),
        )
    });
    if let Ok(Some(bytes)) = cached {
        return bytes.0;
    }
    let bytes = render_skeleton(layer, &def, tile, size).to_bytes();
    // A read-only transaction (a standby, say) serves what it drew without caching it.
    let read_only =
        Spi::get_one::<bool>("SELECT pg_catalog.current_setting('transaction_read_only')::bool");
    if matches!(read_only, Ok(Some(true))) {
        return bytes;
    }
    let [a, b, c, d, e, f] = args();
    let insert = [a, b, c, d, e, f, bytes.as_slice().into()];
    security::as_catalog_owner(|| {
        Spi::run_with_args(
            "INSERT INTO vasttile.skeleton_cache (layer, generation, z, x, y, size, skeleton) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &insert,
        )
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("skeleton_tile: {e}"),
        )
    });
    bytes
}

/// Render and cache every tile of zooms `zmin..=zmax` that the layer's polygons touch; returns the
/// number of tiles rendered.
#[pg_extern(volatile, parallel_unsafe, requires = ["skeleton_tables"])]
fn skeleton_prerender(layer: &str, zmin: i32, zmax: i32, tile_size: default!(i32, 256)) -> i64 {
    if !(0..=zmax).contains(&zmin) || zmax > 12 {
        super::raise(CoreError::out_of_range(
            "zoom range",
            format!("must satisfy 0 <= zmin <= zmax <= 12, got {zmin}..{zmax}"),
        ));
    }
    let def = existing_layer(layer);
    security::require_full_access(def.source, &format!("skeleton layer \"{layer}\""));
    let boxes: Vec<(i64, i64, i64, i64)> = Spi::connect(|client| -> spi::SpiResult<Vec<_>> {
        let (Some(table), poly) = (&def.table, &def.polygon_column) else { return Ok(Vec::new()) };
        let sql = format!(
            "SELECT i.xmin, i.ymin, i.xmax, i.ymax FROM {table}, vasttile.polygon_info({p}) i WHERE {p} IS NOT NULL",
            p = spi::quote_identifier(poly)
        );
        client
            .select(&sql, None, &[])?
            .map(|r| Ok((r.get::<i32>(1)?.unwrap_or(0) as i64, r.get::<i32>(2)?.unwrap_or(0) as i64, r.get::<i32>(3)?.unwrap_or(0) as i64, r.get::<i32>(4)?.unwrap_or(0) as i64)))
            .collect()
    })
    .unwrap_or_else(|e| sql_error(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("skeleton_prerender: {e}")));
    let mut rendered = 0;
    for z in zmin..=zmax {
        // Tiles of each polygon's box, deduplicated as they come, with a cap: one world-sized
        // polygon covers 16.7 M tiles at z12.
        let s = 31 - z;
        let mut tiles: std::collections::BTreeSet<(i64, i64)> = Default::default();
        for &(a, b, c, d) in &boxes {
            let count = ((c >> s) - (a >> s) + 1) * ((d >> s) - (b >> s) + 1);
            if count as usize + tiles.len() > MAX_PRERENDER_TILES {
                super::raise(CoreError::TooLarge {
                    detail: format!(
                        "skeleton_prerender renders at most {MAX_PRERENDER_TILES} tiles per zoom, and zoom {z} of layer \"{layer}\" has more: prerender fewer zooms"
                    ),
                });
            }
            for ty in (b >> s)..=(d >> s) {
                pgrx::check_for_interrupts!();
                for tx in (a >> s)..=(c >> s) {
                    tiles.insert((tx, ty));
                }
            }
        }
        for (tx, ty) in tiles {
            pgrx::check_for_interrupts!();
            skeleton_tile(layer, z, tx as i32, ty as i32, tile_size);
            rendered += 1;
        }
    }
    rendered
}

/// The most tiles `skeleton_prerender` lists for one zoom (a few tens of MB).
const MAX_PRERENDER_TILES: usize = 1 << 20;

/// Recolour a skeleton: `ids` and `vals` map polygon IDs to values (from any SQL, e.g. a join
/// with an attribute table), `style` maps values to colours. NULL when nothing shows.
#[pg_extern(immutable, parallel_safe, requires = ["skeleton_tables"])]
fn skeleton_render(
    skeleton: Option<&[u8]>,
    ids: default!(Option<Vec<Option<i64>>>, "NULL"),
    vals: default!(Option<Vec<Option<f64>>>, "NULL"),
    style: default!(StyleJsonb, "'{}'"),
) -> Option<Vec<u8>> {
    // Not STRICT (ids and vals may be NULL): the skeleton is checked here.
    let skeleton = required(skeleton, "skeleton");
    let sk = Skeleton::from_bytes(skeleton).or_raise();
    let style = ChoroplethStyle::from_json(&style.0).or_raise();
    let (ids, vals) = (ids.unwrap_or_default(), vals.unwrap_or_default());
    if ids.len() != vals.len() {
        super::raise(CoreError::out_of_range(
            "ids and vals",
            format!(
                "must have the same length, got {} and {}",
                ids.len(),
                vals.len()
            ),
        ));
    }
    let values: HashMap<u32, f64> = ids
        .into_iter()
        .zip(vals)
        .filter_map(|(i, v)| Some((u32::try_from(i?).ok()?, v.filter(|v| v.is_finite())?)))
        .collect();
    recolor(&sk, style.colorer(&values)).or_raise()
}

/// Distinct IDs (or feature-bit masks) in a skeleton, and their pixel counts.
#[pg_extern(immutable, strict, parallel_safe, requires = ["skeleton_tables"])]
fn skeleton_ids(skeleton: &[u8]) -> TableIterator<'static, (name!(id, i64), name!(pixels, i64))> {
    let sk = Skeleton::from_bytes(skeleton).or_raise();
    let mut counts: HashMap<u32, i64> = HashMap::new();
    for &c in &sk.cells {
        if c != 0 {
            *counts.entry(c).or_default() += 1;
        }
    }
    let mut rows: Vec<(i64, i64)> = counts.into_iter().map(|(id, n)| (id as i64, n)).collect();
    rows.sort_unstable();
    TableIterator::new(rows)
}

//! SQL family: choropleth tiles through skeletons.
//!
//! Polygons are stored as `vcspolygon` (imported from GeoJSON, TopoJSON or WKB). A skeleton
//! layer names a table of (id, polygon); `skeleton_tile` rasterises a tile of it into IDs once and
//! caches it in `vasttile.skeleton_cache` (a miss renders and saves, a hit reads; writes to the
//! layer's table empty its cache); `skeleton_render` recolours a skeleton with values from any
//! SQL and a colour mapping.

use super::{quoted_relation_name, sql_error, OrRaise};
use crate::core::choropleth::ChoroplethStyle;
use crate::core::error::CoreError;
use crate::core::polygon::MultiPolygon;
use crate::core::skeleton::{recolor, Skeleton};
use crate::core::vcs::{Tile, TileSize};
use pgrx::prelude::*;
use pgrx::spi;
use std::collections::HashMap;

pgrx::extension_sql!(
    r#"
CREATE DOMAIN vcspolygon AS bytea;
COMMENT ON DOMAIN vcspolygon IS 'vasttile polygon: rings of VCS points (multipolygon with holes)';

CREATE TABLE skeleton_layers (
    name           text PRIMARY KEY,
    source         regclass NOT NULL,
    id_column      text NOT NULL,
    polygon_column text NOT NULL,
    feature_bits   boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE skeleton_layers IS 'vasttile skeleton layers: tables of (id, vcspolygon) rasterised into cached ID tiles';

CREATE TABLE skeleton_cache (
    layer    text NOT NULL REFERENCES skeleton_layers (name) ON DELETE CASCADE,
    z        int4 NOT NULL,
    x        int4 NOT NULL,
    y        int4 NOT NULL,
    size     int4 NOT NULL,
    skeleton bytea NOT NULL,
    PRIMARY KEY (layer, z, x, y, size)
);
COMMENT ON TABLE skeleton_cache IS 'vasttile: rasterised skeleton tiles; rebuilt on demand, emptied when a layer''s table changes';
SELECT pg_catalog.pg_extension_config_dump('skeleton_layers', '');

-- Statement trigger on a layer's table: any change empties the layer's cache.
CREATE FUNCTION skeleton_invalidate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM @extschema@.skeleton_cache WHERE layer = TG_ARGV[0];
    RETURN NULL;
END $$;
"#,
    name = "skeleton_tables",
);

super::bytea_domain!(
    /// A `vcspolygon` argument or result (bytes of a `MultiPolygon`).
    PolygonBytes,
    "vcspolygon"
);

/// A polygon from a GeoJSON Polygon or MultiPolygon (or a Feature of one), in lon/lat degrees.
#[pg_extern(immutable, strict, parallel_safe, requires = ["skeleton_tables"])]
fn polygon_from_geojson(geojson: pgrx::JsonB) -> PolygonBytes {
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
    tbl: pgrx::PgRelation,
    id_column: default!(&str, "'id'"),
    polygon_column: default!(&str, "'polygon'"),
    feature_bits: default!(bool, false),
) -> String {
    let table = quoted_relation_name(&tbl);
    let trigger = spi::quote_identifier(format!("vasttile_skeleton_{name}"));
    Spi::run_with_args(
        "INSERT INTO vasttile.skeleton_layers (name, source, id_column, polygon_column, feature_bits) \
         VALUES ($1, $2::regclass, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET source = excluded.source, id_column = excluded.id_column, \
         polygon_column = excluded.polygon_column, feature_bits = excluded.feature_bits",
        &[name.into(), table.as_str().into(), id_column.into(), polygon_column.into(), feature_bits.into()],
    )
    .unwrap_or_else(|e| sql_error(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("create_skeleton_layer: {e}")));
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2)",
        &[table.as_str().into(), format!("vasttile_skeleton_{name}").into()],
    )
    .unwrap_or(Some(false))
    .unwrap_or(false);
    let drop = if exists {
        format!("DROP TRIGGER {trigger} ON {table};")
    } else {
        String::new()
    };
    Spi::run(&format!(
        "DELETE FROM vasttile.skeleton_cache WHERE layer = {lit}; \
         {drop} \
         CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
         FOR EACH STATEMENT EXECUTE FUNCTION vasttile.skeleton_invalidate({lit})",
        lit = spi::quote_literal(name),
    ))
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("create_skeleton_layer: {e}"),
        )
    });
    name.to_string()
}

/// Rasterise tile (z, x, y) of a layer from its table.
fn render_skeleton(layer: &str, tile: Tile, size: TileSize) -> Skeleton {
    let row = Spi::get_three_with_args::<String, String, String>(
        "SELECT source::text, id_column, polygon_column FROM vasttile.skeleton_layers WHERE name = $1",
        &[layer.into()],
    );
    let (Ok((Some(table), Some(id), Some(poly))), Ok(bits)) = (
        row,
        Spi::get_one_with_args::<bool>(
            "SELECT feature_bits FROM vasttile.skeleton_layers WHERE name = $1",
            &[layer.into()],
        ),
    ) else {
        sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("skeleton layer \"{layer}\" does not exist"),
        );
    };
    let bits = bits.unwrap_or(false);
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
            let (Some(id), Some(bytes)) = (row.get::<i64>(1)?, row.get::<Vec<u8>>(2)?) else {
                continue;
            };
            let mp = MultiPolygon::from_bytes(&bytes).or_raise();
            let Some((a, b, c, d)) = mp.bbox() else {
                continue;
            };
            if (c as i64) < x0 || (a as i64) >= x1 || (d as i64) < y0 || (b as i64) >= y1 {
                continue;
            }
            if bits {
                sk.fill_bit(u32::try_from(id).unwrap_or(99), &mp).or_raise();
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
                sk.fill(id, &mp);
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
    let args = || [layer.into(), z.into(), x.into(), y.into(), tile_size.into()];
    let cached = Spi::get_one_with_args::<Vec<u8>>(
        "SELECT skeleton FROM vasttile.skeleton_cache WHERE layer = $1 AND z = $2 AND x = $3 AND y = $4 AND size = $5",
        &args(),
    );
    if let Ok(Some(bytes)) = cached {
        return bytes;
    }
    let bytes = render_skeleton(layer, tile, size).to_bytes();
    let [a, b, c, d, e] = args();
    let insert = [a, b, c, d, e, bytes.as_slice().into()];
    Spi::run_with_args(
        "INSERT INTO vasttile.skeleton_cache (layer, z, x, y, size, skeleton) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT DO NOTHING",
        &insert,
    )
    .unwrap_or_else(|e| sql_error(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("skeleton_tile: {e}")));
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
    let boxes: Vec<(i64, i64, i64, i64)> = Spi::connect(|client| -> spi::SpiResult<Vec<_>> {
        let (table, poly) = Spi::get_two_with_args::<String, String>(
            "SELECT source::text, polygon_column FROM vasttile.skeleton_layers WHERE name = $1",
            &[layer.into()],
        )?;
        let (Some(table), Some(poly)) = (table, poly) else { return Ok(Vec::new()) };
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
        let mut tiles: Vec<(i64, i64)> = Vec::new();
        for &(a, b, c, d) in &boxes {
            let s = 31 - z;
            for ty in (b >> s)..=(d >> s) {
                for tx in (a >> s)..=(c >> s) {
                    tiles.push((tx, ty));
                }
            }
        }
        tiles.sort_unstable();
        tiles.dedup();
        for (tx, ty) in tiles {
            pgrx::check_for_interrupts!();
            skeleton_tile(layer, z, tx as i32, ty as i32, tile_size);
            rendered += 1;
        }
    }
    rendered
}

/// Recolour a skeleton: `ids` and `vals` map polygon IDs to values (from any SQL, e.g. a join
/// with an attribute table), `style` maps values to colours. NULL when nothing shows.
#[pg_extern(immutable, parallel_safe, requires = ["skeleton_tables"])]
fn skeleton_render(
    skeleton: &[u8],
    ids: default!(Option<Vec<Option<i64>>>, "NULL"),
    vals: default!(Option<Vec<Option<f64>>>, "NULL"),
    style: default!(pgrx::JsonB, "'{}'"),
) -> Option<Vec<u8>> {
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

/// Publish a choropleth layer for tile servers: `schema.name(z, x, y, query_params json)`
/// recolours the skeleton layer `layer` with the (id, value) rows of `values_sql` (any query
/// returning two columns) and `style` with the request's query parameters laid over it
/// (`size` picks 256- or 512-px tiles). `VOLATILE`, since a miss fills the skeleton cache; the
/// JSON comment tells Martin it serves `image/png`.
#[pg_extern(volatile, parallel_unsafe, requires = ["skeleton_tables"])]
fn create_choropleth_layer(
    name: &str,
    layer: &str,
    values_sql: &str,
    style: default!(pgrx::JsonB, "'{}'"),
    schema: default!(&str, "'public'"),
) -> String {
    let mut probe = style.0.clone();
    if let Some(obj) = probe.as_object_mut() {
        obj.remove("size");
    }
    ChoroplethStyle::from_json(&probe).or_raise();
    let function = spi::quote_qualified_identifier(schema, name);
    let lit = |s: &str| spi::quote_literal(s);
    let body = format!(
        "WITH s AS (SELECT {style}::jsonb || coalesce(query_params::jsonb, '{{}}') AS style) \
         SELECT vasttile.skeleton_render(\
           vasttile.skeleton_tile({layer}, z, x, y, coalesce((s.style ->> 'size')::int4, 256)), \
           (SELECT array_agg(v.id::int8) FROM ({values_sql}) AS v(id, value)), \
           (SELECT array_agg(v.value::float8) FROM ({values_sql}) AS v(id, value)), \
           s.style - 'size') FROM s",
        style = lit(&style.0.to_string()),
        layer = lit(layer),
    );
    let comment = serde_json::json!({
        "content_type": "image/png",
        "description": format!("vasttile choropleth layer over skeleton layer {layer}"),
        "vasttile": {"kind": "choropleth", "style": style.0},
    });
    super::publish_layer_function(&function, &body, "VOLATILE", comment);
    function
}

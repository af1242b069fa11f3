//! SQL family: layers for tile servers and their legends.
//!
//! A layer is a function `schema.name(z int, x int, y int, query_params json DEFAULT '{}')
//! RETURNS bytea` whose comment is JSON naming `image/png`, the form Martin serves; the
//! request's query parameters restyle the tile. Every kind of layer is published here, through
//! one function that writes it and one expression that lays the request over the layer's style;
//! `legend` draws the colours a layer's style paints.

use super::{
    check_name, quoted_relation_name, required, security, sql_error, OrRaise, OrSpiError, Relation,
    StyleJsonb,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi;
use serde_json::{json, Value};
use vasttile_core::error::CoreError;
use vasttile_core::raster::dots::DotStyle;
use vasttile_core::shading::choropleth::{self, ChoroplethStyle};
use vasttile_core::shading::legend::{choropleth_legend, heat_legend, swatch_legend};
use vasttile_core::shading::shade::HeatStyle;

/// The comment's `vasttile.kind` of each layer function, and what `legend` takes.
const KINDS: [&str; 5] = ["heat", "heat_pyramid", "access", "choropleth", "dots"];

/// The SQL of a layer's style with the request's query parameters laid over it. The parameter
/// `v` is not style: clients put the layer's version there (`?v=...`), so that caches keyed by
/// URL, Martin's among them, never serve a tile of an older version.
fn merged_style(style: &Value) -> String {
    format!(
        "{}::jsonb || (coalesce(query_params::jsonb, '{{}}') - 'v')",
        spi::quote_literal(style.to_string())
    )
}

/// Create (or replace) a layer function `function(z, x, y, query_params json)` returning PNG
/// bytes through the SQL `body`, with the JSON comment by which Martin serves it as image/png.
/// `labels` is its volatility and parallel safety, e.g. "STABLE PARALLEL SAFE".
pub fn publish_layer_function(
    function: &str,
    body: &str,
    labels: &str,
    comment: serde_json::Value,
) {
    // PL/pgSQL rather than SQL: Citus cannot plan a SQL function with parameters that reads a
    // distributed table (a choropleth's values query may). Columns win over the parameters' names,
    // as they do in a SQL function. One statement per call.
    let body = format!("#variable_conflict use_column\nBEGIN\n  RETURN ({body});\nEND");
    for sql in [
        format!(
            "CREATE OR REPLACE FUNCTION {function}(z integer, x integer, y integer, query_params json DEFAULT '{{}}') \
             RETURNS bytea LANGUAGE plpgsql {labels} AS {body}",
            body = spi::quote_literal(&body),
        ),
        format!(
            "COMMENT ON FUNCTION {function}(integer, integer, integer, json) IS {comment}",
            comment = spi::quote_literal(comment.to_string()),
        ),
    ] {
        Spi::run(&sql).unwrap_or_else(|e| {
            sql_error(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("creating layer {function}: {e}"),
            )
        });
    }
    // Tile servers read the layers' versions again (a replaced layer draws other tiles).
    super::versions::notify();
}

/// Publish a layer drawing `tile_function(tbl, z, x, y, style, key_column)` over a table: the
/// function body is made of quoted literals only (no text is replaced in SQL).
fn publish_table_layer(
    name: &str,
    tbl: &pgrx::PgRelation,
    (kind, tile_function, what): (&str, &str, &str),
    style: &Value,
    key_column: &str,
    schema: &str,
) -> String {
    let name = check_name(name, "name");
    let key_column = check_name(key_column, "key_column");
    let schema = check_name(schema, "schema");
    let table = quoted_relation_name(tbl);
    let body = format!(
        "SELECT vasttile.{tile_function}({}::regclass, z, x, y, {}, {})",
        spi::quote_literal(&table),
        merged_style(style),
        spi::quote_literal(key_column)
    );
    let function = spi::quote_qualified_identifier(schema, name);
    let comment = json!({
        "content_type": "image/png",
        "description": format!("vasttile {what} layer over {table}"),
        "vasttile": {"kind": kind, "style": style, "table": table},
    });
    publish_layer_function(&function, &body, "STABLE PARALLEL SAFE", comment);
    super::versions::track_table(tbl.oid());
    function
}

/// Publish a point layer: `dot_tile` over `tbl` with `style` and the request's parameters.
#[pg_extern(volatile, parallel_unsafe)]
fn create_dot_layer(
    name: &str,
    tbl: Relation,
    style: default!(StyleJsonb, "'{}'"),
    key_column: default!(&str, "'vcs_key'"),
    schema: default!(&str, "'public'"),
) -> String {
    DotStyle::from_json(&style.0).or_raise();
    let kind = ("dots", "dot_tile", "point");
    publish_table_layer(name, &tbl, kind, &style.0, key_column, schema)
}

/// Publish an accessibility layer: `access_tile` over `tbl` (points of interest).
#[pg_extern(volatile, parallel_unsafe)]
fn create_access_layer(
    name: &str,
    tbl: Relation,
    style: default!(StyleJsonb, "'{}'"),
    key_column: default!(&str, "'vcs_key'"),
    schema: default!(&str, "'public'"),
) -> String {
    vasttile_core::raster::access::read_tile_style(&style.0).or_raise();
    let kind = ("access", "access_tile", "accessibility");
    publish_table_layer(name, &tbl, kind, &style.0, key_column, schema)
}

/// Only the keys a style family knows (a layer's style also holds keys such as `size`).
fn keep(style: &Value, keys: &[&str]) -> Value {
    match style {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A legend for a layer kind and style: a `width` x `height` PNG bar of the colours its tiles
/// use, from no heat (left) to the most (right) for heat, one swatch per class for choropleths.
#[pg_extern(immutable, parallel_safe)]
fn legend(
    kind: &str,
    style: default!(StyleJsonb, "'{}'"),
    width: default!(i32, 256),
    height: default!(i32, 12),
) -> Vec<u8> {
    let png = match kind {
        "heat" | "heat_pyramid" | "access" => {
            let defaults = if kind == "access" {
                HeatStyle::accessibility_defaults()
            } else {
                HeatStyle::heat_defaults()
            };
            let s = HeatStyle::from_json(&keep(&style.0, &HeatStyle::KEYS), defaults).or_raise();
            heat_legend(&s, width, height)
        }
        "choropleth" => {
            let s = ChoroplethStyle::from_json(&keep(&style.0, &choropleth::KEYS)).or_raise();
            choropleth_legend(&s, width, height)
        }
        "dots" => {
            let s = DotStyle::from_json(&keep(&style.0, &DotStyle::KEYS)).or_raise();
            swatch_legend(s.color, width, height)
        }
        other => Err(CoreError::out_of_range(
            "layer kind",
            format!("must be one of {}, got \"{other}\"", KINDS.join(", ")),
        )),
    };
    png.or_raise()
}

/// Publish a heat layer: create `schema.name(z int, x int, y int, query_params json DEFAULT '{}')
/// RETURNS bytea`, `STABLE PARALLEL SAFE`, drawing `heat_tile` over `tbl` with `style` and the
/// request's query parameters on top (so `?colormap=viridis` works), and a JSON comment that
/// tells Martin it serves `image/png`. Returns the function's name.
#[pg_extern(volatile, parallel_unsafe)]
fn create_heat_layer(
    name: Option<&str>,
    tbl: Relation,
    style: default!(StyleJsonb, "'{}'"),
    key_column: default!(Option<&str>, "'vcs_key'"),
    weight_column: default!(Option<&str>, "NULL"),
    schema: default!(Option<&str>, "'public'"),
) -> String {
    // Not STRICT (weight_column may be NULL): the other arguments are checked here.
    let name = check_name(required(name, "name"), "name");
    let key_column = check_name(required(key_column, "key_column"), "key_column");
    let weight_column = weight_column.map(|w| check_name(w, "weight_column"));
    let schema = check_name(required(schema, "schema"), "schema");
    // Check the style now rather than on the first request.
    HeatStyle::read_tile(&style.0, HeatStyle::heat_defaults(), &[], |_| Ok(())).or_raise();
    let function = spi::quote_qualified_identifier(schema, name);
    let literal = |s: &str| spi::quote_literal(s);
    let weight = weight_column.map_or("NULL".to_string(), literal);
    let body = format!(
        "SELECT vasttile.heat_tile({table}::regclass, z, x, y, {style}, {key}, {weight})",
        table = literal(&quoted_relation_name(&tbl)),
        style = merged_style(&style.0),
        key = literal(key_column),
    );
    let comment = serde_json::json!({
        "content_type": "image/png",
        "description": format!("vasttile heat layer over {}", quoted_relation_name(&tbl)),
        "vasttile": {"kind": "heat", "style": style.0, "table": quoted_relation_name(&tbl)},
    });
    publish_layer_function(&function, &body, "STABLE PARALLEL SAFE", comment);
    super::versions::track_table(tbl.oid());
    function
}

/// Publish a pyramid as a tile-server layer: `schema.name(z, x, y, query_params json)` calling
/// `heat_pyramid_tile` with `style` and the request's query parameters on top.
#[pg_extern(volatile, parallel_unsafe, requires = ["pyramid_tables"])]
fn create_pyramid_layer(
    name: &str,
    pyramid: &str,
    style: default!(StyleJsonb, "'{}'"),
    schema: default!(&str, "'public'"),
) -> String {
    let name = check_name(name, "name");
    let schema = check_name(schema, "schema");
    HeatStyle::read_tile(&style.0, HeatStyle::heat_defaults(), &[], |_| Ok(())).or_raise();
    let (source, base_zoom) = super::pyramid::layer_facts(pyramid);
    let function = spi::quote_qualified_identifier(schema, name);
    let body = format!(
        "SELECT vasttile.heat_pyramid_tile({pyr}, z, x, y, {style})",
        pyr = spi::quote_literal(pyramid),
        style = merged_style(&style.0),
    );
    let comment = json!({
        "content_type": "image/png",
        "description": format!("vasttile heat pyramid {pyramid} over {}", source),
        "vasttile": {"kind": "heat_pyramid", "pyramid": pyramid, "base_zoom": base_zoom, "style": style.0},
    });
    publish_layer_function(&function, &body, "STABLE PARALLEL SAFE", comment);
    function
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
    style: default!(StyleJsonb, "'{}'"),
    schema: default!(&str, "'public'"),
) -> String {
    let name = check_name(name, "name");
    let schema = check_name(schema, "schema");
    let mut probe = style.0.clone();
    if let Some(obj) = probe.as_object_mut() {
        obj.remove("size");
    }
    ChoroplethStyle::from_json(&probe).or_raise();
    let function = spi::quote_qualified_identifier(schema, name);
    let lit = |s: &str| spi::quote_literal(s);
    // Ids and values come from one pass over the query, so the two arrays stay aligned (two
    // scans of a table may return rows in different orders: synchronised scans, Citus shards).
    let body = format!(
        "WITH s AS (SELECT {style} AS style), \
         v AS (SELECT array_agg(v.id::int8) AS ids, array_agg(v.value::float8) AS vals FROM ({values_sql}
) AS v(id, value)) \
         SELECT vasttile.skeleton_render(\
           vasttile.skeleton_tile({layer}, z, x, y, coalesce((s.style ->> 'size')::int4, 256)), \
           v.ids, v.vals, s.style - 'size') FROM s, v",
        style = merged_style(&style.0),
        layer = lit(layer),
    );
    let comment = serde_json::json!({
        "content_type": "image/png",
        "description": format!("vasttile choropleth layer over skeleton layer {layer}"),
        "vasttile": {"kind": "choropleth", "style": style.0},
    });
    publish_layer_function(&function, &body, "VOLATILE", comment);
    function
}

/// The version of layer `schema.name` (a function made by a `create_*_layer` function): the
/// version of the table or pyramid it draws, NULL for layers that are drawn every time
/// (choropleths, whose values come from any query; tables not versioned; layers made before
/// versions, whose comment does not name their table).
#[pg_extern(stable, parallel_safe, requires = ["version_tables", "pyramid_tables"])]
fn layer_version(name: Option<&str>, schema: default!(Option<&str>, "'public'")) -> Option<i64> {
    let name = check_name(super::required(name, "name"), "name");
    let schema = check_name(super::required(schema, "schema"), "schema");
    let function = format!(
        "{}(integer, integer, integer, json)",
        spi::quote_qualified_identifier(schema, name)
    );
    // The function's comment says what it draws; its body is part of the version (a layer
    // made again with another style draws other tiles).
    let found = security::with_fixed_search_path(|| {
        Spi::get_two_with_args::<String, i64>(
            "SELECT coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), ''), \
                    pg_catalog.hashtextextended(p.prosrc, 0) \
             FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure($1)",
            &[function.as_str().into()],
        )
    });
    let (comment, body) = match found {
        Ok((Some(c), Some(b))) => (c, b),
        Err(spi::SpiError::InvalidPosition) | Ok(_) => sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
            format!("layer {function} does not exist"),
        ),
        Err(e) => sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("reading layer {function}: {e}"),
        ),
    };
    let meta: Value = serde_json::from_str(&comment).unwrap_or(Value::Null);
    let data = data_version(&meta["vasttile"])?;
    Some(super::versions::mix(&[data, body]))
}

/// The version of what a layer's comment (`vasttile` part) says it draws.
fn data_version(vt: &Value) -> Option<i64> {
    match vt["kind"].as_str() {
        Some("heat_pyramid") => super::pyramid::pyramid_version(vt["pyramid"].as_str()?),
        Some("heat" | "dots" | "access") => {
            let table = vt["table"].as_str()?;
            let rel = security::with_fixed_search_path(|| {
                Spi::get_one_with_args::<pg_sys::Oid>(
                    "SELECT pg_catalog.to_regclass($1)::oid",
                    &[table.into()],
                )
            })
            .or_spi_error("reading the layer's table")?;
            let version = super::versions::table_version_of(rel)?;
            if vt["kind"] != "heat" {
                return Some(version);
            }
            // heat_tile serves the zooms of a points pyramid over the table from it.
            let pyramids = super::pyramid::built_versions(rel);
            Some(super::versions::mix(&[&[version][..], &pyramids].concat()))
        }
        _ => None,
    }
}

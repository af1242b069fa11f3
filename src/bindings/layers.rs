//! SQL family: layers for tile servers and their legends.
//!
//! A layer is a function `schema.name(z int, x int, y int, query_params json DEFAULT '{}')
//! RETURNS bytea` whose comment is JSON naming `image/png`, the form pg_tileserv and Martin
//! discover; the request's query parameters restyle the tile. `create_heat_layer`,
//! `create_choropleth_layer` and `create_pyramid_layer` live with their families; point and
//! accessibility layers are here, with `legend`, which draws the colours a layer's style paints.

use super::{check_name, quoted_relation_name, OrRaise, Relation, StyleJsonb};
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

/// The SQL of a layer's style with the request's query parameters laid over it.
fn merged_style(style: &Value) -> String {
    format!(
        "{}::jsonb || coalesce(query_params::jsonb, '{{}}')",
        spi::quote_literal(style.to_string())
    )
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
        "vasttile": {"kind": kind, "style": style},
    });
    super::publish_layer_function(&function, &body, "STABLE PARALLEL SAFE", comment);
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

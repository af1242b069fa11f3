//! The layers of a database: functions `f(z integer, x integer, y integer, query_params json)
//! RETURNS bytea` whose comment is JSON with `"content_type": "image/png"`, the form vasttile's
//! `create_*_layer` functions write and pg_tileserv and Martin discover.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    /// The id in URLs: the function name, or schema.name when two schemas share a name.
    pub id: String,
    pub schema: String,
    pub function: String,
    pub description: String,
    /// vasttile's kind (heat, heat_pyramid, access, choropleth, dots) and layer style, when the
    /// comment names them: the legend and the page's pickers use them.
    pub kind: Option<String>,
    pub style: Value,
}

impl Layer {
    /// `SELECT "schema"."function"($1, $2, $3, $4)`, identifiers quoted.
    pub fn tile_sql(&self) -> String {
        format!(
            "SELECT {}.{}($1, $2, $3, $4::json)",
            quote_ident(&self.schema),
            quote_ident(&self.function)
        )
    }

    /// Whether 512-px tiles can be asked for (`size` in the query parameters).
    pub fn retina(&self) -> bool {
        matches!(
            self.kind.as_deref(),
            Some("heat" | "heat_pyramid" | "access" | "choropleth" | "dots")
        )
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub const DISCOVERY_SQL: &str = "
SELECT n.nspname::text, p.proname::text, coalesce(obj_description(p.oid, 'pg_proc'), '')
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prorettype = 'bytea'::regtype
  AND p.pronargs = 4
  AND p.proargtypes[0] = 'integer'::regtype AND p.proargtypes[1] = 'integer'::regtype
  AND p.proargtypes[2] = 'integer'::regtype AND p.proargtypes[3] = 'json'::regtype
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2";

/// Layers from the rows of `DISCOVERY_SQL` (schema, function, comment): only comments that are
/// JSON naming `image/png`.
pub fn layers_from_rows(rows: Vec<(String, String, String)>) -> BTreeMap<String, Layer> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, f, _) in &rows {
        *count.entry(f.clone()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (schema, function, comment) in rows {
        let Ok(meta) = serde_json::from_str::<Value>(&comment) else {
            continue;
        };
        if meta.get("content_type").and_then(Value::as_str) != Some("image/png") {
            continue;
        }
        let id = if count[&function] > 1 {
            format!("{schema}.{function}")
        } else {
            function.clone()
        };
        let vt = meta.get("vasttile").cloned().unwrap_or(Value::Null);
        let kind = vt.get("kind").and_then(Value::as_str).map(str::to_string);
        out.insert(
            id.clone(),
            Layer {
                id,
                schema,
                function,
                description: meta
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                kind,
                style: vt
                    .get("style")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_png_layers_and_ids_unique() {
        let rows = vec![
            ("public".into(), "heat".into(), r#"{"content_type": "image/png", "vasttile": {"kind": "heat", "style": {"colormap": "fire"}}}"#.into()),
            ("other".into(), "heat".into(), r#"{"content_type": "image/png"}"#.into()),
            ("public".into(), "mvt".into(), r#"{"content_type": "application/x-protobuf"}"#.into()),
            ("public".into(), "plain".into(), "not json".into()),
        ];
        let layers = layers_from_rows(rows);
        assert_eq!(
            layers.keys().collect::<Vec<_>>(),
            vec!["other.heat", "public.heat"]
        );
        assert_eq!(layers["public.heat"].kind.as_deref(), Some("heat"));
        assert_eq!(
            layers["public.heat"].tile_sql(),
            "SELECT \"public\".\"heat\"($1, $2, $3, $4::json)"
        );
    }
}

//! A heat pyramid's definition: its options, checked and stored, and how it reads a row.

use crate::bindings::security::{self};
use crate::bindings::OrSpiError;
use crate::bindings::{sql_error, OrRaise};
use pgrx::prelude::*;
use pgrx::spi;
use serde_json::{json, Value};
use vasttile_core::error::{CoreError, CoreResult};
use vasttile_core::geometry::activity::ActivityFilters;
use vasttile_core::geometry::vcs::TileSize;
use vasttile_core::pyramid::build::Normalisation;
use vasttile_core::style::StyleReader;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Geometry {
    Points,
    Paths,
    Activities,
}

pub(super) struct Pyramid {
    pub(super) name: String,
    /// The source table, quoted, and its OID.
    pub(super) source: String,
    pub(super) source_oid: pgrx::pg_sys::Oid,
    /// The role that created the pyramid.
    pub(super) owner: pgrx::pg_sys::Oid,
    pub(super) geometry: Geometry,
    pub(super) column: String,
    /// Columns read per row, in the order of `heat_pyramid_log`'s from `id` on, made from the
    /// options by `vasttile.heat_pyramid_select_list` (every identifier quoted).
    pub(super) select_list: String,
    pub(super) filters: Option<ActivityFilters>,
    pub(super) base_zoom: u32,
    pub(super) size: TileSize,
    pub(super) norm: Normalisation,
    /// Base tiles drawn by one aggregate query, in PostgreSQL's parallel workers, as over a
    /// distributed table (option `build`: `"parallel_query"`), not streamed to vasttile's threads.
    pub(super) parallel_query: bool,
    pub(super) options: Value,
}

impl Pyramid {
    /// Read and check the options, filling in every default (stored that way, so a pyramid's
    /// definition is explicit).
    pub(super) fn from_options(name: &str, source: &str, options: &Value) -> CoreResult<Pyramid> {
        Self::read_options(name, source, options).map_err(|e| match e {
            CoreError::Style { key, detail } if !key.is_empty() => {
                CoreError::out_of_range("pyramid option", format!("\"{key}\": {detail}"))
            }
            other => other,
        })
    }

    pub(super) fn read_options(name: &str, source: &str, options: &Value) -> CoreResult<Pyramid> {
        let mut r = StyleReader::new(options)?;
        let text = |r: &mut StyleReader, key: &'static str, default: &str| -> CoreResult<String> {
            match r.take(key) {
                None => Ok(default.to_string()),
                Some(Value::String(s)) if !s.is_empty() => Ok(s),
                Some(v) => Err(CoreError::style(
                    key,
                    format!("must be a column name, got {v}"),
                )),
            }
        };
        let geometry = match text(&mut r, "geometry", "points")?.as_str() {
            "points" => Geometry::Points,
            "paths" => Geometry::Paths,
            "activities" => Geometry::Activities,
            other => {
                return Err(CoreError::style(
                    "geometry",
                    format!("must be \"points\", \"paths\" or \"activities\", got \"{other}\""),
                ))
            }
        };
        let default_column = if geometry == Geometry::Points {
            "vcs_key"
        } else {
            "path"
        };
        let column = text(&mut r, "column", default_column)?;
        let weight = match r.take("weight_column") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if geometry != Geometry::Activities && !s.is_empty() => Some(s),
            Some(v) => {
                return Err(CoreError::style(
                    "weight_column",
                    format!("must be a column name of a points or paths table, got {v}"),
                ))
            }
        };
        let mut names = json!({});
        let filters = match geometry {
            Geometry::Points | Geometry::Paths => None,
            Geometry::Activities => {
                for (key, default) in [
                    ("id_column", "id"),
                    ("times_column", "times"),
                    ("kind_column", "kind"),
                    ("virtual_column", "is_virtual"),
                    ("private_column", "is_private"),
                ] {
                    names[key] = json!(text(&mut r, key, default)?);
                }
                Some(ActivityFilters::from_json(
                    &r.take("filters").unwrap_or(json!({})),
                )?)
            }
        };
        let base_zoom = r.number("base_zoom", 14.0, 0.0, 22.0)? as u32;
        let size = r.tile_size("tile_size")?;
        if size == TileSize::Px512 && base_zoom > 21 {
            return Err(CoreError::style(
                "base_zoom",
                "must be at most 21 for 512-px tiles",
            ));
        }
        let parallel_query = match r.take("build") {
            None => false,
            Some(Value::String(s)) if s == "streaming" => false,
            Some(Value::String(s)) if s == "parallel_query" => true,
            Some(other) => {
                return Err(CoreError::style(
                    "build",
                    format!("must be \"streaming\" or \"parallel_query\", got {other}"),
                ))
            }
        };
        let norm = Normalisation {
            radius: r.number("radius", 5.0, 0.0, 20.0)? as u32,
            low_heat: r.number("low_heat", 4.0, 0.0, 1e12)?,
            ..Normalisation::default()
        };
        r.finish(&[
            "geometry",
            "column",
            "weight_column",
            "id_column",
            "times_column",
            "kind_column",
            "virtual_column",
            "private_column",
            "filters",
            "base_zoom",
            "tile_size",
            "radius",
            "low_heat",
            "build",
        ])?;
        let geometry_name = ["points", "paths", "activities"][geometry as usize];
        let mut options = json!({
            "geometry": geometry_name,
            "column": column,
            "base_zoom": base_zoom,
            "tile_size": size.px(),
            "radius": norm.radius,
            "low_heat": norm.low_heat,
            "build": if parallel_query { "parallel_query" } else { "streaming" },
        });
        if let Some(w) = weight {
            options["weight_column"] = json!(w);
        }
        if let (Some(f), Value::Object(m)) = (&filters, names) {
            for (k, v) in m {
                options[k] = v;
            }
            options["filters"] = filters_json(f);
        }
        Ok(Pyramid {
            name: name.to_string(),
            source: source.to_string(),
            source_oid: pgrx::pg_sys::Oid::INVALID,
            owner: pgrx::pg_sys::Oid::INVALID,
            geometry,
            column: options["column"].as_str().unwrap_or_default().to_string(),
            select_list: String::new(),
            filters,
            base_zoom,
            size,
            norm,
            parallel_query,
            options,
        })
    }

    /// A pyramid's definition from the catalog (read as the extension's owner: the caller's
    /// rights are checked by each use).
    pub(super) fn load(name: &str) -> Pyramid {
        let row = security::as_catalog_owner(|| {
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT p.source::oid, p.owner::oid, p.options, \
                            vasttile.heat_pyramid_select_list(p.options), \
                            (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
                             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p.source) \
                     FROM vasttile.heat_pyramids p WHERE p.name = $1",
                    Some(1),
                    &[name.into()],
                )?;
                let Some(row) = rows.into_iter().next() else {
                    return Ok(None);
                };
                Ok::<_, spi::SpiError>(Some((
                    row.get::<pgrx::pg_sys::Oid>(1)?,
                    row.get::<pgrx::pg_sys::Oid>(2)?,
                    row.get::<pgrx::JsonB>(3)?,
                    row.get::<String>(4)?,
                    row.get::<String>(5)?,
                )))
            })
            .or_spi_error("reading the heat pyramid")
        });
        match row {
            Some((Some(oid), Some(owner), Some(options), Some(list), source)) => {
                let Some(source) = source else {
                    sql_error(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                        format!("the table of heat pyramid \"{name}\" no longer exists"),
                    )
                };
                let mut p = Pyramid::from_options(name, &source, &options.0).or_raise();
                p.source_oid = oid;
                p.owner = owner;
                p.select_list = list;
                p
            }
            _ => sql_error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("heat pyramid \"{name}\" does not exist"),
            ),
        }
    }
}

pub(super) fn filters_json(f: &ActivityFilters) -> Value {
    json!({
        "exclude_flagged": f.exclude_virtual,
        "speed_limits": f.speed_limits,
        "stops": f.stops.map_or(json!(false), |s| json!({"window_s": s.window_s, "speed": s.speed, "radius_m": s.radius_m})),
        "offset_m": f.offset_m,
        "seed": f.seed,
    })
}

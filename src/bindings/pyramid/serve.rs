//! Serving: a stored tile's levels coloured by the request's style, or a tile deeper than the
//! base zoom drawn on the fly from the table.

use super::definition::*;
use super::store::*;
use crate::bindings::security::{self, Access};
use crate::bindings::OrSpiError;
use crate::bindings::{sql_error, Bytes, OrRaise};
use pgrx::prelude::*;
use pgrx::spi;
use vasttile_core::encoding::png::Effort;
use vasttile_core::geometry::vcs::{Tile, TileSize};
use vasttile_core::pyramid::levels::StoredLevels;
use vasttile_core::raster::heat::HeatGrid;
use vasttile_core::shading::shade::{encode_levels, shade, HeatStyle, Normalize};

/// The pyramid over a points table that `heat_tile` can serve from: same key and weight
/// columns, same tile size, built, and reaching zoom `z`.
pub(crate) fn points_pyramid_for(
    table: pgrx::pg_sys::Oid,
    key_column: &str,
    weight_column: Option<&str>,
    size: TileSize,
    z: u32,
) -> Option<String> {
    let sql = "SELECT name FROM vasttile.heat_pyramids WHERE source = $1 \
               AND options->>'geometry' = 'points' AND options->>'column' = $2 \
               AND (options->>'weight_column') IS NOT DISTINCT FROM $3 \
               AND tile_size = $4 AND base_zoom >= $5 AND built_at IS NOT NULL \
               ORDER BY name LIMIT 1";
    // Stored tiles hold every row: only a caller who may read them all is served from them.
    if security::source_access(table) != Access::Full {
        return None;
    }
    security::as_catalog_owner(|| {
        Spi::connect(|client| {
            use pgrx::PgBuiltInOids as T;
            let types = [T::OIDOID, T::TEXTOID, T::TEXTOID, T::INT4OID, T::INT4OID];
            let args: [pgrx::datum::DatumWithOid<'_>; 5] = [
                table.into(),
                key_column.into(),
                weight_column.into(),
                (size.px() as i32).into(),
                (z as i32).into(),
            ];
            crate::bindings::with_saved_plan(
                client,
                pgrx::pg_sys::Oid::INVALID,
                sql.to_string(),
                &types,
                |plan| match client
                    .select(plan, Some(1), &args)?
                    .first()
                    .get_one::<String>()
                {
                    Err(spi::SpiError::InvalidPosition) => Ok(None),
                    other => other,
                },
            )
        })
    })
    .or_spi_error("looking up heat pyramids")
}

/// One stored tile of a pyramid: the pyramid's base zoom, tile size and table, and the tile's
/// levels (`stored`: one byte per pixel, made from the stored form) or counts, when it has any
/// heat. Read as the extension's owner: the caller checks access to the table before using the
/// bytes.
pub(super) fn stored_tile(
    name: &str,
    tile: Tile,
    stored: bool,
) -> (u32, u32, pgrx::pg_sys::Oid, Option<Vec<u8>>) {
    let sql = "SELECT p.base_zoom, p.tile_size, p.source::oid, t.counts::bytea, t.levels \
               FROM vasttile.heat_pyramids p \
               LEFT JOIN vasttile.heat_pyramid_tiles t ON t.pyramid = p.name AND t.z = $2 AND t.x = $3 AND t.y = $4 \
               WHERE p.name = $1";
    let row = security::as_catalog_owner(|| {
        Spi::connect(|client| {
            use pgrx::PgBuiltInOids as T;
            let types = [T::TEXTOID, T::INT4OID, T::INT4OID, T::INT4OID];
            crate::bindings::with_saved_plan(
                client,
                pgrx::pg_sys::Oid::INVALID,
                sql.to_string(),
                &types,
                |plan| {
                    let rows = client.select(plan, Some(1), &tile_args(name, tile))?;
                    let Some(row) = rows.into_iter().next() else {
                        return Ok(None);
                    };
                    let side = row.get::<i32>(2)?;
                    // Levels are only read (detoasted) when asked for, and the counts only
                    // when the levels need them: plain levels are served without them.
                    let levels = if stored {
                        row.get::<Bytes>(5)?
                            .map(|b| StoredLevels::from_bytes(&b.0, side.unwrap_or(0) as usize))
                    } else {
                        None
                    };
                    let counts = match &levels {
                        Some(Ok(StoredLevels::Plain(_))) => None,
                        _ => row.get::<Bytes>(4)?.map(|b| b.0),
                    };
                    Ok(Some((
                        row.get::<i32>(1)?,
                        side,
                        row.get::<pgrx::pg_sys::Oid>(3)?,
                        counts,
                        levels,
                    )))
                },
            )
        })
    })
    .or_spi_error("heat_pyramid_tile");
    match row {
        Some((Some(base), Some(side), Some(source), counts, levels)) => {
            let bytes = if stored {
                levels.map(|l| levels_of(l.or_raise(), counts.as_deref(), side as usize))
            } else {
                counts
            };
            (base as u32, side as u32, source, bytes)
        }
        _ => sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("heat pyramid \"{name}\" does not exist"),
        ),
    }
}

/// A tile's levels, one byte per pixel, from its stored levels and (for a rank table) counts.
pub(super) fn levels_of(stored: StoredLevels, counts: Option<&[u8]>, side: usize) -> Vec<u8> {
    levels_with(stored, side, || {
        let Some(counts) = counts else {
            sql_error(
                PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                "a stored tile of a heat pyramid has levels without counts: rebuild it",
            );
        };
        HeatGrid::from_stored_bytes(counts).or_raise()
    })
}

/// A tile's levels from its stored levels, asking `grid` for its decoded counts only for a
/// rank table (plain levels need none).
pub(super) fn levels_with<G: std::borrow::Borrow<HeatGrid>>(
    stored: StoredLevels,
    side: usize,
    grid: impl FnOnce() -> G,
) -> Vec<u8> {
    if let StoredLevels::Plain(l) = stored {
        return l;
    }
    let grid = grid();
    if grid.borrow().side() as usize != side {
        sql_error(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            "a stored tile of a heat pyramid has the wrong size: rebuild it",
        );
    }
    stored.levels(grid.borrow()).or_raise()
}

/// Tile `tile` of pyramid `name` in `style` at `size`: stored levels up to the base zoom (or
/// the counts shaded, for normalisations other than eq_hist), drawn on the fly beyond. A 512-px
/// tile of a 256-px pyramid is its four children side by side (the same pixels).
pub(crate) fn pyramid_tile(
    name: &str,
    tile: Tile,
    style: &HeatStyle,
    size: TileSize,
) -> Option<Vec<u8>> {
    let stored = style.normalize == Normalize::EqHist;
    let (base, side, source, bytes) = stored_tile(name, tile, stored);
    let may_serve_stored = || {
        security::require_full_access(source, &format!("heat pyramid \"{name}\""));
    };
    let on_the_fly = || {
        let grid = draw_on_the_fly(&Pyramid::load(name), tile, size);
        shade(&grid, style).or_raise()
    };
    if size.px() == side {
        if tile.z > base {
            return on_the_fly();
        }
        may_serve_stored();
        let bytes = bytes?;
        if !stored {
            return shade(&HeatGrid::from_stored_bytes(&bytes).or_raise(), style).or_raise();
        }
        return encode_stored(&bytes, side, style);
    }
    if size.px() != 2 * side {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("heat pyramid \"{name}\" has {side}-px tiles: size must be {side}"),
        );
    }
    if tile.z >= base {
        return on_the_fly();
    }
    may_serve_stored();
    // Four children at z + 1, stitched row by row into one tile of twice the side.
    let half = side as usize;
    let full = 2 * half;
    let mut levels = vec![0u8; full * full];
    let mut values = vec![0.0f64; full * full];
    let mut rows = 0;
    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let child = Tile {
            z: tile.z + 1,
            x: 2 * tile.x + dx,
            y: 2 * tile.y + dy,
        };
        let Some(b) = stored_tile(name, child, stored).3 else {
            continue;
        };
        let (ox, oy) = (dx as usize * half, dy as usize * half);
        if stored {
            // Stored bytes are not trusted to have the pyramid's size.
            if b.len() != half * half {
                sql_error(
                    PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                    format!(
                        "a stored tile of heat pyramid \"{name}\" has the wrong size: rebuild it"
                    ),
                );
            }
            for (r, row) in b.chunks_exact(half).enumerate() {
                levels[(oy + r) * full + ox..][..half].copy_from_slice(row);
            }
        } else {
            let g = HeatGrid::from_stored_bytes(&b).or_raise();
            if g.values().len() != half * half {
                sql_error(
                    PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                    format!(
                        "a stored tile of heat pyramid \"{name}\" has the wrong size: rebuild it"
                    ),
                );
            }
            rows += g.rows;
            for (r, row) in g.values().chunks_exact(half).enumerate() {
                values[(oy + r) * full + ox..][..half].copy_from_slice(row);
            }
        }
    }
    if stored {
        encode_stored(&levels, full as u32, style)
    } else {
        let grid = HeatGrid::from_values(tile, size, rows, values).or_raise();
        shade(&grid, style).or_raise()
    }
}

/// Stored levels through the style's palette; `None` when nothing shows.
pub(super) fn encode_stored(levels: &[u8], side: u32, style: &HeatStyle) -> Option<Vec<u8>> {
    let palette = style.palette();
    if levels.iter().all(|&l| palette[l as usize][3] == 0) {
        return None;
    }
    Some(encode_levels(levels, side, &palette, Effort::Fast).or_raise())
}

/// Counts of a tile beyond the base zoom, from the rows that reach it (index scans: the key
/// range of points, the GiST box index of paths).
pub(super) fn draw_on_the_fly(p: &Pyramid, tile: Tile, size: TileSize) -> HeatGrid {
    check_columns(p.source_oid, &p.options, &p.source);
    let (x0, y0, x1, y1) = tile.vcs_bounds();
    let query = match p.geometry {
        Geometry::Points => {
            let (lo, hi) = tile.key_range();
            format!(
                "SELECT {list} FROM {src} t WHERE t.{c} >= {lo} AND t.{c} < {hi}",
                list = p.select_list,
                src = p.source,
                c = spi::quote_identifier(&p.column)
            )
        }
        _ => format!(
            "SELECT {list} FROM {src} t WHERE vasttile.path_box(t.{c}) && box(point({x0}, {y0}), point({}, {}))",
            x1 - 1,
            y1 - 1,
            list = p.select_list,
            src = p.source,
            c = spi::quote_identifier(&p.column)
        ),
    };
    let paths = read_paths(p, &query);
    let mut grid = HeatGrid::new(tile, size).or_raise();
    paths.draw_into(&mut grid).or_raise();
    grid
}

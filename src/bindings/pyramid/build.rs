//! Building and refreshing: every tile drawn from the table, or the logged changes drawn as
//! deltas, then levels renormalised where a changed CDF reaches.

use super::definition::*;
use super::store::*;
use crate::bindings::security::{self};
use crate::bindings::threads;
use crate::bindings::{OrRaise, OrSpiError};
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Instant;
use vasttile_core::pyramid::store::{apply_delta, normalise, tiles_to_renormalise, CountsWriter};
use vasttile_core::raster::heat::HeatGrid;

/// Rebuild every tile from the table in memory bounded by `maintenance_work_mem`, whatever the
/// table's size (`stream_counts`).
pub(super) fn build_all(p: &Pyramid) -> Value {
    let started = Instant::now();
    // Readers of the table run no code of a user-defined type's casts; and writers wait, as
    // for CREATE INDEX, so no change is both drawn and logged.
    check_columns(p.source_oid, &p.options, &p.source);
    Spi::run(&format!("LOCK TABLE {} IN SHARE MODE", p.source))
        .or_spi_error("locking the pyramid's table");
    for sql in [
        "DELETE FROM vasttile.heat_pyramid_tiles WHERE pyramid = $1",
        "DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $1",
    ] {
        security::as_catalog_owner(|| Spi::run_with_args(sql, &[p.name.as_str().into()]))
            .or_spi_error("clearing the pyramid");
    }
    let mut tiles_of: Vec<Vec<(u32, u32)>> = vec![Vec::new(); p.base_zoom as usize + 1];
    // The table is read as the caller.
    let rows_sql = format!(
        "SELECT {list}, 1::int2 FROM {src} t",
        list = p.select_list,
        src = p.source
    );
    let distributed = crate::bindings::citus::is_distributed(p.source_oid);
    // The changes logged on the nodes so far are in what this build reads: claimed, they are
    // dropped once it commits (the table is locked against writers since).
    let shard_claim = distributed.then(|| super::shards::claim_for_build(p));
    let mut workers_planned = 0;
    let mut spills = 0;
    let mut sorted = false;
    let mut writer = CountsWriter::new(threads());
    let stats = if distributed || p.parallel_query {
        // Drawn where the rows are, by Citus's workers or PostgreSQL's parallel workers: only
        // a partial grid per shard (or worker) and tile reaches this process.
        let rows = Spi::get_one::<i64>(&format!("SELECT count(*) FROM {} t", p.source))
            .or_spi_error("counting the pyramid's rows")
            .unwrap_or(0) as u64;
        let set = super::distributed::distributed_counts(p, !distributed, &mut |g| {
            tiles_of[g.tile.z as usize].push((g.tile.x, g.tile.y));
            writer.push(&mut SpiTiles(p), &p.norm, g)
        });
        workers_planned = set.workers_planned;
        let mut s = StreamStats::default();
        s.read.rows = rows;
        s.read.left_out = set.left_out;
        s.read.drawn = rows.saturating_sub(set.left_out);
        s.points = set.points;
        s.draw.base_tiles = set.base_tiles;
        s
    } else {
        let mut on_tile = |g: HeatGrid| {
            tiles_of[g.tile.z as usize].push((g.tile.x, g.tile.y));
            writer.push(&mut SpiTiles(p), &p.norm, g)
        };
        match spill_counts(p, &rows_sql, &mut on_tile) {
            Some((s, n)) => {
                spills = n;
                s
            }
            // Rows over very many tiles: their runs sorted by tile through PostgreSQL.
            None => {
                sorted = true;
                stream_counts(p, "", &rows_sql, Vec::new(), &mut |g, _| on_tile(g))
            }
        }
    };
    writer.flush(&mut SpiTiles(p), &p.norm).or_raise();
    let counts_s = started.elapsed().as_secs_f64();
    let mut tiles = 0;
    for (z, targets) in tiles_of.iter_mut().enumerate() {
        tiles += targets.len();
        normalise(&mut SpiTiles(p), &p.norm, z as u32, targets, threads()).or_raise();
    }
    let drawn = stats.draw;
    let report = json!({
        "rows": stats.read.rows,
        "drawn": stats.read.drawn,
        "left_out": stats.read.left_out,
        "points": stats.points,
        "tiles": tiles,
        "base_tiles": tiles_of[p.base_zoom as usize].len(),
        "threads": threads(),
        "parallel_workers_planned": workers_planned,
        "distributed": distributed,
        "build": if distributed { "distributed" } else { p.options["build"].as_str().unwrap_or("streaming") },
        "shard_claim": shard_claim,
        "memory_budget_bytes": memory_budget(),
        "spills": spills,
        "sorted_runs": sorted,
        "line_pixels": drawn.pixels,
        "line_pixels_per_core_second": drawn.pixels as f64 / drawn.draw_seconds.max(1e-9),
        "seconds": {
            "draw_cpu": drawn.draw_seconds,
            "read": stats.read_seconds,
            "counts": counts_s,
            "levels": started.elapsed().as_secs_f64() - counts_s,
            "total": started.elapsed().as_secs_f64(),
        },
    });
    record_build(p, &report, true);
    report
}

/// Apply the logged changes: redraw them as deltas into the base tiles they touch and their
/// ancestors, then renormalise every tile whose levels read a changed tile's CDF.
pub(super) fn refresh(p: &Pyramid) -> Value {
    let started = Instant::now();
    let (built, truncated) = security::as_catalog_owner(|| {
        Spi::get_two_with_args::<bool, bool>(
            "SELECT built_at IS NOT NULL, EXISTS (SELECT 1 FROM vasttile.heat_pyramid_log l \
                                                  WHERE l.pyramid = $1 AND l.sign = 0) \
             FROM vasttile.heat_pyramids WHERE name = $1",
            &[p.name.as_str().into()],
        )
    })
    .or_spi_error("reading the pyramid");
    if truncated == Some(true) || built != Some(true) {
        let mut report = build_all(p);
        report["refresh"] = json!("full rebuild");
        return report;
    }
    // On Citus the rows changed on the nodes holding the shards: taken into this node's log.
    let mut shard_claim = None;
    if crate::bindings::citus::is_distributed(p.source_oid) {
        shard_claim = super::shards::take_changes(p);
        if shard_claim.is_none() {
            let mut report = build_all(p);
            report["refresh"] = json!("full rebuild of a distributed table");
            return report;
        }
    }
    let mut changed: Vec<HashSet<(u32, u32)>> = vec![HashSet::new(); p.base_zoom as usize + 1];
    let mut base_tiles = HashSet::new();
    // The log is taken (deleted and read in one statement, so rows logged meanwhile stay for
    // the next refresh) and drawn as deltas: adds, then removes.
    let stats = security::as_catalog_owner(|| {
        stream_counts(
            p,
            "WITH gone AS (DELETE FROM vasttile.heat_pyramid_log WHERE pyramid = $3 \
                           RETURNING id, path, times, kind, is_virtual, is_private, weight, sign)",
            "SELECT * FROM gone",
            vec![p.name.as_str().into()],
            &mut |delta, sign| {
                let t = delta.tile;
                apply_delta(&mut SpiTiles(p), &p.norm, &delta, sign, p.size)?;
                if t.z == p.base_zoom {
                    base_tiles.insert((t.x, t.y));
                }
                changed[t.z as usize].insert((t.x, t.y));
                Ok(())
            },
        )
    });
    if stats.rebuild {
        // A TRUNCATE logged while this refresh started.
        let mut report = build_all(p);
        report["refresh"] = json!("full rebuild");
        return report;
    }
    // Levels are recomputed wherever a changed tile's CDF reaches.
    let mut renormalised = 0;
    for (z, tiles) in changed.iter().enumerate() {
        let mut targets =
            tiles_to_renormalise(&mut SpiTiles(p), &p.norm, z as u32, tiles).or_raise();
        renormalised += targets.len();
        normalise(&mut SpiTiles(p), &p.norm, z as u32, &mut targets, threads()).or_raise();
    }
    let report = json!({
        "refresh": "incremental",
        "rows": stats.read.rows,
        "drawn": stats.read.drawn,
        "left_out": stats.read.left_out,
        "base_tiles": base_tiles.len(),
        "tiles_changed": changed.iter().map(|c| c.len()).sum::<usize>(),
        "tiles_renormalised": renormalised,
        "shard_claim": shard_claim,
        "seconds": {"total": started.elapsed().as_secs_f64()},
    });
    record_build(p, &report, stats.read.rows > 0);
    report
}

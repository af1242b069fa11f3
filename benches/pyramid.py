"""Heat pyramid benchmark (the Strava global heatmap): one run, medians and ratios.

  1. 100k synthetic activities (vasttile.synthetic_activities, about 200 points each): pyramid
     build time on this machine's cores (base zoom 16, down to z0), from create_heat_pyramid's
     own report, and its line throughput per core (line pixels / CPU seconds spent drawing).
  2. datashader's Canvas.line (count) on the same filtered paths on the same pixel grid (z16
     world pixels of the paths' extent), single process, in memory: line pixels per second.
  3. Tile latency, p50 and p99, as a tile server sees it (one SQL call per tile over the local
     socket): heat_pyramid_tile against drawing the same tiles on the fly from the table with
     the SQL a user would write without a pyramid (GiST box filter, activity_path filters,
     heat_grid_paths, heat_render).

Run with scripts/bench.sh, which installs the peers.
"""

import os
import random
import statistics
import time

import datashader as ds
import numpy as np
import pandas as pd

N = int(os.environ.get("VASTTILE_BENCH_ACTIVITIES", "100000"))
BUILDS = int(os.environ.get("VASTTILE_BENCH_BUILDS", "3"))
PYRAMID_TILES = int(os.environ.get("VASTTILE_BENCH_PYRAMID_TILES", "300"))
FLY_TILES = int(os.environ.get("VASTTILE_BENCH_FLY_TILES", "12"))
BASE = 16

from bench_db import cur, sql


sql("DROP EXTENSION IF EXISTS vasttile CASCADE")
sql("CREATE EXTENSION vasttile")
if sql("SELECT count(*) FROM pg_class WHERE relname = 'bench_activities'")[0][0] == 0 or \
        sql("SELECT count(*) FROM bench_activities")[0][0] != N:
    sql("DROP TABLE IF EXISTS bench_activities")
    sql("CREATE TABLE bench_activities AS SELECT * FROM vasttile.synthetic_activities(%s)", N)
    sql("ALTER TABLE bench_activities ADD PRIMARY KEY (id)")
    sql("VACUUM ANALYZE bench_activities")

options = f'{{"geometry": "activities", "base_zoom": {BASE}}}'
reports = [sql("SELECT vasttile.create_heat_pyramid('bench', 'bench_activities', %s)", options)[0][0]]
for _ in range(BUILDS - 1):
    reports.append(sql("SELECT vasttile.heat_pyramid_build('bench')")[0][0])
build_s = statistics.median(r["seconds"]["total"] for r in reports)
ours_px_per_core = statistics.median(r["line_pixels_per_core_second"] for r in reports)
last = reports[-1]

# The same filtered paths, in z16 world pixels (VCS >> 7 at 256 px), NaN between paths.
keys = sql("""SELECT vasttile.activity_path(id, path, times, kind, is_virtual, is_private)
              FROM bench_activities""")


def deinterleave(k):
    k = k & np.uint64(0x5555555555555555)
    for shift, mask in [(1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
                        (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF)]:
        k = (k | (k >> np.uint64(shift))) & np.uint64(mask)
    return k


xs, ys = [], []
for (path,) in keys:
    if path is None:
        continue
    k = np.array(path, dtype=np.uint64)
    xs.append(np.append(deinterleave(k).astype(np.float64) / 128.0, np.nan))
    ys.append(np.append(deinterleave(k >> np.uint64(1)).astype(np.float64) / 128.0, np.nan))
df = pd.DataFrame({"x": np.concatenate(xs), "y": np.concatenate(ys)})
x0, x1 = np.floor(np.nanmin(df.x)), np.floor(np.nanmax(df.x)) + 1
y0, y1 = np.floor(np.nanmin(df.y)), np.floor(np.nanmax(df.y)) + 1
canvas = ds.Canvas(plot_width=int(x1 - x0), plot_height=int(y1 - y0), x_range=(x0, x1), y_range=(y0, y1))
agg = canvas.line(df, "x", "y", agg=ds.count())  # warm: compiles with numba
ds_pixels = float(agg.sum())
times = []
for _ in range(3):
    t0 = time.perf_counter()
    canvas.line(df, "x", "y", agg=ds.count())
    times.append(time.perf_counter() - t0)
ds_s = statistics.median(times)
ds_px_per_s = ds_pixels / ds_s

# Tile latency: lit tiles of a few zooms, each from the pyramid and on the fly.
random.seed(1)


def client_ms(q, args):
    t0 = time.perf_counter()
    cur.execute(q, args)
    cur.fetchall()
    return 1000 * (time.perf_counter() - t0)


pyramid_q = "SELECT vasttile.heat_pyramid_tile('bench', %s, %s, %s)"
fly_q = """SELECT vasttile.heat_render(vasttile.heat_grid_paths(
             vasttile.activity_path(id, path, times, kind, is_virtual, is_private), %s, %s, %s))
           FROM bench_activities
           WHERE vasttile.path_box(path) && box(point(%s, %s), point(%s, %s))"""
rows = []
for zooms in [(10, 11, 12), (13, 14), (15, 16)]:
    tiles = sql("SELECT z, x, y FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'bench' AND z = ANY(%s)", list(zooms))
    sample = [random.choice(tiles) for _ in range(PYRAMID_TILES)]
    for t in sample[:20]:
        client_ms(pyramid_q, t)  # warm the cache of plans and pages
    pyr = sorted(client_ms(pyramid_q, t) for t in sample)
    fly = []
    for z, x, y in random.sample(tiles, min(FLY_TILES, len(tiles))):
        bx0, by0, bx1, by1 = sql("SELECT * FROM vasttile.tile_vcs_bounds(%s, %s, %s)", z, x, y)[0]
        fly.append(client_ms(fly_q, (z, x, y, bx0, by0, bx1 - 1, by1 - 1)))
    fly.sort()

    def pct(v, p):
        return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]

    rows.append((zooms, pct(pyr, 0.5), pct(pyr, 0.99), len(pyr), pct(fly, 0.5), pct(fly, 0.99), len(fly)))

print()
print(f"vasttile heat pyramid benchmark: {N:,} synthetic activities, base zoom {BASE}; {os.cpu_count()} cores;"
      f" datashader {ds.__version__}")
print(f"  activities drawn / left out by the filters: {last['drawn']:,} / {last['left_out']:,};"
      f" {last['points']:,} points; {last['tiles']:,} tiles ({last['base_tiles']:,} at z{BASE})")
print(f"  pyramid build, median of {len(reports)}: {build_s:.1f} s  (rows read, split and drawn"
      f" {last['seconds']['counts']:.1f}, levels {last['seconds']['levels']:.1f}; {last['threads']} threads)")
print(f"  line pixels/s per core: vasttile {ours_px_per_core / 1e6:.1f} M ({last['line_pixels']:,} pixels)"
      f"  datashader Canvas.line {ds_px_per_s / 1e6:.1f} M ({ds_pixels:,.0f} pixels, {ds_s:.2f} s, {int(x1 - x0)}x{int(y1 - y0)} canvas)")
print(f"  ratio vasttile / datashader line pixels/s per core (goal >= 8): {ours_px_per_core / ds_px_per_s:.2f}")
print()
print(f"  {'zooms':12} {'pyramid p50 ms':>15} {'p99 ms':>8} {'n':>5}   {'on the fly p50 ms':>18} {'p99 ms':>9} {'n':>4}   {'p50 ratio':>9}")
for zooms, p50, p99, n, f50, f99, fn in rows:
    print(f"  {str(zooms):12} {p50:15.2f} {p99:8.2f} {n:5}   {f50:18.1f} {f99:9.1f} {fn:4}   {f50 / p50:9.0f}x")

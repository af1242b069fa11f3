"""Heat benchmarks: vasttile beside its peers, in one run, on the same points. Medians and ratios.

  1. 1M points in one z10 tile: PostgreSQL's own count(*) over the tile's key range (the floor),
     vasttile.heat_tile (count, eq_hist, PNG), and datashader end to end in memory
     (Canvas.points count + shade(how='eq_hist') + PNG), serial and with parallel workers.
  2. The PostGIS SQL route (ST_AsRaster per point, ST_Union SUM, ST_ColorMap, ST_AsPNG) on a
     subset of the same points (it is too slow for all of them), as rows/s.
  3. Accessibility at 300 and 3,000 POIs on a z12 tile: vasttile.access_tile against the Numba
     article's algorithm (guvectorize, target='parallel'), run with numba.

Timings of SQL run inside the server (clock_timestamp around EXECUTE), so no client transfer is
counted for either side. Run with scripts/bench.sh, which installs the peers.
"""

import io
import math
import os
import statistics
import sys
import time

import numpy as np

RUNS = int(os.environ.get("VASTTILE_BENCH_RUNS", "7"))
Z, TX, TY = 10, 301, 384  # New York
N_POINTS = 1_000_000
POSTGIS_POINTS = int(os.environ.get("VASTTILE_BENCH_POSTGIS_POINTS", "20000"))

from bench_db import cur, sql


# A scratch database: the extension as installed now (its SQL may have changed since last run).
sql("DROP EXTENSION IF EXISTS vasttile CASCADE")
sql("CREATE EXTENSION vasttile")
sql("""
CREATE OR REPLACE FUNCTION bench_ms(q text, runs int) RETURNS float8[] LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; out float8[] := '{}'; i int;
BEGIN
  EXECUTE q;  -- warm
  FOR i IN 1..runs LOOP
    t0 := clock_timestamp();
    EXECUTE q;
    out := out || 1000 * extract(epoch FROM clock_timestamp() - t0)::float8;
  END LOOP;
  RETURN out;
END $$""")


def server_ms(q, runs=RUNS, parallel=False):
    sql(f"SET max_parallel_workers_per_gather = {2 if parallel else 0}")
    return statistics.median(sql("SELECT bench_ms(%s, %s)", q, runs)[0][0])


def client_ms(f, runs=RUNS):
    f()  # warm (and compile, for numba)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def tile_bounds_lonlat(z, x, y):
    n = 2 ** z
    lon = lambda t: t / n * 360 - 180
    lat = lambda t: math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * t / n))))
    return lon(x), lat(y + 1), lon(x + 1), lat(y)


def mercator(lon, lat):
    r = 6378137.0
    return np.radians(lon) * r, np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * r


# --- the points: clustered, all inside the tile ------------------------------------------------
rng = np.random.default_rng(2026)
west, south, east, north = tile_bounds_lonlat(Z, TX, TY)
centres = rng.uniform([west, south], [east, north], size=(40, 2))
which = rng.integers(0, 40, N_POINTS)
spread = rng.uniform(0.002, 0.03, 40)[which]
lon = np.clip(centres[which, 0] + rng.normal(0, 1, N_POINTS) * spread, west + 1e-9, east - 1e-9)
lat = np.clip(centres[which, 1] + rng.normal(0, 1, N_POINTS) * spread * 0.75, south + 1e-9, north - 1e-9)

print(f"loading {N_POINTS:,} points into one z{Z} tile ({TX}, {TY}) ...", file=sys.stderr)
sql("DROP TABLE IF EXISTS bench_points")
sql("""CREATE TABLE bench_points (lon float8, lat float8,
       vcs_key int8 GENERATED ALWAYS AS (vasttile.lonlat_to_key(lon, lat)) STORED)""")
buf = io.StringIO()
np.savetxt(buf, np.column_stack([lon, lat]), fmt="%.9f", delimiter=",")
buf.seek(0)
cur.copy_expert("COPY bench_points (lon, lat) FROM STDIN WITH (FORMAT csv)", buf)
sql("CREATE INDEX ON bench_points (vcs_key)")
sql("CLUSTER bench_points USING bench_points_vcs_key_idx")
sql("VACUUM ANALYZE bench_points")

rows = []
key_range = f"vcs_key >= vasttile.tile_key_lo({Z}, {TX}, {TY}) AND vcs_key < vasttile.tile_key_hi({Z}, {TX}, {TY})"
count_q = f"SELECT count(*) FROM bench_points WHERE {key_range}"
heat_q = f"SELECT vasttile.heat_tile('bench_points', {Z}, {TX}, {TY})"
agg_q = f"SELECT vasttile.heat_render(vasttile.heat_grid(vcs_key, {Z}, {TX}, {TY})) FROM bench_points WHERE {key_range}"

count_ms = server_ms(count_q)
heat_ms = server_ms(heat_q)
count_par_ms = server_ms(count_q, parallel=True)
agg_par_ms = server_ms(agg_q, parallel=True)

# --- datashader, end to end in memory ------------------------------------------------------------
import datashader as ds
import datashader.transfer_functions as tf
import pandas as pd

mx, my = mercator(lon, lat)
df = pd.DataFrame({"x": mx, "y": my})
(x0, y0), (x1, y1) = mercator(np.array(west), np.array(south)), mercator(np.array(east), np.array(north))


def datashader_tile():
    canvas = ds.Canvas(plot_width=256, plot_height=256, x_range=(float(x0), float(x1)), y_range=(float(y0), float(y1)))
    img = tf.shade(canvas.points(df, "x", "y", agg=ds.count()), cmap=["#5f0000", "#ffc700", "#ffffff"], how="eq_hist")
    out = io.BytesIO()
    img.to_pil().save(out, format="png", compress_level=1)
    return out.getvalue()


datashader_ms = client_ms(datashader_tile)

rows += [
    ("heat, 1M points, one z10 tile", "PostgreSQL count(*) over the key range (floor)", count_ms, N_POINTS / count_ms / 1000),
    ("", "vasttile.heat_tile (count + eq_hist + PNG)", heat_ms, N_POINTS / heat_ms / 1000),
    ("", "datashader in memory (count + eq_hist + PNG)", datashader_ms, N_POINTS / datashader_ms / 1000),
    ("", "count(*), 2 parallel workers", count_par_ms, N_POINTS / count_par_ms / 1000),
    ("", "heat_render(heat_grid(...)), 2 parallel workers", agg_par_ms, N_POINTS / agg_par_ms / 1000),
]
ratios = [
    ("heat_tile rows/s / count(*) rows/s (goal >= 0.75)", count_ms / heat_ms),
    ("heat_tile speed / datashader end to end", datashader_ms / heat_ms),
    ("parallel heat_grid rows/s / parallel count(*) rows/s", count_par_ms / agg_par_ms),
]

# --- PostGIS --------------------------------------------------------------------------------
has_postgis = sql("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis_raster'")[0][0] > 0
if has_postgis:
    sql("CREATE EXTENSION IF NOT EXISTS postgis")
    sql("CREATE EXTENSION IF NOT EXISTS postgis_raster")
    sql("SET postgis.gdal_enabled_drivers = 'PNG'")  # ST_AsPNG needs GDAL's PNG driver
    sql("DROP TABLE IF EXISTS bench_geom")
    sql(f"""CREATE TABLE bench_geom AS SELECT ST_Transform(ST_SetSRID(ST_MakePoint(lon, lat), 4326), 3857) AS geom, vcs_key
            FROM bench_points ORDER BY random() LIMIT {POSTGIS_POINTS}""")
    sql("CREATE INDEX ON bench_geom USING gist (geom)")
    sql("CREATE INDEX ON bench_geom (vcs_key)")
    sql("ANALYZE bench_geom")
    postgis_q = f"""
      WITH ref AS (SELECT ST_AsRaster(ST_TileEnvelope({Z}, {TX}, {TY}), 256, 256, '32BF', 0, 0) AS r)
      SELECT ST_AsPNG(ST_ColorMap(ST_Union(ST_AsRaster(g.geom, ref.r, '32BF', 1, 0), 'SUM'), 1, 'fire'))
      FROM bench_geom g, ref WHERE g.geom && ST_TileEnvelope({Z}, {TX}, {TY})"""
    postgis_ms = server_ms(postgis_q, runs=3)
    small_heat_ms = server_ms(f"SELECT vasttile.heat_tile('bench_geom', {Z}, {TX}, {TY})")
    rows += [
        (f"heat, {POSTGIS_POINTS:,} points (PostGIS subset)", "PostGIS ST_AsRaster + ST_Union + ST_ColorMap + ST_AsPNG", postgis_ms, POSTGIS_POINTS / postgis_ms / 1000),
        ("", "vasttile.heat_tile on the same rows", small_heat_ms, POSTGIS_POINTS / small_heat_ms / 1000),
    ]
    ratios.append(("heat_tile speed / PostGIS raster route", postgis_ms / small_heat_ms))
else:
    print("PostGIS raster is not installed: skipping the PostGIS route", file=sys.stderr)

# --- accessibility: vasttile against the Numba article --------------------------------------
import numba
from numba import guvectorize, njit
from PIL import Image


@njit("f8(f8[:], f8[:])")
def dist(point1, point2):
    R = 6373.0
    lat1, lon1 = point1
    lat2, lon2 = point2
    delta = point2 - point1
    a = math.sin(delta[0] / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(delta[1] / 2) ** 2
    c = 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))
    return R * c


@njit("f8(f8, f8, f8)")
def clamp(x, min_val, max_val):
    return min(max(min_val, x), max_val)


@guvectorize(["void(f8[:, :, :], f8[:], f8[:], f8, f8[:, :, :])"], "(a, b, c), (a), (b), () -> (a, b, c)", target="parallel", nopython=True)
def calc_grid(zeros, x_range, y_range, zoom, result):
    tile_count = 2.0 ** zoom
    for i, x in enumerate(x_range):
        for j, y in enumerate(y_range):
            lon = x / tile_count * 2 * math.pi - math.pi
            lat = math.atan(math.sinh(math.pi * (1 - 2 * y / tile_count)))
            result[j][i] = (lat, lon)


@guvectorize(["void(f8[:, :, :], f8[:, :], f8[:, :])"], "(n, m, k), (a, b) -> (n, m)", target="parallel", nopython=True)
def calc_dists(positions, points, result):
    for i in range(positions.shape[0]):
        for j in range(positions.shape[1]):
            buffer = 0
            for point in points:
                cur_dist = dist(positions[i][j], point)
                buffer += max(0, 1.2 - cur_dist)
            result[i][j] = min(1, buffer / 4)


@guvectorize(["void(f8[:, :, :], f8[:, :, :])"], "(n, m, k) -> (n, m, k)", target="parallel", nopython=True)
def calc_colors(dists, result):
    for i in range(dists.shape[0]):
        for j in range(dists.shape[1]):
            x = dists[i][j][0]
            r = clamp((4.0 * x - 1.5) if x < 0.7 else (-4.0 * x + 4.5), 0, 1)
            g = clamp((4.0 * x - 0.5) if x < 0.5 else (-4.0 * x + 3.5), 0, 1)
            b = clamp((4.0 * x + 0.5) if x < 0.3 else (-4.0 * x + 2.5), 0, 1)
            a = clamp(dists[i][j][0] * 2, 0, 0.95)
            result[i][j] = (r, g, b, a)
    result *= 255


def gen_tile(zoom, x, y, points):
    """The article's gen_tile, writing the PNG to memory instead of a file."""
    size = 256
    rng_ = np.linspace(0, 1, size)
    grid = np.zeros((size, size, 2))
    calc_grid(grid, x + rng_, y + rng_, zoom, grid)
    points = np.radians(points)
    dists = np.zeros((size, size))
    calc_dists(grid, points, dists)
    dists = np.dstack((dists.reshape((size, size, 1)), np.zeros((size, size, 3))))
    colors = np.zeros_like(dists)
    calc_colors(dists, colors)
    out = io.BytesIO()
    Image.fromarray(colors.astype("uint8")).save(out, format="png")
    return out.getvalue()


AZ = 12
ATX = int((37.62 + 180) / 360 * 2 ** AZ)
ATY = int((1 - math.asinh(math.tan(math.radians(55.75))) / math.pi) / 2 * 2 ** AZ)
aw, as_, ae, an = tile_bounds_lonlat(AZ, ATX, ATY)
for n_poi in (300, 3000):
    # POIs over the tile and 3 km around it (some pruned), like stores over a city.
    pad = 0.05
    pois = np.column_stack([rng.uniform(as_ - pad, an + pad, n_poi), rng.uniform(aw - pad, ae + pad, n_poi)])  # (lat, lon)
    sql("DROP TABLE IF EXISTS bench_pois")
    sql("CREATE TABLE bench_pois (lon float8, lat float8, vcs_key int8 GENERATED ALWAYS AS (vasttile.lonlat_to_key(lon, lat)) STORED)")
    buf = io.StringIO()
    np.savetxt(buf, pois[:, ::-1], fmt="%.9f", delimiter=",")
    buf.seek(0)
    cur.copy_expert("COPY bench_pois (lon, lat) FROM STDIN WITH (FORMAT csv)", buf)
    sql("CREATE INDEX ON bench_pois (vcs_key)")
    sql("VACUUM ANALYZE bench_pois")
    access_ms = server_ms(f"SELECT vasttile.access_tile('bench_pois', {AZ}, {ATX}, {ATY})")
    numba_ms = client_ms(lambda: gen_tile(AZ, ATX, ATY, pois), runs=3 if n_poi > 1000 else RUNS)
    rows += [
        (f"accessibility, {n_poi:,} POIs, z12 tile", "Numba article gen_tile (gather, parallel)", numba_ms, None),
        ("", "vasttile.access_tile (pruned cone stamps, 2 threads)", access_ms, None),
    ]
    ratios.append((f"access_tile speed / Numba article, {n_poi} POIs", numba_ms / access_ms))

# --- paths drawn as lines: vasttile against datashader's lines -----------------------------------
LZ, LTX, LTY = 12, 2046, 1361  # London
lw, ls, le, ln = tile_bounds_lonlat(LZ, LTX, LTY)
N_PATHS, STEPS = 5000, 200
start = rng.uniform([lw, ls], [le, ln], size=(N_PATHS, 2))
steps = rng.normal(0, 1, size=(N_PATHS, STEPS, 2)) * [(le - lw) / 80, (ln - ls) / 80]
walk = start[:, None, :] + np.cumsum(steps, axis=1)
walk[..., 0] = np.clip(walk[..., 0], lw + 1e-9, le - 1e-9)
walk[..., 1] = np.clip(walk[..., 1], ls + 1e-9, ln - 1e-9)
sql("DROP TABLE IF EXISTS bench_walk_points")
sql("CREATE TABLE bench_walk_points (path_id int4, ord int4, lon float8, lat float8)")
buf = io.StringIO()
ids = np.repeat(np.arange(N_PATHS), STEPS)
ords = np.tile(np.arange(STEPS), N_PATHS)
np.savetxt(buf, np.column_stack([ids, ords, walk[..., 0].ravel(), walk[..., 1].ravel()]), fmt=["%d", "%d", "%.9f", "%.9f"], delimiter=",")
buf.seek(0)
cur.copy_expert("COPY bench_walk_points FROM STDIN WITH (FORMAT csv)", buf)
sql("DROP TABLE IF EXISTS bench_paths")
sql("""CREATE TABLE bench_paths AS SELECT path_id, array_agg(vasttile.lonlat_to_key(lon, lat) ORDER BY ord) AS path
       FROM bench_walk_points GROUP BY path_id""")
sql("VACUUM ANALYZE bench_paths")
paths_q = f"SELECT vasttile.heat_grid_paths(path, {LZ}, {LTX}, {LTY}) FROM bench_paths"
line_pixels = sql(f"SELECT total FROM vasttile.heat_stats(({paths_q}))")[0][0]
paths_ms = server_ms(paths_q)

wx, wy = mercator(walk[..., 0], walk[..., 1])
sep = np.full((N_PATHS, 1), np.nan)
ldf = pd.DataFrame({"x": np.hstack([wx, sep]).ravel(), "y": np.hstack([wy, sep]).ravel()})
(lx0, ly0), (lx1, ly1) = mercator(np.array(lw), np.array(ls)), mercator(np.array(le), np.array(ln))
lcanvas = ds.Canvas(plot_width=256, plot_height=256, x_range=(float(lx0), float(lx1)), y_range=(float(ly0), float(ly1)))
ds_line_pixels = float(lcanvas.line(ldf, "x", "y", agg=ds.count()).sum())
ds_lines_ms = client_ms(lambda: lcanvas.line(ldf, "x", "y", agg=ds.count()))
rows += [
    (f"lines, {N_PATHS:,} paths x {STEPS} points, z12", "vasttile heat_grid_paths (1 backend)", paths_ms, line_pixels / paths_ms / 1000),
    ("", "datashader Canvas.line count (in memory)", ds_lines_ms, ds_line_pixels / ds_lines_ms / 1000),
]
ratios.append(("line pixels/s: vasttile / datashader (goal >= 8)", (line_pixels / paths_ms) / (ds_line_pixels / ds_lines_ms)))

print()
print(f"vasttile heat benchmark: medians of {RUNS} runs (PostGIS 3, Numba 3000 POIs 3); {os.cpu_count()} cores;"
      f" numba {numba.__version__}, datashader {ds.__version__}")
print(f"{'case':40} {'method':58} {'ms':>10} {'M rows/s':>9}  (lines: M pixels/s)")
for case, method, ms, rate in rows:
    print(f"{case:40} {method:58} {ms:10.2f} {'' if rate is None else f'{rate:9.2f}'}")
print()
for what, ratio in ratios:
    print(f"  {what:60} {ratio:8.2f}")

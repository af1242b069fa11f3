"""Pyramid builds at scale: peak backend memory beside rows, one run each.

  1. A points pyramid over 10M points, 5% spread over the world and 95% in one city, base zoom 12
     (hundreds of thousands of sparse tiles).
  2. 1M synthetic activities (about 200 points each), base zoom 16.

The backend's peak RSS (all pages, shared buffers it touched included) and peak RssAnon (its
private memory: what the build itself holds) are sampled from /proc every 0.2 s while
create_heat_pyramid runs, with maintenance_work_mem at its default (64 MB).
Sizes: VASTTILE_BENCH_POINTS (10000000), VASTTILE_BENCH_BIG_ACTIVITIES (1000000).
"""

import os
import threading
import time

import psycopg2

from bench_db import sql

POINTS = int(os.environ.get("VASTTILE_BENCH_POINTS", "10000000"))
ACTIVITIES = int(os.environ.get("VASTTILE_BENCH_BIG_ACTIVITIES", "1000000"))


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured_build(name, table, options):
    """create_heat_pyramid in its own connection, with its backend's memory sampled."""
    conn = psycopg2.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="postgres",
                            dbname="vasttile_bench")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    peak = {"rss": 0, "anon": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["rss"] = max(peak["rss"], status_kb(pid, "VmRSS"))
            peak["anon"] = max(peak["anon"], status_kb(pid, "RssAnon"))
            time.sleep(0.2)

    t = threading.Thread(target=sample)
    t.start()
    started = time.time()
    cur.execute("SELECT vasttile.drop_heat_pyramid(%s)", (name,))
    cur.execute("SELECT vasttile.create_heat_pyramid(%s, %s, %s::jsonb)", (name, table, options))
    report = cur.fetchone()[0]
    seconds = time.time() - started
    done.set()
    t.join()
    conn.close()
    return report, seconds, peak["rss"] / 1024, peak["anon"] / 1024


sql("CREATE EXTENSION IF NOT EXISTS vasttile")
if sql("SELECT count(*) FROM pg_class WHERE relname = 'bench_world_points'")[0][0] == 0 or \
        sql("SELECT count(*) FROM bench_world_points")[0][0] != POINTS:
    sql("DROP TABLE IF EXISTS bench_world_points")
    sql("""CREATE TABLE bench_world_points AS
           SELECT CASE WHEN i % 20 = 0
                       THEN vasttile.lonlat_to_key(-180 + random() * 360, -80 + random() * 160)
                       ELSE vasttile.lonlat_to_key(-0.1 + random() * 0.5, 51.4 + random() * 0.3) END AS vcs_key
           FROM generate_series(1, %s) i""", POINTS)
if sql("SELECT count(*) FROM pg_class WHERE relname = 'bench_big_activities'")[0][0] == 0 or \
        sql("SELECT count(*) FROM bench_big_activities")[0][0] != ACTIVITIES:
    sql("DROP TABLE IF EXISTS bench_big_activities")
    sql("CREATE TABLE bench_big_activities AS SELECT * FROM vasttile.synthetic_activities(%s)", ACTIVITIES)

print("pyramid builds at scale (maintenance_work_mem "
      f"{sql('SHOW maintenance_work_mem')[0][0]}, one run each)")
for name, table, options, what in [
    ("bench_world", "bench_world_points", '{"base_zoom": 12}', f"{POINTS:,} points, 5% over the world, z12"),
    ("bench_big", "bench_big_activities", '{"geometry": "activities", "base_zoom": 16}',
     f"{ACTIVITIES:,} activities, z16"),
]:
    r, s, rss, anon = measured_build(name, table, options)
    print(f"  {what}: {r['rows']:,} rows, {r['points']:,} points drawn, {r['tiles']:,} tiles in {s:.0f} s;"
          f" peak backend RSS {rss:,.0f} MB, of which private {anon:,.0f} MB")
    sql("SELECT vasttile.drop_heat_pyramid(%s)", name)

"""Every tile kind on Citus beside the same rows on one node (run by scripts/test_citus.sh).

Each case is a pair of queries returning one bytea: over the distributed tables (pts, acts,
polys) and over their plain copies on the coordinator (*_local). Both run with
citus.coordinator_aggregation_strategy = 'disabled', so an aggregate that Citus cannot split is
an error rather than every row pulled to the coordinator. For each case this prints and checks:
  - the two results are byte-identical (md5), and png_diff of the two PNGs is 0;
  - the rows that reach the coordinator: one per shard task Citus sends (it logs every command
    with citus.log_remote_commands), at most one per shard; and the bytes those rows carry,
    measured by running each logged command again on its worker;
  - the median time of both, over --runs runs.
Exit status 1 when any check fails. Standard library only (psql does the talking).
"""
import argparse
import re
import statistics
import subprocess
import sys

SHARDS = 4  # citus.shard_count of scripts/citus_cluster.sh

# (name, distributed query, single-node query[, most rows that may reach the coordinator: by
# default one per shard]). Layers are made by scripts/test_citus.sh.
CASES = [
    ("heat_tile counts z2", "SELECT vasttile.heat_tile('pts', 2, 0, 1)", "SELECT vasttile.heat_tile('pts_local', 2, 0, 1)"),
    ("heat_tile weighted z5", "SELECT vasttile.heat_tile('pts', 5, 5, 12, weight_column => 'w')",
     "SELECT vasttile.heat_tile('pts_local', 5, 5, 12, weight_column => 'w')"),
    ("heat_tile 512 px z3", """SELECT vasttile.heat_tile('pts', 3, 1, 3, '{"size": 512}')""",
     """SELECT vasttile.heat_tile('pts_local', 3, 1, 3, '{"size": 512}')"""),
    ("heat_render(heat_grid) weighted z2",
     "SELECT vasttile.heat_render(vasttile.heat_grid(vcs_key, 2, 0, 1, w)) FROM pts",
     "SELECT vasttile.heat_render(vasttile.heat_grid(vcs_key, 2, 0, 1, w)) FROM pts_local"),
    ("heat_merge of grids per shard key", "SELECT vasttile.heat_render(vasttile.heat_merge(g)) FROM "
     "(SELECT vasttile.heat_grid(vcs_key, 2, 0, 1, w) g FROM pts GROUP BY id % 8) s",
     "SELECT vasttile.heat_render(vasttile.heat_merge(g)) FROM "
     "(SELECT vasttile.heat_grid(vcs_key, 2, 0, 1, w) g FROM pts_local GROUP BY id % 8) s",
     SHARDS * 8),
    ("dot_tile z2", "SELECT vasttile.dot_tile('pts', 2, 0, 1)", "SELECT vasttile.dot_tile('pts_local', 2, 0, 1)"),
    ("dot_tile z9", "SELECT vasttile.dot_tile('pts', 9, 100, 200)", "SELECT vasttile.dot_tile('pts_local', 9, 100, 200)"),
    ("access_tile z8", "SELECT vasttile.access_tile('pts', 8, 50, 95)", "SELECT vasttile.access_tile('pts_local', 8, 50, 95)"),
    ("heat_grid_paths z11", "SELECT vasttile.heat_render(vasttile.heat_grid_paths(path, 11, 1023, 681)) FROM acts",
     "SELECT vasttile.heat_render(vasttile.heat_grid_paths(path, 11, 1023, 681)) FROM acts_local"),
    ("heat_grid_paths weighted 512 px z9",
     "SELECT vasttile.heat_render(vasttile.heat_grid_paths(path, 9, 255, 170, 0.5 + id % 3, 512)) FROM acts",
     "SELECT vasttile.heat_render(vasttile.heat_grid_paths(path, 9, 255, 170, 0.5 + id % 3, 512)) FROM acts_local"),
    ("heat layer", "SELECT citus_heat(2, 0, 1)", "SELECT local_heat(2, 0, 1)"),
    ("dot layer", "SELECT citus_dots(2, 0, 1)", "SELECT local_dots(2, 0, 1)"),
    ("access layer", "SELECT citus_access(8, 50, 95)", "SELECT local_access(8, 50, 95)"),
    # A cached skeleton: each of the 3 nodes reports its count of changes to the table.
    ("skeleton_tile", "SELECT vasttile.skeleton_tile('citus_squares', 3, 1, 3)",
     "SELECT vasttile.skeleton_tile('local_squares', 3, 1, 3)", 3),
    # The same, and the values query's array_agg, one partial array per shard.
    ("choropleth layer", "SELECT citus_choropleth(3, 1, 3)", "SELECT local_choropleth(3, 1, 3)", 3 + SHARDS),
]

SETTINGS = "SET citus.coordinator_aggregation_strategy = 'disabled';\n"

# (name, distributed table, local table, options): pyramids built over both must be equal tile for
# tile, and again after the same rows change in both and each is refreshed.
PYRAMIDS = [
    ("100k activities, base z14", "big_acts", "big_acts_local",
     '{"geometry": "paths", "column": "path", "base_zoom": 14}'),
    ("300k points, base z10", "pts", "pts_local", '{"base_zoom": 10, "weight_column": "w"}'),
]
CHANGE = """DELETE FROM {t} WHERE id % 50 = 0;
UPDATE {t} SET {col} = {col} WHERE id % 70 = 1;"""


def compare_pyramids(coord, a, b):
    out = psql(coord + ["-At"], f"""
SELECT count(*), count(*) FILTER (WHERE md5(x.counts) = md5(y.counts) AND md5(x.levels) = md5(y.levels)
                                        AND md5(x.summary) = md5(y.summary))
FROM (SELECT * FROM vasttile.heat_pyramid_tiles WHERE pyramid = '{a}') x
FULL JOIN (SELECT * FROM vasttile.heat_pyramid_tiles WHERE pyramid = '{b}') y USING (z, x, y);
""").stdout.strip().split("|")
    return int(out[0]), int(out[1])


def run_pyramid(coord, nodes, name, dist, local, options):
    col = "path" if "path" in options else "vcs_key"
    build = "SELECT vasttile.create_heat_pyramid('{n}', '{t}', '{o}')->'seconds'->>'total';\n"
    log = psql(coord + ["-At"], SETTINGS + "SET citus.log_remote_commands = on; SET client_min_messages = log;\n"
               + build.format(n="citus_" + dist, t=dist, o=options))
    dist_s = float(log.stdout.strip().splitlines()[-1])
    local_s = float(psql(coord + ["-At"], build.format(n="local_" + dist, t=local, o=options)).stdout.strip())
    tasks = [(c, port) for c, port in re.findall(r"issuing (.*)\nDETAIL:  on server \S+@[^:]+:(\d+)", log.stderr)
             if "worker_partial_agg" in c]
    rows, shipped = shipped_by(nodes, tasks)
    tiles, same = compare_pyramids(coord, "citus_" + dist, "local_" + dist)
    # The same change in both tables, then a refresh of each, incremental, taking the same rows
    # (twice for the distributed one: the second finds nothing to do).
    psql(coord, CHANGE.format(t=dist, col=col) + "\n" + CHANGE.format(t=local, col=col) + "\n")
    # A refresh rolled back first: the rows it took from the nodes are left to the next one.
    psql(coord, SETTINGS + f"BEGIN;\nSELECT vasttile.heat_pyramid_refresh('citus_{dist}');\nROLLBACK;\n")
    lines = psql(coord + ["-At"], SETTINGS + f"""
SELECT (r->>'refresh') || ' ' || (r->>'rows') || '|' || (r->'seconds'->>'total') FROM vasttile.heat_pyramid_refresh('citus_{dist}') r;
SELECT (r->>'refresh') || ' ' || (r->>'rows') || '|' || (r->'seconds'->>'total') FROM vasttile.heat_pyramid_refresh('local_{dist}') r;
SELECT (r->>'refresh') || ' ' || (r->>'rows') || '|' || (r->'seconds'->>'total') FROM vasttile.heat_pyramid_refresh('citus_{dist}') r;
""").stdout.strip().splitlines()
    refresh = [line.split("|")[0] for line in lines]
    refresh_s = [float(line.split("|")[1]) for line in lines]
    tiles2, same2 = compare_pyramids(coord, "citus_" + dist, "local_" + dist)
    return {"name": name, "tiles": tiles, "same": same, "tiles2": tiles2, "same2": same2,
            "tasks": rows, "shipped": shipped, "dist_s": dist_s, "local_s": local_s,
            "refresh": refresh, "refresh_s": refresh_s}


def psql(args, script, check=True):
    p = subprocess.run(args + ["-X", "-q", "-v", "ON_ERROR_STOP=1"], input=script,
                       capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    return p


def shipped_by(nodes, commands):
    """Rows and bytes (as text, how Citus ships partial aggregates) that the worker commands
    returned to the coordinator, measured by running each again on its node."""
    rows = shipped = 0
    for cmd, port in commands:
        out = psql(nodes[port] + ["-At"],
                   f"SELECT count(*), coalesce(sum(length(r::text)), 0) FROM ({cmd.rstrip(';')}) r;\n").stdout
        n, b = out.strip().split("|")
        rows, shipped = rows + int(n), shipped + int(b)
    return rows, shipped


def run_case(coord, nodes, name, dist, local, runs):
    out = psql(coord + ["-At"], SETTINGS + f"""
SELECT md5(a), md5(b),
       CASE WHEN substr(a, 1, 4) = '\\x89504e47'::bytea AND substr(b, 1, 4) = '\\x89504e47'::bytea
            THEN vasttile.png_diff(a, b) ELSE (a IS DISTINCT FROM b)::int END,
       length(a) FROM ({dist}) d(a), ({local}) l(b);
""").stdout.split("|")
    md5_d, md5_l, diff, length = out[0], out[1], out[2], out[3].strip()
    # The commands Citus sends for the distributed query: one row comes back per task.
    log = psql(coord, SETTINGS + "SET citus.log_remote_commands = on; SET client_min_messages = log;\n"
               f"SELECT length(({dist}));\n").stderr
    tasks = re.findall(r"issuing (.*)\nDETAIL:  on server \S+@[^:]+:(\d+)", log)
    sent = [(cmd, port) for cmd, port in tasks
            if not re.match(r"(BEGIN|COMMIT|ROLLBACK|SELECT assign_distributed_transaction_id|PREPARE|SET )", cmd)]
    rows, shipped = shipped_by(nodes, sent)
    times = {}
    for label, q in (("dist", dist), ("local", local)):
        script = SETTINGS + "\\timing on\n\\o /dev/null\n" + "".join(f"{q};\n" for _ in range(runs + 1))
        ms = [float(t) for t in re.findall(r"Time: ([\d.]+) ms", psql(coord, script).stdout)]
        times[label] = statistics.median(ms[1:])  # the first run warms caches and plans
    return {
        "name": name, "same": md5_d == md5_l, "png_diff": int(diff), "bytes": int(length or 0),
        "tasks": rows, "shipped": shipped, "dist_ms": times["dist"], "local_ms": times["local"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    base = ["psql", "-h", a.host, "-U", "postgres"]
    coord = base + ["-p", str(a.port), "-d", a.db]
    nodes = {str(a.port + i): base + ["-p", str(a.port + i), "-d", a.db] for i in (0, 1, 2)}
    failed = []
    print(f"{'case':38} {'identical':>9} {'png_diff':>8} {'rows to coord.':>14} {'bytes shipped':>13}"
          f" {'one node ms':>11} {'Citus ms':>9}")
    for name, dist, local, *most in CASES:
        try:
            r = run_case(coord, nodes, name, dist, local, a.runs)
        except (RuntimeError, KeyError) as e:
            print(f"{name:38} ERROR {e}")
            failed.append(name)
            continue
        print(f"{name:38} {str(r['same']):>9} {r['png_diff']:>8} {r['tasks']:>14} {r['shipped']:>13,}"
              f" {r['local_ms']:>11.1f} {r['dist_ms']:>9.1f}")
        if not r["same"] or r["png_diff"] != 0 or r["bytes"] == 0:
            failed.append(name)
        if r["tasks"] > (most[0] if most else SHARDS):
            print(f"  {r['tasks']} tasks: more rows than one per shard reached the coordinator")
            failed.append(name)
    print()
    print(f"{'pyramid':28} {'tiles':>6} {'equal':>6} {'after refresh':>13} {'rows to coord.':>14}"
          f" {'bytes shipped':>13} {'one node s':>10} {'Citus s':>8}  refresh")
    for name, dist, local, options in PYRAMIDS:
        try:
            r = run_pyramid(coord, nodes, name, dist, local, options)
        except (RuntimeError, KeyError, ValueError) as e:
            print(f"{name:28} ERROR {e}")
            failed.append(name)
            continue
        print(f"{name:28} {r['tiles']:>6} {r['same']:>6} {r['same2']:>6}/{r['tiles2']:<6} {r['tasks']:>14}"
              f" {r['shipped']:>13,} {r['local_s']:>10.2f} {r['dist_s']:>8.2f}  {' / '.join(r['refresh'])}")
        print(f"{'':28} refresh after the change: one node {r['refresh_s'][1]:.2f} s, Citus {r['refresh_s'][0]:.2f} s")
        if r["same"] != r["tiles"] or r["same2"] != r["tiles2"] or r["tiles"] == 0 or r["tasks"] == 0 \
                or r["refresh"][0] != r["refresh"][1] or r["refresh"][2] != "incremental 0" \
                or not r["refresh"][0].startswith("incremental "):
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()

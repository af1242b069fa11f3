"""The benchmarks' database connection: the scratch database vasttile_bench on the local cluster
(scripts/bench.sh sets PGHOST and PGPORT), autocommit, and `sql(query, *args)` returning rows."""

import os

import psycopg2

conn = psycopg2.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="postgres", dbname="vasttile_bench")
conn.autocommit = True
cur = conn.cursor()


def sql(q, *args):
    cur.execute(q, args)
    return cur.fetchall() if cur.description else None

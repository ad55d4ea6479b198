"""Runs SQL on DuckDB over a lakewatch lake (the same gzip NDJSON files the local engine reads).

Used by lakewatch-sql's differential test and its benchmark, never by lakewatch itself.

    python duckdb_lake.py LAKE_DIR < queries.json > results.json

stdin: {"queries": ["SELECT ...", ...], "repeat": 1}
stdout: [{"columns": [...], "rows": [[cell, ...], ...], "seconds": [t, ...]} | {"error": "..."}]
Cells are strings (numbers as Python prints them), or null. `events` and `alerts` are views
with the lake schema's columns: `details` as JSON text, partitions as strings (as in Athena).
"""

import json
import sys
import time

try:
    import duckdb
except ImportError:
    sys.exit(
        "duckdb is not installed for this python: "
        "pip install -r .ci/requirements.txt (duckdb==2.0.0), then set LAKEWATCH_PYTHON to it"
    )

COLUMNS = {
    "events": {
        "utctimestamp": "VARCHAR",
        "receivedtimestamp": "VARCHAR",
        "eventid": "VARCHAR",
        "summary": "VARCHAR",
        "category": "VARCHAR",
        "source": "VARCHAR",
        "hostname": "VARCHAR",
        "severity": "VARCHAR",
        "tags": "VARCHAR[]",
        "plugins": "VARCHAR[]",
        "details": "JSON",
    },
}


def cell(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps([cell(v) for v in value])
    return str(value)


def main():
    lake = sys.argv[1]
    request = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute("SET threads TO %d" % int(request.get("threads", 2)))
    for table, columns in COLUMNS.items():
        spec = "{" + ", ".join("'%s': '%s'" % c for c in columns.items()) + "}"
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_json("
            f"'{lake}/{table}/*/*/*/*/*.json.gz', format='newline_delimited', "
            f"columns={spec}, hive_partitioning=true, hive_types_autocast=false)"
        )
    out = []
    for sql in request["queries"]:
        try:
            seconds = []
            for _ in range(int(request.get("repeat", 1))):
                start = time.perf_counter()
                cursor = con.execute(sql)
                rows = cursor.fetchall()
                seconds.append(time.perf_counter() - start)
            columns = [d[0] for d in cursor.description]
            out.append(
                {
                    "columns": columns,
                    "rows": [[cell(v) for v in row] for row in rows],
                    "seconds": seconds,
                }
            )
        except duckdb.Error as error:
            out.append({"error": str(error)})
    json.dump(out, sys.stdout)


main()

"""Reads an `evident export --format parquet` file with pyarrow and DuckDB (the real clients a BI
user has) and prints what they see as one JSON object, for `tests/parquet.rs` to compare with
Evident's own answers. Usage: check.py FILE FROM TO WITHIN_DAYS"""

import json
import sys

import duckdb
import pyarrow.parquet as pq

path, start, end, within_days = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

parquet_file = pq.ParquetFile(path)
table = parquet_file.read()
strings = [name for name, kind in zip(table.schema.names, table.schema.types) if str(kind) == "string"]
found = {
    "rows": table.num_rows,
    "row_groups": parquet_file.metadata.num_row_groups,
    "types": {name: str(kind) for name, kind in zip(table.schema.names, table.schema.types)},
    "nullable": {field.name: field.nullable for field in table.schema},
    "has_personal": sum(1 for value in table.column("has_personal").to_pylist() if value),
    "texts": sorted({value for name in strings for value in table.column(name).to_pylist() if value}),
}

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
found["duckdb_rows"] = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()[0]
found["duckdb_types"] = {
    row[0]: row[1] for row in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
}
# The funnel of the insight tests in SQL: per customer, each opening in [start, end) is a possible
# start; each later step is the first matching event after the step before (by time, then index),
# no later than the start plus the window; the customer's depth is its best start's.
FUNNEL = """
WITH e AS (
  SELECT subject, occurred_at AS t, type, outcome,
         row_number() OVER (ORDER BY occurred_at, "index") AS r
  FROM read_parquet($path) WHERE subject IS NOT NULL),
a AS (SELECT subject, t AS t1, r AS r1 FROM e
      WHERE type = 'contact.opened' AND t >= $start::TIMESTAMPTZ AND t < $end::TIMESTAMPTZ),
b AS (SELECT a.subject, a.t1, a.r1, min(e.r) AS r2 FROM a LEFT JOIN e
      ON e.subject = a.subject AND e.type = 'contact.verified' AND e.outcome = 'success'
         AND e.r > a.r1 AND e.t <= a.t1 + to_days($within)
      GROUP BY a.subject, a.t1, a.r1),
c AS (SELECT b.subject, b.r1, b.r2, min(e.r) AS r3 FROM b LEFT JOIN e
      ON e.subject = b.subject AND e.type = 'contact.resolved'
         AND e.r > b.r2 AND e.t <= b.t1 + to_days($within)
      GROUP BY b.subject, b.r1, b.r2),
d AS (SELECT subject, max(1 + (r2 IS NOT NULL)::INT + (r3 IS NOT NULL)::INT) AS depth
      FROM c GROUP BY subject)
SELECT count(*) FILTER (WHERE depth >= 1), count(*) FILTER (WHERE depth >= 2),
       count(*) FILTER (WHERE depth >= 3)
FROM d
"""
params = {"path": path, "start": start, "end": end, "within": within_days}
found["duckdb_funnel"] = list(con.execute(FUNNEL, params).fetchone())
print(json.dumps(found))

"""Run the README's Python snippets for opening <data>/bars and print what each reader returned.

    python tests/interop_read.py README.md      (in a folder that holds data/)

Every ```python block of the README section "Open the data from Python and DuckDB" is one reader,
named after the module its first import names (pandas, polars, pyarrow, duckdb, dask). A block runs
as written, in a namespace of its own, and must define `bars` (the whole tree as one dataset) and
`daily` (the 1d bars of AAPL). Prints one JSON object on stdout:

    {"readers": {"pandas": {"columns": [[name, native type], ...], "ts_utc": true,
                            "bars": {"1m": DIGEST, ...}, "daily": {"1d": DIGEST}}, ...}}

with DIGEST = rows, keys (distinct symbol and ts), close_e4 (sum of round(close * 1e4)), volume
(sum of round(volume)), trade_count (sum), vwap_count (non-null vwaps), regular (rows of the
regular session), min_ts_us and max_ts_us (epoch microseconds), first_date and last_date, symbols
and years (distinct, sorted; years from the partition column) and year_mismatches (rows whose year
is not the year of their trading_date). tests/interop_test.ts computes the same with
`marketpipe query`. What a snippet prints goes to stderr.
"""

import contextlib
import json
import re
import sys

SECTION = "Open the data from Python and DuckDB"


def snippets(readme_path):
    """The ```python blocks of the README section, as (reader, code)."""
    with open(readme_path, encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"^#+ " + re.escape(SECTION) + r"\n(.*?)(?=^#)", text, re.M | re.S)
    if match is None:
        raise SystemExit(f'{readme_path} has no section "{SECTION}"')
    blocks = re.findall(r"^```python\n(.*?)^```", match.group(1), re.M | re.S)
    out = []
    for code in blocks:
        module = re.search(r"^(?:import|from) (\w+)", code, re.M)
        if module is None:
            raise SystemExit(f"A python block of {SECTION!r} imports nothing:\n{code}")
        out.append((module.group(1), code))
    return out


def native_schema(reader, value):
    """Column names and types as the reader itself reports them, and whether ts is UTC-aware."""
    if reader in ("pandas", "dask"):
        columns = [[str(name), str(dtype)] for name, dtype in value.dtypes.items()]
        tz = getattr(value.dtypes["ts"], "tz", None)
        return columns, tz is not None and str(tz) == "UTC"
    if reader == "polars":
        schema = value.collect_schema() if hasattr(value, "collect_schema") else value.schema
        columns = [[name, str(dtype)] for name, dtype in schema.items()]
        return columns, getattr(schema["ts"], "time_zone", None) == "UTC"
    if reader == "pyarrow":
        schema = value.schema
        columns = [[field.name, str(field.type)] for field in schema]
        return columns, getattr(schema.field("ts").type, "tz", None) == "UTC"
    if reader == "duckdb":
        columns = [[name, str(kind)] for name, kind in zip(value.columns, value.types)]
        # An instant, handed to Python in DuckDB's TimeZone setting (the local zone by default).
        aware = dict(columns).get("ts") == "TIMESTAMP WITH TIME ZONE"
        return columns, aware and str(_to_arrow(value).schema.field("ts").type.tz) == "UTC"
    raise SystemExit(f"Unknown reader {reader!r}")


def _to_arrow(value):
    """A reader's result as a pyarrow Table, materialized by that reader."""
    import duckdb
    import pandas
    import polars
    import pyarrow as pa
    import pyarrow.dataset

    if type(value).__module__.startswith("dask"):
        value = value.compute()
    if isinstance(value, pandas.DataFrame):
        return pa.Table.from_pandas(value, preserve_index=False)
    if isinstance(value, polars.LazyFrame):
        value = value.collect()
    if isinstance(value, polars.DataFrame):
        return value.to_arrow()
    if isinstance(value, pyarrow.dataset.Dataset):
        return value.to_table()
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, duckdb.DuckDBPyRelation):
        return value.to_arrow_table()
    raise SystemExit(f"Cannot read a {type(value).__name__} into Arrow")


def _plain(table):
    """Columns decoded to plain types: categoricals, views and large strings to string."""
    import pyarrow as pa

    columns = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
            column = column.cast(pa.string())
        columns[name] = column
    return pa.table(columns)


def digest(table):
    """Per timeframe: the numbers tests/interop_test.ts also gets from `marketpipe query`."""
    import pyarrow.compute as pc

    import pyarrow as pa

    table = _plain(table)
    if pa.types.is_timestamp(table.schema.field("trading_date").type):
        index = table.schema.get_field_index("trading_date")
        table = table.set_column(index, "trading_date", pc.cast(table.column(index), pa.date32()))
    out = {}
    for timeframe in sorted(set(table.column("timeframe").to_pylist())):
        part = table.filter(pc.equal(table.column("timeframe"), timeframe))
        close_e4 = pc.round(pc.multiply(part.column("close"), 1e4), round_mode="half_towards_infinity")
        volume = pc.round(part.column("volume"), round_mode="half_towards_infinity")
        keys = part.group_by(["symbol", "ts"]).aggregate([]).num_rows
        years = part.column("year").cast("int64")
        date_years = pc.year(part.column("trading_date"))
        # Epoch microseconds whatever the unit and zone (a naive ts fails on the types instead).
        ts_us = part.column("ts").cast(pa.timestamp("us", tz=part.schema.field("ts").type.tz)).cast("int64")
        out[timeframe] = {
            "rows": part.num_rows,
            "keys": keys,
            "close_e4": int(pc.sum(close_e4.cast("int64")).as_py() or 0),
            "volume": int(pc.sum(volume.cast("int64")).as_py() or 0),
            "trade_count": int(pc.sum(part.column("trade_count").cast("int64")).as_py() or 0),
            "vwap_count": int(pc.count(part.column("vwap")).as_py()),
            "regular": int(pc.sum(pc.equal(part.column("session"), "regular").cast("int64")).as_py() or 0),
            "min_ts_us": pc.min(ts_us).as_py(),
            "max_ts_us": pc.max(ts_us).as_py(),
            "first_date": pc.min(part.column("trading_date")).as_py().isoformat(),
            "last_date": pc.max(part.column("trading_date")).as_py().isoformat(),
            "symbols": sorted(set(part.column("symbol").to_pylist())),
            "years": sorted(set(years.to_pylist())),
            "year_mismatches": int(pc.sum(pc.not_equal(years, date_years).cast("int64")).as_py() or 0),
        }
    return out


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: interop_read.py README.md")
    readers = {}
    for reader, code in snippets(sys.argv[1]):
        namespace = {"__name__": f"readme_{reader}"}
        with contextlib.redirect_stdout(sys.stderr):
            exec(compile(code, f"README {reader} snippet", "exec"), namespace)
        for name in ("bars", "daily"):
            if name not in namespace:
                raise SystemExit(f"The README {reader} snippet defines no `{name}`")
        columns, ts_utc = native_schema(reader, namespace["bars"])
        table = _to_arrow(namespace["bars"])
        readers[reader] = {
            "columns": columns,
            "ts_utc": ts_utc,
            "types": {field.name: str(field.type) for field in _plain(table).schema},
            "bars": digest(table),
            "daily": digest(_to_arrow(namespace["daily"])),
        }
    json.dump({"readers": readers}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

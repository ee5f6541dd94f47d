"""``sql``: a SQLAlchemy URL and a mapping whose tables carry one query each; the result sets
are stored as CSV with the query text and row counts (``queries.json``), then converted to a
OneRoster folder. Its password is the secret ``source_password``, never in the URL."""

from __future__ import annotations

from pathlib import Path

from naviance_pipeline.operations.storage import SnapshotFile, sha256_of
from naviance_pipeline.sources.kinds import SourceKind
from naviance_pipeline.sources.snapshot import (
    DEFAULT_MAPPING,
    SAMPLE_SIZE,
    Snapshot,
    SourceConfigError,
    SourceUnavailable,
    generated,
    mapped_snapshot,
    no_sample,
)

SQL = "sql"  # the result sets and queries.json, inside the snapshot


def capture(config, url, staging, options, say, _remote) -> Snapshot:
    from naviance_pipeline.sources.sis.sql import RESULT_ENCODING

    def read(mapping):
        say(f"running the queries of the mapping {config.mapping_ref!r}")
        return _query_tables(config, mapping, url, staging / SQL, say)

    # Findings name the result-set file of the snapshot (its lines are true), which is read
    # in its own encoding: the mapping's encodings are the export files'.
    return mapped_snapshot(
        config,
        staging,
        options,
        say,
        read,
        file_names=lambda table: f"{SQL}/{table}.csv",
        encoding=RESULT_ENCODING,
    )


def _query_tables(config, mapping, url: str, dest, say):
    from naviance_pipeline.sources.sis.sql import (
        QueryFailed,
        QuerySpec,
        SourceUnreachable,
        snapshot_queries,
    )

    specs = []
    for table in mapping.tables.values():
        if not table.query:
            raise SourceConfigError(
                f"the mapping {mapping.ref!r} has no query for table {table.name!r} "
                f"(tables.{table.name}.query): a SQL source needs one query per table"
            )
        specs.append(QuerySpec(table.name, table.query, tuple(mapping.columns_read(table.name))))
    try:
        records = snapshot_queries(
            url,
            specs,
            Path(dest.path),
            password=config.password,
            query_timeout=config.query_timeout,
            progress=lambda table, rows: say(f"query {table}: {rows:,} rows read"),
        )
    except SourceUnreachable as exc:  # a refused login is configuration: retrying won't help
        raise (SourceUnavailable if exc.transient else SourceConfigError)(str(exc)) from exc
    except (QueryFailed, ValueError) as exc:
        raise SourceConfigError(str(exc)) from exc
    tables, files, queries = {}, [], []
    for record in records:
        path = dest / record.file
        tables[record.table] = path.read_bytes()
        files.append(SnapshotFile(f"{SQL}/{record.file}", len(tables[record.table]), record.sha256))
        queries.append(
            {"table": record.table, "query": record.query, "rows": record.rows}
            | {"columns": list(record.columns)}
        )
    index = dest / "queries.json"
    if index.exists():
        files.append(SnapshotFile(f"{SQL}/queries.json", index.stat().st_size, sha256_of(index)))
    return tables, files, queries


def sample(mapping: str, sample_zip: Path) -> str:
    from naviance_pipeline.sources.sis.sample_export import write_demo_database

    if mapping != DEFAULT_MAPPING:
        raise no_sample(KIND.name, mapping, DEFAULT_MAPPING)
    path = sample_zip.parent / "sample-district.sqlite"
    return "sqlite:///" + generated(path, lambda tmp: write_demo_database(tmp, **SAMPLE_SIZE))


KIND = SourceKind(
    name="sql",
    source_help="a SQLAlchemy URL (password from NAVIANCE_SOURCE_PASSWORD)",
    mapped=True,
    secrets=("source_password",),
    system_name=lambda mapping: "PowerSchool" if mapping in ("", DEFAULT_MAPPING) else "SIS",
    capture=capture,
    sample=sample,
    files=False,  # a database: no export file whose age could be watched
)

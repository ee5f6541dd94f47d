"""Dagster's PostgreSQL storage, holding its connections open (deploy/dagster.yaml's storage).

``dagster-postgres`` opens a new connection for every query outside the webserver: creating
one run writes ~26 "planned" events and executing a small district's run a few hundred more, so
a night of many small districts spent more CPU on connecting (a process per connection on the
server, a SCRAM password exchange on both sides) than on the districts: 436 connections per
run, measured (BENCHMARKS.md). This storage is the same tables and the same configuration
(``postgres_db``), with the connection pool Dagster gives its webserver in every process that
loads the instance: the daemon (run queue, backfills), the run workers, the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
except ModuleNotFoundError:  # a one-machine install has no PostgreSQL storage
    raise ImportError(
        "the PostgreSQL storage needs the deploy extra: pip install 'naviance_pipeline[deploy]' "
        "(uv sync --extra deploy)"
    ) from None

from dagster._serdes.config_class import ConfigurableClassData

# Connections are renewed hourly; a few more are opened while threads query at once (the
# daemon's loops, a run's cancellation thread) and closed when returned.
POOL_RECYCLE_SECONDS = 3600
POOL_OVERFLOW = 4


class PooledPostgresStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` with a pooled connection per process (see the module)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.optimize_for_webserver(
                statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_OVERFLOW
            )

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

"""The few calls the Dagster UI makes to its webserver's GraphQL API, for the UI tests.

Stdlib HTTP only: the tests talk to the webserver exactly as the browser does, one POST per
query, and need no GraphQL client.
"""

from __future__ import annotations

import json
import time
import urllib.request

LOCATION = "naviance_pipeline"
REPOSITORY = "__repository__"  # the repository Dagster makes for a Definitions object
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
}
"""

LOCATION_STATUS = """
query LocationStatus {
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""


class GraphQLError(RuntimeError):
    """The webserver answered with GraphQL errors or refused a mutation."""


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST one query to ``{url}/graphql`` and return its ``data``."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise GraphQLError(json.dumps(answer["errors"])[:2000])
    return answer["data"]


def location_status(url: str, location: str = LOCATION) -> tuple[str, str | None]:
    """(load status, error message or None) of one code location; ("MISSING", None) if absent."""
    entries = graphql(url, LOCATION_STATUS)["workspaceOrError"].get("locationEntries", [])
    for entry in entries:
        if entry["name"] == location:
            loaded = entry["locationOrLoadError"] or {}
            return entry["loadStatus"], loaded.get("message")
    return "MISSING", None


def mark_nux_seen(url: str) -> None:
    """Dismiss the one-time "Join the Dagster community" dialog of a fresh instance, as the
    dialog's Skip button does; it would otherwise cover the first page the browser opens."""
    graphql(url, "mutation { setNuxSeen }")


def launch_partition_run(
    url: str,
    job: str,
    partition: str,
    *,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
) -> str:
    """Launch ``job`` for one date partition as the Launchpad does; return the run id."""
    all_tags = {"dagster/partition": partition, **(tags or {})}
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": job,
        },
        "runConfigData": run_config or {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
    }
    result = graphql(url, LAUNCH_RUN, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise GraphQLError(f"launchRun refused: {json.dumps(result)[:2000]}")
    return result["run"]["runId"]


def run_status(url: str, run_id: str) -> str:
    answer = graphql(url, RUN_STATUS, {"runId": run_id})["runOrError"]
    if answer["__typename"] != "Run":
        raise GraphQLError(f"run {run_id}: {answer.get('message', answer['__typename'])}")
    return answer["status"]


def wait_for_run(url: str, run_id: str, timeout: float = 600, poll: float = 0.5) -> str:
    """Poll the run until it finishes; return SUCCESS, FAILURE or CANCELED. ``timeout`` only
    guards against a run that never ends (nothing asserts how long a run takes)."""
    deadline = time.monotonic() + timeout
    status = run_status(url, run_id)
    while status not in FINISHED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status} after {timeout:.0f} s")
        time.sleep(poll)
        status = run_status(url, run_id)
    return status


PARTITION_STATUSES = """
query PartitionStatuses($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      assetPartitionStatuses {
        __typename
        ... on TimePartitionStatuses { ranges { status startKey endKey } }
      }
    }
  }
}
"""

STEP_FAILURES = """
query StepFailures($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey failureMetadata { description } }
      }
    }
  }
}
"""


def partition_status(url: str, asset: str, partition: str) -> str:
    """What the asset's Partitions view shows for one date, as the UI reads it:
    MATERIALIZED, FAILED or MATERIALIZING; MISSING when no range holds the date."""
    node = graphql(url, PARTITION_STATUSES, {"assetKey": {"path": [asset]}})["assetNodeOrError"]
    if node["__typename"] != "AssetNode":
        raise GraphQLError(f"asset {asset}: {node['__typename']}")
    for span in node["assetPartitionStatuses"]["ranges"]:
        if span["startKey"] <= partition <= span["endKey"]:
            return span["status"]
    return "MISSING"


def step_failures(url: str, run_id: str) -> dict[str, str]:
    """{step key: failure description} of a run, as its run page shows them."""
    logs = graphql(url, STEP_FAILURES, {"runId": run_id})["logsForRun"]
    return {
        e["stepKey"]: (e["failureMetadata"] or {}).get("description") or ""
        for e in logs["events"]
        if e.get("stepKey")
    }

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


LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""

BACKFILL = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status runs { runId status tags { key value } } }
    ... on Error { message }
  }
}
"""

MATERIALIZATIONS = """
query Materializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition
        runId
        timestamp
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on BoolMetadataEntry { boolValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on IntMetadataEntry { intValue }
          ... on PathMetadataEntry { path }
          ... on JsonMetadataEntry { jsonString }
        }
      }
    }
  }
}
"""

CHECKS = """
query Checks($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name } } } }
  }
}
"""

CHECK_EXECUTIONS = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 100) {
    runId status partition evaluation { success partition }
  }
}
"""

PARTITION_TAG = "dagster/partition"
BACKFILL_PENDING = frozenset({"REQUESTED", "CANCELING"})


def launch_backfill(url: str, job: str, partitions: list[str]) -> str:
    """A partition backfill of ``job``, as the job's Partitions tab launches one; its id."""
    params = {
        "selector": {
            "partitionSetName": f"{job}_partition_set",
            "repositorySelector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
            },
        },
        "partitionNames": partitions,
    }
    result = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise GraphQLError(f"launchPartitionBackfill refused: {json.dumps(result)[:2000]}")
    return result["backfillId"]


def wait_for_backfill(
    url: str, backfill_id: str, runs: int, timeout: float = 1200, poll: float = 1
) -> dict[str, tuple[str, str]]:
    """Until the daemon has submitted ``runs`` runs of the backfill and each has ended; return
    {partition: (run id, run status)}. ``timeout`` only guards against a backfill that never
    ends."""
    deadline = time.monotonic() + timeout
    while True:
        answer = graphql(url, BACKFILL, {"backfillId": backfill_id})["partitionBackfillOrError"]
        if answer["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"backfill {backfill_id}: {json.dumps(answer)[:2000]}")
        done = [r for r in answer["runs"] if r["status"] in FINISHED]
        if answer["status"] not in BACKFILL_PENDING and len(done) == runs == len(answer["runs"]):
            dates = [next(t["value"] for t in r["tags"] if t["key"] == PARTITION_TAG) for r in done]
            return {date: (r["runId"], r["status"]) for date, r in zip(dates, done, strict=True)}
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} not over after {timeout:.0f} s: {answer}")
        time.sleep(poll)


def materialization_metadata(url: str, asset: str, partition: str) -> list[dict]:
    """The metadata of each materialization of one date of an asset, oldest first, as
    {label: value} (text, bool, Markdown, int, path or JSON string)."""
    variables = {"assetKey": {"path": [asset]}, "partitions": [partition]}
    answer = graphql(url, MATERIALIZATIONS, variables)["assetOrError"]
    if answer["__typename"] != "Asset":
        raise GraphQLError(f"asset {asset}: {answer['__typename']}")
    events = sorted(answer["assetMaterializations"], key=lambda e: float(e["timestamp"]))
    out = []
    for event in events:
        values = {}
        for entry in event["metadataEntries"]:
            value = next((entry[k] for k in entry if k != "label"), None)
            values[entry["label"]] = value
        out.append(values)
    return out


def check_results(url: str, asset: str, run_id: str) -> dict[str, bool | None]:
    """{check name: passed} for each of the asset's checks as evaluated by one run (None when
    the run did not evaluate it). By run, not by date: Dagster 1.13 stores an in-asset check's
    evaluation with no partition (the date is on the run, and on the check's own metadata) and
    keeps a separate planned row, with the date, that reads SKIPPED."""
    key = {"path": [asset]}
    node = graphql(url, CHECKS, {"assetKey": key})["assetNodeOrError"]
    names = [c["name"] for c in node["assetChecksOrError"]["checks"]]
    results = {}
    for name in names:
        variables = {"assetKey": key, "checkName": name}
        executions = graphql(url, CHECK_EXECUTIONS, variables)["assetCheckExecutions"]
        evaluations = [e["evaluation"] for e in executions if e["runId"] == run_id]
        evaluations = [e for e in evaluations if e]
        results[name] = evaluations[0]["success"] if evaluations else None
    return results

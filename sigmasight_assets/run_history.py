"""What the Dagster instance knows about recent runs (``sigmasight runs``).

For each run, newest first: its partition range (or single partition), status, duration,
and per asset step its time, the rows it wrote (``rows_written`` of its materialization),
its checks passed and failed, and the error of a failed step. Read from the instance's run
records and each run's event log; nothing is recomputed.
"""

from __future__ import annotations

from collections import defaultdict

from dagster import DagsterEventType, DagsterInstance

RANGE_START, RANGE_END, PARTITION = (
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
    "dagster/partition",
)
EVENTS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
}


def _partitions(tags) -> str | None:
    if RANGE_START in tags:
        return f"{tags[RANGE_START]}...{tags[RANGE_END]}"
    return tags.get(PARTITION)


def _root_message(error) -> str:
    """The message of the error the step raised (Dagster wraps it in its own errors)."""
    while (error.cls_name or "").startswith("Dagster") and error.cause is not None:
        error = error.cause
    return error.message.strip()


def run_summaries(instance: DagsterInstance, last: int = 10) -> list[dict]:
    """The ``last`` runs of ``instance``, newest first, as plain dicts (JSON-ready)."""
    out = []
    for record in instance.get_run_records(limit=last):
        run = record.dagster_run
        steps: dict[str, dict] = defaultdict(
            lambda: {"seconds": None, "rows_written": None, "checks_passed": 0, "checks_failed": [], "error": None}
        )
        started: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id, of_type=EVENTS):
            event, step = entry.dagster_event, entry.step_key
            if step is None:  # Dagster emits every event of EVENTS from a step (DagsterEvent.from_step)
                raise ValueError(f"run {run.run_id}: a {event.event_type} event without a step key")
            kind = event.event_type
            if kind == DagsterEventType.STEP_START:
                started[step] = entry.timestamp
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                steps[step]["seconds"] = round(entry.timestamp - started.get(step, entry.timestamp), 2)
                steps[step]["status"] = "success" if kind == DagsterEventType.STEP_SUCCESS else "failure"
                if kind == DagsterEventType.STEP_FAILURE:
                    steps[step]["error"] = _root_message(event.event_specific_data.error)
            elif kind == DagsterEventType.ASSET_MATERIALIZATION and steps[step]["rows_written"] is None:
                rows = event.event_specific_data.materialization.metadata.get("rows_written")
                steps[step]["rows_written"] = None if rows is None else rows.value  # the run's, on every partition
            elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
                evaluation = event.event_specific_data
                if evaluation.passed:
                    steps[step]["checks_passed"] += 1
                else:
                    steps[step]["checks_failed"].append(evaluation.check_name)
        start, end = record.start_time, record.end_time
        out.append(
            {
                "run_id": run.run_id,
                "job": run.job_name,
                "partitions": _partitions(run.tags),
                "status": run.status.value,
                "started": None if start is None else start,
                "seconds": None if start is None or end is None else round(end - start, 2),
                "steps": {k: {"status": v.get("status", "not finished"), **v} for k, v in steps.items()},
            }
        )
    return out


def render(runs: list[dict]) -> str:
    """One block per run: its header line, then a line per step."""
    if not runs:
        return "no runs in this Dagster instance"
    lines = []
    for r in runs:
        took = "" if r["seconds"] is None else f" in {r['seconds']:.1f} s"
        lines.append(f"{r['run_id'][:8]}  {r['status']:<9} {r['partitions'] or '(unpartitioned)'}{took}  [{r['job']}]")
        for step, s in r["steps"].items():
            checks = f"checks {s['checks_passed']} passed" + (
                f", failed: {', '.join(s['checks_failed'])}" if s["checks_failed"] else ""
            )
            rows = "" if s["rows_written"] is None else f", {s['rows_written']} rows"
            took = "" if s["seconds"] is None else f" {s['seconds']:.2f} s"
            lines.append(f"    {step:<22} {s['status']:<8}{took}{rows}, {checks}")
            if s["error"]:
                lines.append(f"        error: {s['error'].splitlines()[0][:300]}")
    return "\n".join(lines)

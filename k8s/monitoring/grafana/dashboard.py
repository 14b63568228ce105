#!/usr/bin/env python3
"""Build the docket Grafana dashboard (docket.json) from the queries below.

Every PromQL expression the dashboard uses is in QUERIES, so a renamed metric
or label is one edit here, then:

    python3 k8s/monitoring/grafana/dashboard.py            # rewrite docket.json
    python3 k8s/monitoring/grafana/dashboard.py --check    # fail if docket.json is stale,
                                                           # and parse every query with promtool

docket.json is committed because Grafana (compose and the k8s ConfigMap)
loads it as is; this script is the source of truth.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "docket.json"

# Work queues (what the stages consume), as opposed to delay/hold/parked.
WORK_QUEUES = r"patients(\\.urgent)?|docket\\.(task|search|status|fetch|store|convert|report|control)(\\.urgent)?"
# DocEx endpoints that spend the search budget (searches + archive downloads).
# Must match the `endpoint` label the DocEx client gives those two calls.
DOCEX_BUDGET_ENDPOINTS = "search|archive"

# --- every query of the dashboard ------------------------------------------
QUERIES: dict[str, str] = {
    # runs
    "runs_started": "sum(increase(pipeline_runs_started_total[$__range]))",
    "runs_joined": "sum(increase(pipeline_runs_joined_total[$__range]))",
    "runs_finished_by_status": "sum by (status) (increase(pipeline_runs_finished_total[$__range]))",
    "parked_now": 'sum(rabbitmq_detailed_queue_messages{queue="docket.parked"}) or vector(0)',
    "runs_started_per_min": "sum(rate(pipeline_runs_started_total[$__rate_interval])) * 60",
    "runs_joined_per_min": "sum(rate(pipeline_runs_joined_total[$__rate_interval])) * 60",
    "runs_finished_per_min": "sum by (status) (rate(pipeline_runs_finished_total[$__rate_interval])) * 60",
    # queues
    "queue_ready": f'sum by (queue) (rabbitmq_detailed_queue_messages_ready{{queue=~"{WORK_QUEUES}|docket\\\\.parked"}})',
    "queue_unacked": f'sum by (queue) (rabbitmq_detailed_queue_messages_unacked{{queue=~"{WORK_QUEUES}"}})',
    "queue_waiting": 'sum by (queue) (rabbitmq_detailed_queue_messages{queue=~"docket\\\\.(delay|hold)\\\\..*"})',
    "queue_consumers": f'sum by (queue) (rabbitmq_detailed_queue_consumers{{queue=~"{WORK_QUEUES}"}})',
    "stage_throughput": "sum by (stage, outcome) (rate(pipeline_messages_total[$__rate_interval]))",
    "stage_duration_p95": "histogram_quantile(0.95, sum by (stage, le) (rate(pipeline_message_duration_seconds_bucket[$__rate_interval])))",
    "stage_inflight": "sum by (stage) (pipeline_inflight_messages)",
    # outside APIs: budget use against the limit. Admissions by the shared
    # limiter are what the budget counts (one per call, whichever replica).
    "docex_budget_used_per_min": 'sum(increase(pipeline_limiter_wait_seconds_count{budget="docex_search"}[1m]))',
    "docex_budget_sent_per_min": f'sum(increase(pipeline_outside_requests_total{{api="docex", endpoint=~"{DOCEX_BUDGET_ENDPOINTS}"}}[1m]))',
    # limits as each service is configured (max: the fleet should agree; an
    # alert fires when it does not)
    "docex_budget_limit_per_min": 'max(pipeline_budget_limit_per_second{budget="docex_search"}) * 60',
    "fast_budgets_used_per_s": 'sum by (budget) (rate(pipeline_limiter_wait_seconds_count{budget=~"docex_status|tasktracker"}[1m]))',
    "fast_budgets_limit_per_s": 'max by (budget) (pipeline_budget_limit_per_second{budget=~"docex_status|tasktracker"})',
    "limiter_wait_p50": "histogram_quantile(0.5, sum by (budget, le) (rate(pipeline_limiter_wait_seconds_bucket[$__rate_interval])))",
    "limiter_wait_p95": "histogram_quantile(0.95, sum by (budget, le) (rate(pipeline_limiter_wait_seconds_bucket[$__rate_interval])))",
    "limiter_deferred": "sum by (budget) (rate(pipeline_limiter_deferred_total[$__rate_interval]))",
    # Slots given up by callers that woke more than LIMIT_LATE after them (CPU-starved).
    "limiter_late": "sum by (budget) (rate(pipeline_limiter_late_total[$__rate_interval]))",
    # every replica reports the shared (Redis) breaker; max = the fleet's view
    "breaker_state": "max by (api) (pipeline_breaker_state)",
    "outside_errors": 'sum by (api, outcome) (rate(pipeline_outside_requests_total{outcome!="ok"}[$__rate_interval]))',
    "outside_latency_p95": "histogram_quantile(0.95, sum by (api, endpoint, le) (rate(pipeline_outside_request_duration_seconds_bucket[$__rate_interval])))",
    # a fleet-wide count read from shared state: max, not sum, over replicas
    "docex_jobs_in_flight": "max(pipeline_docex_jobs_in_flight)",
    "docex_max_jobs": "max(pipeline_docex_max_jobs)",
    # conversions
    "documents_per_min": "sum by (kind, outcome) (rate(pipeline_documents_total[$__rate_interval])) * 60",
    "documents_failed_ratio": 'sum(increase(pipeline_documents_total{outcome="failed"}[$__range])) / sum(increase(pipeline_documents_total[$__range]))',
    "conversion_p50": "histogram_quantile(0.5, sum by (kind, le) (rate(pipeline_conversion_duration_seconds_bucket[$__rate_interval])))",
    "conversion_p95": "histogram_quantile(0.95, sum by (kind, le) (rate(pipeline_conversion_duration_seconds_bucket[$__rate_interval])))",
    "convert_inflight": 'sum by (instance, pod) (pipeline_inflight_messages{stage="convert"})',
    "convert_replicas": 'count(up{job="docket", service="convert"} == 1)',
    "convert_prefetch": 'max by (instance, pod) (pipeline_prefetch{stage="convert", queue="docket.convert"})',
    "convert_memory": 'sum by (pod) (container_memory_working_set_bytes{container="convert"})',
    "convert_memory_limit": 'max by (pod) (container_spec_memory_limit_bytes{container="convert"})',
    "convert_oom": 'sum by (pod) (increase(container_oom_events_total{container="convert"}[$__rate_interval]))',
    # warm doc and office workers: started, retired as failed or recycled
    "converter_worker_events": "sum by (pool, event) (increase(pipeline_converter_workers_total[$__rate_interval]))",
    "converter_workers_idle": "sum by (pool) (pipeline_converter_workers_idle)",
    # batches: every search replica exports the same counts (max, not sum)
    "batch_waiting": 'max by (batch) (pipeline_batch_runs{state="waiting"})',
    "batch_working": 'max by (batch) (pipeline_batch_runs{state="working"})',
    "batch_done": 'sum by (batch) (max by (batch, state) (pipeline_batch_runs{state=~"found|not_found|cancelled"}))',
    "batch_paused": 'max by (batch) (pipeline_batch_runs{state=~"paused|parked"})',
    "batch_eta": "max by (batch) (pipeline_batch_eta_seconds)",
    # health
    "stage_up": 'sum by (service) (up{job="docket"})',
    "broker_connected": "min by (service) (pipeline_broker_connected)",
    "outbox_pending": "max(pipeline_outbox_pending)",
}

# Values used for the $variables when promtool parses the queries.
CHECK_VARS = {
    "$__rate_interval": "1m",
    "$__range": "1h",
}

DS = {"type": "prometheus", "uid": "${datasource}"}


class Layout:
    """Places panels left to right in 24-column rows."""

    def __init__(self) -> None:
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict] = []

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append({
            "type": "row", "id": self._id(), "title": title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": [],
        })
        self.y += 1

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x, self.row_h = 0, 0

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel.setdefault("datasource", DS)
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def target(key: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    return {
        "datasource": DS, "refId": ref, "expr": QUERIES[key], "legendFormat": legend or "__auto",
        "range": not instant, "instant": instant,
    }


def timeseries(title: str, targets: list[dict], unit: str = "short", desc: str = "",
               stack: bool = False, overrides: list | None = None, minimum: float | None = 0) -> dict:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 30,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    defaults: dict = {"unit": unit, "custom": custom}
    if minimum is not None:
        defaults["min"] = minimum
    return {
        "type": "timeseries", "title": title, "description": desc, "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title: str, targets: list[dict], unit: str = "short", desc: str = "",
         steps: list | None = None, mappings: list | None = None) -> dict:
    return {
        "type": "stat", "title": title, "description": desc, "targets": targets,
        "fieldConfig": {"defaults": {
            "unit": unit, "mappings": mappings or [],
            "thresholds": {"mode": "absolute", "steps": steps or [{"color": "green", "value": None}]},
        }, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "none", "textMode": "auto", "justifyMode": "auto",
                    "orientation": "auto"},
    }


LIMIT_STYLE = [
    {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
    {"id": "custom.fillOpacity", "value": 0},
]


def dashed_limit(name: str) -> dict:
    """An override that draws the series called `name` as a red dashed limit line."""
    return {"matcher": {"id": "byName", "options": name}, "properties": LIMIT_STYLE}


def dashed_limits(regex: str) -> dict:
    """The same for every series whose name matches `regex`."""
    return {"matcher": {"id": "byRegexp", "options": regex}, "properties": LIMIT_STYLE}


def build() -> dict:
    L = Layout()
    red_above_zero = [{"color": "green", "value": None}, {"color": "red", "value": 1}]

    L.row("Runs")
    L.add(stat("Runs started", [target("runs_started", instant=True)],
               desc="New runs in the selected time range (a second request for a patient in progress joins instead)."), 4, 4)
    L.add(stat("Runs joined", [target("runs_joined", instant=True)]), 4, 4)
    L.add(stat("Runs finished", [target("runs_finished_by_status", "{{status}}", instant=True)]), 8, 4)
    L.add(stat("Parked messages (now)", [target("parked_now", instant=True)], steps=red_above_zero,
               desc="Messages in docket.parked. `docket parked list` shows why; `docket parked replay` retries."), 4, 4)
    L.add(stat("DocEx jobs in flight / cap", [target("docex_jobs_in_flight", "in flight", "A", instant=True),
                                              target("docex_max_jobs", "cap", "B", instant=True)],
               desc="Jobs between search and download, and their cap (DOCEX_MAX_JOBS)."), 4, 4)
    L.add(timeseries("Runs per minute", [
        target("runs_started_per_min", "started", "A"),
        target("runs_joined_per_min", "joined", "B"),
        target("runs_finished_per_min", "finished {{status}}", "C"),
    ], unit="short", desc="per minute"), 24, 7)

    L.row("Queues")
    L.add(timeseries("Ready messages by queue", [target("queue_ready", "{{queue}}")],
                     desc="Waiting to be consumed (work queues and docket.parked)."), 12, 8)
    L.add(timeseries("Unacked messages by queue", [target("queue_unacked", "{{queue}}")],
                     desc="Delivered to a stage and being handled. Convert holds up to CONVERT_PREFETCH + 1 per lane "
                          "and replica."), 12, 8)
    L.add(timeseries("Waiting in delay and hold queues", [target("queue_waiting", "{{queue}}")], stack=True,
                     desc="Backoff: jobs not ready yet, budgets spent for now, outside APIs down (hold)."), 12, 8)
    L.add(timeseries("Consumers by queue", [target("queue_consumers", "{{queue}}")]), 12, 8)
    L.add(timeseries("Messages handled by stage and outcome", [target("stage_throughput", "{{stage}} {{outcome}}")],
                     unit="ops"), 12, 8)
    L.add(timeseries("Handling time p95 by stage", [target("stage_duration_p95", "{{stage}}")], unit="s"), 6, 8)
    L.add(timeseries("In flight by stage", [target("stage_inflight", "{{stage}}")]), 6, 8)

    L.row("Outside APIs")
    L.add(timeseries("DocEx searches + downloads per minute vs limit", [
        target("docex_budget_used_per_min", "admitted by limiter", "A"),
        target("docex_budget_sent_per_min", "sent to DocEx", "B"),
        target("docex_budget_limit_per_min", "limit", "C"),
    ], desc="Requests in the last minute against DOCEX_SEARCH_RATE (shared by every replica).",
        overrides=[dashed_limit("limit")]), 12, 8)
    L.add(timeseries("DocEx status and TaskTracker per second vs limit", [
        target("fast_budgets_used_per_s", "{{budget}}", "A"),
        target("fast_budgets_limit_per_s", "limit {{budget}}", "B"),
    ], unit="reqps", desc="Requests per second against DOCEX_STATUS_RATE and TASKTRACKER_RATE.",
        overrides=[dashed_limits("limit.*")]), 12, 8)
    L.add(timeseries("Limiter wait", [
        target("limiter_wait_p50", "p50 {{budget}}", "A"),
        target("limiter_wait_p95", "p95 {{budget}}", "B"),
    ], unit="s", desc="How long an admitted call waited for its slot."), 8, 8)
    L.add(timeseries("Deferred or late at the limiter", [
        target("limiter_deferred", "deferred {{budget}}", "A"),
        target("limiter_late", "late {{budget}}", "B"),
    ], unit="ops", desc="Deferred: calls whose wait was too long to hold, sent round a delay queue instead. "
                        "Late: slots given up because the caller woke more than LIMIT_LATE after them "
                        "(a CPU limit throttling the service); it reserved again."), 8, 8)
    L.add({
        "type": "state-timeline", "title": "Circuit breakers", "targets": [target("breaker_state", "{{api}}")],
        "fieldConfig": {"defaults": {
            "mappings": [{"type": "value", "options": {
                "0": {"text": "closed", "color": "green", "index": 0},
                "1": {"text": "half-open", "color": "yellow", "index": 1},
                "2": {"text": "open", "color": "red", "index": 2}}}],
            "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
            "color": {"mode": "thresholds"}}, "overrides": []},
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                    "legend": {"showLegend": False}},
    }, 8, 8)
    L.add(timeseries("Outside errors by outcome", [target("outside_errors", "{{api}} {{outcome}}")], unit="reqps",
                     stack=True, desc="Everything but ok: client_error, server_error, timeout, connect_error, rate_limited (429)."), 12, 8)
    L.add(timeseries("Outside latency p95", [target("outside_latency_p95", "{{api}} {{endpoint}}")], unit="s"), 12, 8)

    L.row("Batches")
    L.add(timeseries("Runs waiting per batch", [target("batch_waiting", "{{batch}}")],
                     desc="Waiting for their task or their search (`docket batches`)."), 8, 8)
    L.add(timeseries("Runs done per batch", [target("batch_done", "{{batch}}")],
                     desc="Found, not found or cancelled. Working: searched, not yet reported."), 8, 8)
    L.add(timeseries("Paused or parked per batch", [target("batch_paused", "{{batch}}")],
                     desc="Runs a pause holds (`docket resume`) or parked for an operator (`docket parked list`)."), 8, 8)
    L.add(stat("Estimated time to drain", [target("batch_eta", "{{batch}}", instant=True)], unit="s",
               desc="From the work left and the budgets at their current settings (the search+download budget "
                    "is usually the bound; `docket batches` names it). 0 when done."), 16, 6)
    L.add(timeseries("Runs working per batch", [target("batch_working", "{{batch}}")]), 8, 6)

    L.row("Conversions")
    L.add(timeseries("Documents per minute by kind and outcome", [target("documents_per_min", "{{kind}} {{outcome}}")],
                     stack=True), 10, 8)
    L.add(stat("Failed share (range)", [target("documents_failed_ratio", instant=True)], unit="percentunit",
               steps=[{"color": "green", "value": None}, {"color": "orange", "value": 0.05}, {"color": "red", "value": 0.2}]), 4, 8)
    L.add(timeseries("Conversion time by kind", [
        target("conversion_p50", "p50 {{kind}}", "A"),
        target("conversion_p95", "p95 {{kind}}", "B"),
    ], unit="s"), 10, 8)
    L.add(timeseries("Convert in flight", [
        target("convert_inflight", "{{instance}} {{pod}}", "A"),
        target("convert_replicas", "replicas", "B"),
        target("convert_prefetch", "limit {{instance}} {{pod}}", "C"),
    ], desc="Messages held per replica (both lanes), against the normal lane's prefetch: "
                          "CONVERT_PREFETCH conversions at once, and one message more per lane waiting for the "
                          "next free slot.", overrides=[dashed_limits("limit.*")]), 8, 8)
    L.add(timeseries("Convert memory vs limit", [
        target("convert_memory", "{{pod}}", "A"),
        target("convert_memory_limit", "limit {{pod}}", "B"),
    ], unit="bytes", desc="Container working set (cAdvisor). The limit is the real cap on LibreOffice.",
        overrides=[dashed_limits("limit.*")]), 10, 8)
    L.add(timeseries("Convert OOM kills", [target("convert_oom", "{{pod}}")]), 6, 8)
    L.add(timeseries("Converter workers started and retired", [target("converter_worker_events", "{{pool}} {{event}}")],
                     desc="Warm doc and office (LibreOffice) workers. failed: retired because a document hung, "
                          "crashed or overran one (that document fails with its reason); recycled: retired after "
                          "CONVERT_OFFICE_MAX_DOCS documents or past CONVERT_OFFICE_MAX_RSS (doc workers: "
                          "CONVERT_DOC_MAX_DOCS, CONVERT_DOC_MAX_RSS). A steady rate of failed is a type of document LibreOffice cannot take."), 16, 8)
    L.add(timeseries("Warm workers idle", [target("converter_workers_idle", "{{pool}}")],
                     desc="Workers waiting for a document, per pool (at most CONVERT_PREFETCH per replica)."), 8, 8)

    L.row("Health")
    L.add(stat("Replicas up by stage", [target("stage_up", "{{service}}", instant=True)],
               steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}]), 10, 4)
    L.add(stat("Broker connected", [target("broker_connected", "{{service}}", instant=True)],
               steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
               mappings=[{"type": "value", "options": {"0": {"text": "no"}, "1": {"text": "yes"}}}]), 8, 4)
    L.add(stat("Outbox pending", [target("outbox_pending", "pending", instant=True)],
               steps=[{"color": "green", "value": None}, {"color": "orange", "value": 100}, {"color": "red", "value": 1000}]), 6, 4)

    return {
        "uid": "docket-pipeline",
        "title": "docket pipeline",
        "description": "Runs, queues, outside budgets and conversions. Generated by k8s/monitoring/grafana/dashboard.py.",
        "tags": ["docket"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
        ]},
        "panels": L.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def check_queries() -> int:
    """Parse every query with `promtool check rules` (as recording rules)."""
    promtool = shutil.which("promtool")
    if not promtool:
        print("promtool not found: the query syntax check cannot run (apt-get install prometheus)", file=sys.stderr)
        return 1
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for key, expr in QUERIES.items():
        for var, value in CHECK_VARS.items():
            expr = expr.replace(var, value)
        if "$" in re.sub(r"\{\{.*?\}\}", "", expr):
            print(f"query {key} uses an unknown variable: {expr}", file=sys.stderr)
            return 1
        lines += [f"      - record: dashboard:{key}", f"        expr: {json.dumps(expr)}"]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        return subprocess.run([promtool, "check", "rules", f.name]).returncode
    finally:
        pathlib.Path(f.name).unlink()


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python3 {pathlib.Path(__file__).name}", file=sys.stderr)
            return 1
        return check_queries()
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

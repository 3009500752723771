"""A self-contained HTML monitoring report an engineer decides from (plotly.js inlined; no network to view).

From top to bottom:

- a verdict banner: the latest window judged exactly as the watcher judges it (``evaluate_window`` on
  ``observe_latest_window``): healthy, breach or not enough data, with the thresholds and evidence that decided;
- one figure whose panels share one time axis, every window drawn at its midpoint and spanning its width (so a
  single window reads as one day, not as sub-millisecond ticks): model quality per version with the spec's
  thresholds and a marker where the champion changed; BASELINE drift of every feature (numeric ones by PSI,
  categorical ones by Jensen-Shannon distance, or whatever the spec's drift thresholds name) coloured by its
  ratio to the feature's threshold, so 1.0 is the breach line for every feature; examples and requests per
  window, counted separately; latency p50/p99 and error rate per window from the payload table
  (``execution_duration_ms``, ``status_code``);
- the champion history from the promotion audit table, one readable row per change.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from workloads.metric_names import ALIASES, metric_value
from workloads.monitoring.granularity import DEFAULT_GRANULARITY, parse_granularity
from workloads.monitoring.metrics import (
    EVALUATED_COLUMNS,
    drift_values,
    granularity_sql,
    quality_values,
    read_metric_tables,
)
from workloads.monitoring.schema import ALL_MODELS, BASELINE, INPUT, TABLE_COLUMN
from workloads.ports.tables import RowFilter, SparkTables, Tables, get_tables, split_name
from workloads.settings import Settings
from workloads.specs import MODEL_ID_COLUMN, ModelSpec

PROMOTIONS_TABLE = "model_promotions"
VERDICT_COLOURS = {"healthy": "#1b7f3b", "breach": "#b3261e", "not enough data": "#9a6700", "unknown": "#9a6700"}


def _windows(table_rows: pd.DataFrame) -> pd.DataFrame:
    """Each window once: start, end, midpoint (where it is drawn) and width in ms (how wide a bar is)."""
    spans = table_rows[["window_start", "window_end"]].drop_duplicates().sort_values("window_start")
    spans["mid"] = spans["window_start"] + (spans["window_end"] - spans["window_start"]) / 2
    spans["width_ms"] = (spans["window_end"] - spans["window_start"]).dt.total_seconds() * 1000
    return spans.reset_index(drop=True)


def _verdict(settings: Settings, spec: ModelSpec, granularity: str, tables: Tables):
    from workloads.watcher.evaluation import evaluate_window
    from workloads.watcher.observation import observe_latest_window

    return evaluate_window(spec, observe_latest_window(settings, spec, granularity, tables=tables))


def _last_action(changes: pd.DataFrame, evaluation) -> tuple[str, bool]:
    """The latest champion change as a sentence, and whether it came after the judged window began (so the
    window's breach has already been acted on)."""
    if changes.empty or "_at" not in changes or changes["_at"].isna().all():
        return "", False
    last = changes.loc[changes["_at"].idxmax()]
    action = str(last.get("action", "promote"))
    what = {"promote": "retrained and promoted", "rollback": "rolled back to",
            "copy_promote": "copied from another environment and promoted"}.get(action, action)
    sentence = f"last action: {what} v{last.get('to_version')} at {last['_at']:%Y-%m-%d %H:%M} UTC"
    start = pd.Timestamp(evaluation.window_start) if evaluation.window_start else None
    if start is not None and start.tzinfo is None:
        start = start.tz_localize("UTC")
    return sentence, start is not None and last["_at"] >= start


def _banner(evaluation, changes: pd.DataFrame | None = None) -> str:
    colour = VERDICT_COLOURS.get(evaluation.health, "#555")
    decided = [c for c in evaluation.checks if c.status == "breach"] or \
              [c for c in evaluation.checks if c.status in ("too_few_rows", "missing")] or \
              [c for c in evaluation.checks if c.scope == "quality"]
    items = "".join(f"<li>{html.escape(c.line())}</li>" for c in decided[:40])
    if len(decided) > 40:
        items += f"<li>and {len(decided) - 40} more</li>"
    extra = "".join(f"<li>{html.escape(r)}</li>" for r in evaluation.reasons
                    if not any(r == c.line() for c in decided))[:4000]
    window = html.escape(f"{evaluation.window_start or '-'} to {evaluation.window_end or '-'}")
    action, acted = _last_action(changes if changes is not None else pd.DataFrame(), evaluation)
    if evaluation.retrain_needed:
        then = f" — acted on ({action.removeprefix('last action: ')})" if acted else " — retrain needed"
    else:
        then = ""
    shown_action = f'<p class="last-action">{html.escape(action)}</p>' if action else ""
    return (f'<div id="verdict" class="verdict" style="border-left:8px solid {colour};padding:8px 16px;'
            f'background:#f7f7f7;margin-bottom:16px"><h2 style="margin:4px 0;color:{colour}">Verdict: '
            f'{html.escape(evaluation.health)}{html.escape(then)}</h2>{shown_action}'
            f"<p>latest window {window}; what decided it:</p><ul>{items}{extra}</ul></div>")


def _payload_stats(settings: Settings, spec: ModelSpec, spans: pd.DataFrame, tables: Tables) -> pd.DataFrame:
    """Per window: requests, errors, latency p50/p99 from the payload table.

    Only the three columns used and only the rows from the first window's start to the last window's end are read
    (a ``request_time`` filter the tables port pushes down). A Spark port aggregates per window in Spark SQL
    (:func:`payload_window_stats_sql`): one row per window reaches the driver, whatever the traffic.
    """
    out = spans[["window_start"]].copy()
    for column in ("requests", "error_rate", "p50_ms", "p99_ms"):
        out[column] = np.nan
    name = settings.table(spec.payload_table)
    if spans.empty or not tables.exists(name):
        return out
    period = RowFilter("request_time", ((spans["window_start"].min(), spans["window_end"].max()),))
    columns = ["request_time", "status_code", "execution_duration_ms"]
    if isinstance(tables, SparkTables):
        return _payload_stats_in_spark(tables, name, columns, period, spans, out)
    payload = tables.read(name, columns=columns, where=period)
    if payload.empty:
        return out
    times = pd.to_datetime(payload["request_time"], utc=True)
    for i, span in spans.iterrows():
        inside = payload[(times >= span["window_start"]) & (times < span["window_end"])]
        if inside.empty:
            continue
        durations = inside["execution_duration_ms"].astype(float)
        out.loc[i, "requests"] = len(inside)
        out.loc[i, "error_rate"] = float((inside["status_code"].astype(int) != 200).mean())
        out.loc[i, "p50_ms"] = float(np.percentile(durations, 50))
        out.loc[i, "p99_ms"] = float(np.percentile(durations, 99))
    return out


def payload_window_stats_sql(payload: str, windows: str) -> str:
    """Spark SQL: per window of ``windows`` (``window_index``, ``window_start``, ``window_end``) the payload rows of
    ``payload`` inside it: ``requests``, ``error_rate`` (status not 200) and the exact latency percentiles
    (``percentile`` interpolates linearly between the closest ranks, as numpy's default does). Windows without
    requests have no row."""
    duration = "CAST(p.`execution_duration_ms` AS DOUBLE)"
    return f"""SELECT w.window_index, count(*) AS requests,
  avg(CASE WHEN CAST(p.`status_code` AS INT) <> 200 THEN 1D ELSE 0D END) AS error_rate,
  percentile({duration}, 0.5) AS p50_ms, percentile({duration}, 0.99) AS p99_ms
FROM {payload} AS p JOIN {windows} AS w
  ON p.`request_time` >= w.window_start AND p.`request_time` < w.window_end
GROUP BY w.window_index"""


def _payload_stats_in_spark(tables: SparkTables, name: str, columns: list[str], period: RowFilter,
                            spans: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
    """:func:`_payload_stats` in Spark: the windows go to Spark (a few rows), one aggregate row per window returns."""
    suffix = split_name(name)[2]
    tables.frame(name, columns=columns, where=period).createOrReplaceTempView(f"_mlops_report_payload_{suffix}")
    windows = spans[["window_start", "window_end"]].reset_index(drop=True)
    windows.insert(0, "window_index", range(len(windows)))
    tables.spark.createDataFrame(windows).createOrReplaceTempView(f"_mlops_report_windows_{suffix}")
    rows = tables.spark.sql(payload_window_stats_sql(f"_mlops_report_payload_{suffix}",
                                                     f"_mlops_report_windows_{suffix}")).collect()
    for row in rows:
        i = out.index[int(row["window_index"])]
        for column in ("requests", "error_rate", "p50_ms", "p99_ms"):
            out.loc[i, column] = float(row[column])
    return out


def _drift_grid(spec: ModelSpec, drift: pd.DataFrame, gran: str, spans: pd.DataFrame):
    """(features, ratio to threshold per feature x window, hover text): 1.0 is each feature's breach line."""
    d = drift[(drift["granularity"] == gran) & (drift["drift_type"] == BASELINE) & drift["slice_key"].isna()
              & (drift[MODEL_ID_COLUMN] == ALL_MODELS) & drift["column_name"].isin(spec.feature_names)]
    features, ratios, texts = [], [], []
    starts = list(spans["window_start"])
    for feature in spec.feature_names:
        rows = d[d["column_name"] == feature]
        if rows.empty:
            continue
        by_start = {r["window_start"]: drift_values(r) for _, r in rows.iterrows()}
        row_ratio, row_text = [], []
        for start in starts:
            values = by_start.get(start, {})
            best = None
            for metric, threshold in spec.drift_thresholds.items():
                value = metric_value(values, metric)
                if value is not None:
                    ratio = value / threshold.value if threshold.value else np.inf
                    if best is None or ratio > best[0]:
                        best = (ratio, metric, value, threshold.value)
            if best is None:
                row_ratio.append(None)
                row_text.append("no drift metric")
            else:
                ratio, metric, value, limit = best
                row_ratio.append(ratio)
                p = values.get("chi_squared_test.pvalue", values.get("ks_test.pvalue"))
                row_text.append(f"{metric} {value:.3g} (max {limit:g}, {ratio:.2f}x)"
                                + (f", p={p:.2g}" if p is not None else ""))
        features.append(feature)
        ratios.append(row_ratio)
        texts.append(row_text)
    return features, ratios, texts


def _champion_changes(settings: Settings, spec: ModelSpec, tables: Tables) -> pd.DataFrame:
    name = settings.table(PROMOTIONS_TABLE)
    if not tables.exists(name):
        return pd.DataFrame()
    frame = tables.read(name)
    if "model" in frame.columns:
        frame = frame[frame["model"].astype(str).isin([spec.name, settings.registered_model(spec.name)])]
    if "env" in frame.columns:
        frame = frame[frame["env"].isna() | (frame["env"] == settings.env)]
    time_column = "at" if "at" in frame.columns else ("when" if "when" in frame.columns else None)
    if time_column:
        frame = frame.assign(_at=pd.to_datetime(frame[time_column], utc=True)).sort_values("_at")
    return frame.reset_index(drop=True)


def build_report(settings: Settings, spec: ModelSpec, granularity: str = DEFAULT_GRANULARITY,
                 tables: Tables | None = None) -> str:
    """The report as one HTML document."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    tables = tables or get_tables(settings)
    gran = parse_granularity(granularity).text
    profile, drift = read_metric_tables(settings, spec, tables, columns=EVALUATED_COLUMNS,
                                        spark_where=granularity_sql(gran))
    table_rows = profile[(profile["granularity"] == gran) & (profile["log_type"] == INPUT)
                         & profile["slice_key"].isna() & (profile["column_name"] == TABLE_COLUMN)]
    table_rows = table_rows.sort_values("window_start")
    spans = _windows(table_rows)
    changes = _champion_changes(settings, spec, tables)
    features, ratios, hover = _drift_grid(spec, drift, gran, spans)
    stats = _payload_stats(settings, spec, spans, tables)

    metrics = list(spec.thresholds)
    titles = [f"{m} ({ALIASES.get(m, m)}) per {gran} window" for m in metrics]
    titles += ["Drift against the baseline (value / threshold; 1.0 = breach line)",
               "Examples and requests per window", "Latency p50 / p99 (ms) and error rate"]
    heights = [1.0] * len(metrics) + [max(1.2, 0.12 * len(features))] + [0.8, 0.8]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.045,
                        subplot_titles=titles, row_heights=heights,
                        specs=[[{}]] * (len(titles) - 1) + [[{"secondary_y": True}]])
    mid_of = dict(zip(spans["window_start"], spans["mid"], strict=True))

    # Model quality per version, threshold lines, champion changes marked.
    for row, metric in enumerate(metrics, start=1):
        threshold = spec.thresholds[metric]
        # "all versions" last, drawn thicker: on top of a single version's identical line, not hidden by it.
        groups = sorted(table_rows.groupby(MODEL_ID_COLUMN), key=lambda g: g[0] == ALL_MODELS)
        palette = ["#1565c0", "#ef6c00", "#2e7d32", "#6d4c41", "#00838f"]
        for index, (version, rows) in enumerate(groups):
            values = [metric_value(quality_values(r), metric) for _, r in rows.iterrows()]
            everyone = version == ALL_MODELS
            fig.add_trace(go.Scatter(
                x=[mid_of[s] for s in rows["window_start"]], y=values, mode="lines+markers",
                name="all versions" if everyone else f"version {version}", legendgroup=str(version),
                showlegend=row == 1, marker={"size": 10 if everyone else 6},
                line={"width": 4 if everyone else 2, "dash": None if everyone else "dot",
                      "color": "#212121" if everyone else palette[index % len(palette)]}), row=row, col=1)
        fig.add_hline(y=threshold.value, line_dash="dash", line_color="red", row=row, col=1,
                      annotation_text=f"{threshold.direction} {threshold.value:g}")
    for position, (_, change) in enumerate(changes.iterrows()):
        if "_at" not in change or pd.isna(change["_at"]):
            continue
        label = f"{change.get('action', 'change')}: v{change.get('to_version')} champion"
        for row in range(1, len(metrics) + 1):
            fig.add_vline(x=change["_at"], line_color="#6a1b9a", line_dash="dot", row=row, col=1)
        # labels of successive changes stack downwards: two changes minutes apart must not print over each other
        step = position % 4
        fig.add_annotation(x=change["_at"], y=1 - 0.12 * step, yref="y domain", text=html.escape(label),
                           showarrow=False,
                           font={"color": "#6a1b9a", "size": 11}, xanchor="left", row=1, col=1,
                           name="champion-change")

    # Drift heatmap on the same axis: one cell per window, centred on its midpoint.
    drift_row = len(metrics) + 1
    if features:
        fig.add_trace(go.Heatmap(
            # Cell edges, not centres: each cell spans exactly its window (one window included).
            z=ratios, x=[*spans["window_start"], spans["window_end"].iloc[-1]], y=features, text=hover, hovertemplate="%{y}: %{text}<extra></extra>",
            zmin=0, zmax=2, colorscale=[[0, "#e8f5e9"], [0.45, "#fff59d"], [0.5, "#ffb74d"], [1, "#b71c1c"]],
            colorbar={"title": "x threshold", "len": 0.25, "y": 0.45}, showscale=True), row=drift_row, col=1)

    # Examples (monitor rows) and requests (payload rows), separately.
    star = table_rows[table_rows[MODEL_ID_COLUMN] == ALL_MODELS]
    volume_row = drift_row + 1
    fig.add_trace(go.Bar(x=[mid_of[s] for s in star["window_start"]], y=star["count"], name="examples",
                         width=list(spans["width_ms"] * 0.45), offset=-0.45 * spans["width_ms"].iloc[0]
                         if len(spans) else None, marker_color="#1565c0"), row=volume_row, col=1)
    fig.add_trace(go.Bar(x=list(spans["mid"]), y=stats["requests"], name="requests",
                         width=list(spans["width_ms"] * 0.45), offset=0, marker_color="#90caf9"),
                  row=volume_row, col=1)

    # Latency and error rate.
    latency_row = volume_row + 1
    fig.add_trace(go.Scatter(x=list(spans["mid"]), y=stats["p50_ms"], name="latency p50 (ms)", mode="lines+markers"),
                  row=latency_row, col=1)
    fig.add_trace(go.Scatter(x=list(spans["mid"]), y=stats["p99_ms"], name="latency p99 (ms)", mode="lines+markers"),
                  row=latency_row, col=1)
    fig.add_trace(go.Scatter(x=list(spans["mid"]), y=stats["error_rate"], name="error rate", mode="lines+markers",
                             line={"dash": "dash", "color": "#b3261e"}), row=latency_row, col=1, secondary_y=True)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=latency_row, col=1, secondary_y=True)
    if stats["requests"].isna().all():
        fig.add_annotation(text="no requests in the payload table for these windows", showarrow=False,
                           x=0.5, y=0.5, xref="x domain", yref="y domain", row=latency_row, col=1)

    if len(spans):  # the axis spans whole windows: one window reads as its day, not as milliseconds
        pad = (spans["window_end"].iloc[-1] - spans["window_start"].iloc[0]) * 0.02
        fig.update_xaxes(range=[spans["window_start"].iloc[0] - pad, spans["window_end"].iloc[-1] + pad])
    fig.update_xaxes(showticklabels=True)
    fig.update_layout(height=int(300 * sum(heights)) + 150, barmode="overlay", legend={"orientation": "h", "y": 1.04},
                      margin={"t": 90})

    try:
        verdict = _banner(_verdict(settings, spec, gran, tables), changes)
    except Exception as exc:  # noqa: BLE001 - a report without a verdict still shows the data
        verdict = f'<div id="verdict" class="verdict"><h2>Verdict: unavailable</h2><p>{html.escape(str(exc))}</p></div>'
    plot = fig.to_html(full_html=False, include_plotlyjs=True, div_id="timeline",
                       config={"displaylogo": False, "responsive": True})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Monitoring report: {html.escape(spec.name)}</title>
<style>body{{font-family:sans-serif;margin:24px;background:#fff;color:#222;max-width:1400px}}
.plot{{margin-bottom:16px}} table{{border-collapse:collapse;width:100%}} td,th{{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;overflow-wrap:anywhere}} th{{background:#f0f0f0;text-align:left}}</style></head>
<body><h1>Monitoring report: {html.escape(spec.name)}</h1>
<p>Table {html.escape(settings.table(spec.processed_table))}, {len(spans)} window(s) of {html.escape(gran)},
problem type {html.escape(spec.problem_type)}, environment {html.escape(settings.env)}.</p>
{verdict}
<h2>Quality, drift, volume and latency on one time axis</h2>
<div class="plot">{plot}</div>
<h2>Champion history</h2>{_history_html(changes)}
</body></html>"""


def _metrics_text(value) -> str:
    try:
        metrics = json.loads(value) if isinstance(value, str) else dict(value or {})
    except (ValueError, TypeError):
        return str(value)
    return ", ".join(f"{k} {float(v):.3g}" for k, v in sorted(metrics.items())) or "-"


def _history_html(changes: pd.DataFrame) -> str:
    if changes.empty:
        return '<p class="promotions">no promotions yet</p>'
    rows = []
    for _, c in changes.iterrows():
        when = c["_at"].strftime("%Y-%m-%d %H:%M UTC") if "_at" in c and not pd.isna(c["_at"]) else "-"
        source = c.get("from_version")
        source = "none" if source is None or str(source) in ("", "nan", "None") else f"v{source}"
        cells = [when, c.get("action", "promote"), f"{source} → v{c.get('to_version')}",
                 _metrics_text(c.get("from_metrics")), _metrics_text(c.get("to_metrics")), c.get("reason", ""),
                 c.get("actor", c.get("who", ""))]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("when", "action", "champion", "before", "after", "why", "who"))
    return f'<table class="promotions"><tr>{head}</tr>{"".join(rows)}</table>'


def write_report(settings: Settings, spec: ModelSpec, out: str | Path | None = None,
                 granularity: str = DEFAULT_GRANULARITY, tables: Tables | None = None) -> Path:
    """Write the report; default path ``<home>/reports/<model>.html``."""
    path = Path(out) if out else settings.home / "reports" / f"{spec.name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(settings, spec, granularity, tables), encoding="utf-8")
    return path

"""A self-contained HTML monitoring report (plotly.js inlined; viewing needs no network).

Like the dashboard Databricks generates for a monitor: model quality per window with the spec's thresholds
drawn, BASELINE drift per feature x window (heatmap), request volume per window and model version, and the
champion history from the promotion audit table ``<catalog>.<schema>.model_promotions``.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from workloads.metric_names import ALIASES
from workloads.monitoring.granularity import DEFAULT_GRANULARITY, parse_granularity
from workloads.monitoring.metrics import drift_values, quality_values, read_metric_tables
from workloads.monitoring.schema import ALL_MODELS, BASELINE, INPUT, TABLE_COLUMN
from workloads.ports.tables import Tables, get_tables
from workloads.settings import Settings
from workloads.specs import MODEL_ID_COLUMN, ModelSpec

PROMOTIONS_TABLE = "model_promotions"


def _figure_html(fig, first: bool) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=bool(first),
                       config={"displaylogo": False, "responsive": True})


def build_report(settings: Settings, spec: ModelSpec, granularity: str = DEFAULT_GRANULARITY,
                 tables: Tables | None = None) -> str:
    """The report as one HTML document."""
    import plotly.graph_objects as go

    tables = tables or get_tables(settings)
    gran = parse_granularity(granularity).text
    profile, drift = read_metric_tables(settings, spec, tables)
    table_rows = profile[(profile["granularity"] == gran) & (profile["log_type"] == INPUT)
                         & profile["slice_key"].isna() & (profile["column_name"] == TABLE_COLUMN)]
    table_rows = table_rows.sort_values("window_start")
    sections: list[str] = []
    figures = []

    # Model quality per window, thresholds drawn.
    star = table_rows[table_rows[MODEL_ID_COLUMN] == ALL_MODELS]
    for metric, threshold in spec.thresholds.items():
        fig = go.Figure()
        for version, rows in table_rows.groupby(MODEL_ID_COLUMN):
            values = [quality_values(r).get(metric) for _, r in rows.iterrows()]
            fig.add_trace(go.Scatter(x=rows["window_start"], y=values, mode="lines+markers",
                                     name=f"version {version}" if version != ALL_MODELS else "all versions"))
        if not star.empty:
            fig.add_hline(y=threshold.value, line_dash="dash", line_color="red",
                          annotation_text=f"{threshold.direction} {threshold.value:g}")
        name = ALIASES.get(metric, metric)
        fig.update_layout(title=f"{metric} ({name}) per {gran} window", height=360, xaxis_title="window start")
        figures.append(("Model quality", fig))

    # BASELINE drift heatmap, feature x window, for the first drift threshold metric.
    metric = next(iter(spec.drift_thresholds), "js_distance")
    d = drift[(drift["granularity"] == gran) & (drift["drift_type"] == BASELINE) & drift["slice_key"].isna()
              & (drift[MODEL_ID_COLUMN] == ALL_MODELS) & drift["column_name"].isin(spec.feature_names)]
    if not d.empty:
        values = pd.DataFrame({"feature": d["column_name"], "window": d["window_start"],
                               "value": [drift_values(r).get(metric) for _, r in d.iterrows()]})
        grid = values.pivot_table(index="feature", columns="window", values="value", aggfunc="first")
        fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=[str(c) for c in grid.columns], y=list(grid.index),
                                   colorscale="Reds", colorbar={"title": metric}))
        fig.update_layout(title=f"Drift against the baseline: {metric} per feature and window",
                          height=max(300, 28 * len(grid.index) + 120))
        figures.append(("Drift", fig))

    # Request volume per window and version.
    fig = go.Figure()
    for version, rows in table_rows[table_rows[MODEL_ID_COLUMN] != ALL_MODELS].groupby(MODEL_ID_COLUMN):
        fig.add_trace(go.Bar(x=rows["window_start"], y=rows["count"], name=f"version {version}"))
    fig.update_layout(barmode="stack", title=f"Requests per {gran} window", height=320)
    figures.append(("Request volume", fig))

    current = None
    for title, fig in figures:
        if title != current:
            sections.append(f"<h2>{html.escape(title)}</h2>")
            current = title
        sections.append(f'<div class="plot">{_figure_html(fig, first=len(sections) <= 1)}</div>')
    sections.append("<h2>Champion history</h2>" + _promotions_html(settings, spec, tables))
    windows = len(star)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Monitoring report: {html.escape(spec.name)}</title>
<style>body{{font-family:sans-serif;margin:24px;background:#fff;color:#222}} .plot{{margin-bottom:16px}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head>
<body><h1>Monitoring report: {html.escape(spec.name)}</h1>
<p>Table {html.escape(settings.table(spec.processed_table))}, {windows} window(s) of {html.escape(gran)},
problem type {html.escape(spec.problem_type)}.</p>
{''.join(sections)}
</body></html>"""


def _promotions_html(settings: Settings, spec: ModelSpec, tables: Tables) -> str:
    name = settings.table(PROMOTIONS_TABLE)
    if not tables.exists(name):
        return '<p class="promotions">no promotions yet</p>'
    frame = tables.read(name)
    if "model" in frame.columns:
        frame = frame[frame["model"].astype(str).isin([spec.name, settings.registered_model(spec.name)])]
    if frame.empty:
        return '<p class="promotions">no promotions yet</p>'
    return frame.to_html(index=False, classes="promotions", border=0)


def write_report(settings: Settings, spec: ModelSpec, out: str | Path | None = None,
                 granularity: str = DEFAULT_GRANULARITY, tables: Tables | None = None) -> Path:
    """Write the report; default path ``<home>/reports/<model>.html``."""
    path = Path(out) if out else settings.home / "reports" / f"{spec.name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(settings, spec, granularity, tables), encoding="utf-8")
    return path

"""The streamssl Grafana dashboard, built with grafana-foundation-sdk.

    python deployments/grafana/dashboard.py            # rewrite dashboards/streamssl.json
    python deployments/grafana/dashboard.py --check    # exit 1 if the committed JSON is stale

The committed JSON is what Grafana loads (provisioning/dashboards/streamssl.yml); a test fails
when it differs from what this script builds, and checks every metric a panel queries against
what the daemon exports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "dashboards" / "streamssl.json"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")  # provisioning/datasources/prometheus.yml


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(PROMETHEUS)


def series(title: str, description: str, queries: list[tuple[str, str]], unit: str = "short",
           width: int = 8, minimum: float | None = None) -> timeseries.Panel:
    """A time-series panel with one query per ``(expr, legend)``."""
    legend = (common.VizLegendOptions().show_legend(True).display_mode(common_models.LegendDisplayMode.LIST)
              .placement(common_models.LegendPlacement.BOTTOM))
    tooltip = common.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI).sort(common_models.SortOrder.NONE)
    panel = (timeseries.Panel().title(title).description(description).datasource(PROMETHEUS)
             .unit(unit).span(width).height(8).legend(legend).tooltip(tooltip))
    if minimum is not None:
        panel = panel.min(minimum)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + i)))
    return panel


def single(title: str, description: str, expr: str, unit: str = "short") -> stat.Panel:
    last = common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
    return (stat.Panel().title(title).description(description).datasource(PROMETHEUS).unit(unit)
            .span(4).height(4).reduce_options(last).with_target(query(expr)))


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))", f"p{round(q * 100)}")
            for q in (0.5, 0.9, 0.99)]


def build() -> dashboard.Dashboard:
    drift_annotation = (dashboard.AnnotationQuery().name("Drift").datasource(PROMETHEUS).enable(True)
                        .icon_color("red")
                        .expr('sum by (signal, detector) (increase(streamssl_drift_detections_total{level="drift"}[1m])) > 0'))
    board = (dashboard.Dashboard("streamssl").uid("streamssl").tags(["streamssl"]).refresh("10s")
             .time("now-1h", "now").timezone("browser").editable().annotation(drift_annotation))

    board = board.with_row(dashboard.Row("Flow"))
    board = board.with_panel(single("Ready", "1 while consuming and not stalled (streamssl_ready).",
                                    "min(streamssl_ready)"))
    board = board.with_panel(single("Model version", "Learning updates applied to the model.",
                                    "max(streamssl_model_version)"))
    board = board.with_panel(single("Checkpoint age", "Seconds since the last checkpoint on disk.",
                                    "max(streamssl_checkpoint_age_seconds)", "s"))
    board = board.with_panel(series(
        "Throughput", "Events per second: consumed, learned with and without a label, late labels joined; "
        "predictions sent.",
        [('sum by (kind) (rate(streamssl_events_processed_total[$__rate_interval]))', "{{kind}}"),
         ("sum(rate(streamssl_predictions_produced_total[$__rate_interval]))", "predictions")], "ops", minimum=0))
    board = board.with_panel(series(
        "Consumer lag", "Messages behind the end of each assigned partition.",
        [("sum by (topic) (streamssl_consumer_lag)", "{{topic}}")], minimum=0))
    board = board.with_panel(series(
        "Latency", "From the event's timestamp to its prediction on the output topic; and the work per micro-batch.",
        quantiles("streamssl_end_to_end_latency_seconds")
        + [(expr, f"batch {legend}") for expr, legend in quantiles("streamssl_batch_processing_seconds")],
        "s", minimum=0))

    board = board.with_row(dashboard.Row("Learning"))
    board = board.with_panel(series(
        "Prequential accuracy", "Realised: accuracy of predictions made before their label arrived, "
        "over every label joined. Estimated: the mean calibrated confidence of the last 1,000 predictions, which "
        "needs no label; the two lines should agree, and the estimate moves first.",
        [("streamssl_prequential_accuracy_ratio", "realised (labels)"),
         ("streamssl_estimated_accuracy_ratio", "estimated (no labels)")], "percentunit", minimum=0))
    board = board.with_panel(series(
        "Calibration error", "Expected calibration error (15 confidence bins) of the served answers over the last "
        "1,000 labelled events: how far a confidence is from the accuracy it claims (0 = honest).",
        [("streamssl_calibration_error", "ECE")], "percentunit", minimum=0))
    board = board.with_panel(
        heatmap.Panel().title("Confidence").description(
            "Distribution of the top class probability of each prediction, per minute.")
        .datasource(PROMETHEUS).span(8).height(8).calculate(False)
        .with_target(query("sum by (le) (increase(streamssl_prediction_confidence_bucket[$__rate_interval]))", "{{le}}")
                     .format(PromQueryFormat.HEATMAP)))
    board = board.with_panel(series(
        "Pseudo-labels", "Share of unlabelled events accepted as pseudo-labels; their precision over the last hour, "
        "where known (the true label of a pseudo-labelled event arrived later); the lowest confidence taken now (the "
        "threshold, or above it where the labels' audit raised it); and the guards that refused the rest (per second).",
        [("sum(rate(streamssl_pseudo_labels_accepted_total[$__rate_interval])) / "
          'clamp_min(sum(rate(streamssl_events_processed_total{kind="unlabelled"}[$__rate_interval])), 1e-9)',
          "accepted share"),
         ('sum(increase(streamssl_pseudo_labels_scored_total{outcome="correct"}[1h])) / '
          "sum(increase(streamssl_pseudo_labels_scored_total[1h]))", "precision (1 h)"),
         ("max(streamssl_pseudo_label_cut)", "lowest confidence taken"),
         ("sum by (reason) (rate(streamssl_pseudo_labels_rejected_total[$__rate_interval]))", "refused: {{reason}}")],
        minimum=0))
    board = board.with_panel(series(
        "Label join", "Labels joined to their event, those that missed (unknown id, expired, duplicate), and what waits.",
        [("sum(rate(streamssl_label_join_hits_total[$__rate_interval]))", "joined"),
         ("sum by (reason) (rate(streamssl_label_join_misses_total[$__rate_interval]))", "missed: {{reason}}"),
         ("sum by (cause) (rate(streamssl_label_buffer_evictions_total[$__rate_interval]))", "evicted: {{cause}}"),
         ("sum(streamssl_label_buffer_events)", "events waiting"),
         ("sum(streamssl_label_buffer_labels)", "labels waiting for their event")], minimum=0))
    board = board.with_panel(series(
        "Drift", "Detections by signal, detector and level (drifts are also marked on every panel).",
        [("sum by (signal, detector, level) (increase(streamssl_drift_detections_total[$__rate_interval]))",
          "{{signal}} {{detector}} {{level}}")], minimum=0))

    board = board.with_row(dashboard.Row("Self-supervised encoder"))
    board = board.with_panel(series("SSL loss", "The objective's loss on its latest replayed batch.",
                                    [("streamssl_ssl_loss", "loss")]))
    board = board.with_panel(series(
        "Effective rank", "Of recent online embeddings (encoder: what the heads see; projection: the loss's space). "
        "Near 1 is collapse.", [("streamssl_ssl_effective_rank", "{{space}}")], minimum=0))
    board = board.with_panel(series(
        "Embedding spread", "Std over recent events of each dimension of the L2-normalised embedding (mean and min "
        "over dimensions). Near 0 is collapse.", [("streamssl_ssl_embedding_std", "{{stat}}")], minimum=0))

    board = board.with_row(dashboard.Row("Bad input and state"))
    board = board.with_panel(series(
        "Dead letters", "Messages sent to the dead-letter topic, by reason (per second).",
        [("sum by (reason) (rate(streamssl_dead_letters_total[$__rate_interval]))", "{{reason}}"),
         ("sum(rate(streamssl_duplicate_events_total[$__rate_interval]))", "duplicate events")], "ops", minimum=0))
    board = board.with_panel(series(
        "Checkpoints", "Time to write a checkpoint (p50/p90/p99).",
        quantiles("streamssl_checkpoint_duration_seconds"), "s", minimum=0))
    board = board.with_panel(series(
        "Batch size", "Events per micro-batch (p50/p90/p99).", quantiles("streamssl_batch_size_events"), minimum=0))
    return board


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed JSON instead of writing it")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run python deployments/grafana/dashboard.py")
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""What a person sees: a progress bar while a replay runs, a summary table at the end."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from collections import Counter
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table


@contextmanager
def progress_bar(console: Console, total: int | None, disable: bool = False) -> Iterator[tuple[Progress, TaskID]]:
    """A bar counting events, with the running accuracy."""
    progress = Progress(
        TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
        TextColumn("accuracy {task.fields[accuracy]:.3f}"), TimeRemainingColumn(),
        console=console, disable=disable, transient=False,
    )
    with progress:
        yield progress, progress.add_task("replay", total=total, accuracy=0.0)


def _drifts(positions: list[int], show: int = 8) -> str:
    if not positions:
        return "none"
    head = ", ".join(str(p) for p in positions[:show])
    return head + (f" … ({len(positions)} in all)" if len(positions) > show else "")


def _maybe(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _schema(columns: list) -> str:
    """E.g. ``8 numeric · 1 categorical · 2 with missing values``."""
    kinds = Counter(c.kind for c in columns)
    parts = [f"{kinds[k]} {k}" for k in ("numeric", "categorical", "boolean") if kinds[k]]
    missing = sum(1 for c in columns if c.nullable)
    return " · ".join(parts + ([f"{missing} with missing values"] if missing else [])) or "-"


def summary_table(path: Path, result: dict, args: argparse.Namespace, dead, learner=None,
                  columns: list | None = None) -> Table:
    """The end-of-run table of a replay."""
    table = Table(title=f"streamssl replay · {path.name}", show_header=False, title_justify="left", min_width=48,
                  caption="kappa: 0 = chance at these label frequencies, 1 = all right",
                  caption_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    precision = result["pseudo_label_precision"]
    rows = [
        ("events", f"{result['events']:,}"),
        ("rows rejected", f"{dead.count:,}" + (f" ({', '.join(f'{k}: {v}' for k, v in dead.by_reason.items())})" if dead.count else "")),
        ("label column", str(result.get("label_column"))),
        ("feature columns", _schema(columns or [])),
        ("label rate · delay", f"{args.label_rate:g} · {args.label_delay}"),
        ("SSL encoder · pseudo-labels", "n/a" if learner is None else
         f"{learner.objective if learner.encoder else 'off'} · {'on' if learner.pseudo_labels else 'off'}"),
        ("accuracy", f"{result['accuracy']:.4f}"),
        ("  without the first batch (no label yet)", f"{result['accuracy_after_first_batch']:.4f}"),
        ("  majority class · no-change (all labels)", f"{result['majority_rate']:.4f} · {result['no_change_accuracy']:.4f}"),
        ("Cohen's kappa", f"{result['kappa']:.4f}"),
        ("estimated accuracy (no labels) · ECE", f"{_maybe(result.get('estimated_accuracy'))} · "
                                                 f"{_maybe(result.get('calibration_error'))}"),
        ("events/s (steady state)", f"{result['events_per_second']:,.0f}"),
        ("peak RSS", f"{result['peak_rss_mb']:,.0f} MiB"),
        ("labels used", f"{result['labels_used']:,}"),
        ("pseudo-labels accepted", f"{result['pseudo_labels_accepted']:,}"),
        ("pseudo-label precision", "n/a" if precision is None else f"{precision:.4f}"),
        ("drifts at events", _drifts(result["drifts"])),
    ]
    ssl = result.get("ssl")
    if ssl and "effective_rank" in ssl:
        rank = f"{ssl['effective_rank']:.1f}"
        if "projection_effective_rank" in ssl:
            rank += f" · projection {ssl['projection_effective_rank']:.1f}"
        rows += [
            ("SSL steps · last loss", f"{ssl['steps']:,} · {ssl['loss']:.4g}"),
            ("embedding effective rank", rank),
            ("embedding std (mean · min)", f"{ssl['embedding_std_mean']:.3f} · {ssl['embedding_std_min']:.3f}"),
        ]
    for what, value in rows:
        table.add_row(what, value)
    return table


def bench_table(path: Path, settings, runs) -> Table:
    """One row per model: the figures of a side-by-side benchmark."""
    table = Table(title=f"streamssl bench · {path.name} · labels {settings.label_rate:g} · delay "
                  f"{settings.label_delay} · seed {settings.seed}", title_justify="left", padding=(0, 1))
    table.add_column("model", no_wrap=True)
    for name in ("accuracy", "kappa", "est. acc.", "ECE", "events/s", "RSS MiB", "labels", "pseudo", "prec.", "drifts"):
        table.add_column(name, justify="right", no_wrap=True)
    best = max(r.result["accuracy"] for r in runs)
    for run in runs:
        r = run.result
        precision = r["pseudo_label_precision"]
        accuracy = f"{r['accuracy']:.4f}"
        table.add_row(run.model, f"[bold]{accuracy}[/bold]" if r["accuracy"] == best else accuracy,
                      f"{r['kappa']:.4f}", _maybe(r.get("estimated_accuracy")), _maybe(r.get("calibration_error")),
                      f"{r['events_per_second']:,.0f}", f"{r['peak_rss_mb']:,.0f}",
                      f"{r['labels_used']:,}", f"{r['pseudo_labels_accepted']:,}",
                      "-" if precision is None else f"{precision:.3f}", str(len(r["drifts"])))
    return table

"""Plots a person would rather look at than read: accuracy over time, every model, drifts marked."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .bench import ModelRun

# streamssl in blues (the default darkest), each peer its own hue; a peer given streamssl's
# temporal context ("+context") keeps its peer's hue, dashed; the baseline is grey.
_COLOURS = {"streamssl": "#1f4e9c", "river-arf": "#d1495b", "river-hat": "#edae49", "river-lr": "#00798c",
            "river-nb": "#8e5cb0", "river-sgt": "#6a994e", "capymoa-arf": "#a0522d", "capymoa-sleade": "#bc6c25",
            "no-change": "#8c8c8c"}
_BLUES = ["#4f83d1", "#82a9e6", "#2e6bbf", "#9ec0f0", "#163a75", "#5fa8d3", "#3d5a80", "#98c1d9"]
_OTHERS = ["#e76f51", "#2a9d8f", "#f4a261", "#264653", "#b5838d", "#606c38", "#9b2226", "#7209b7"]


def model_styles(models: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{model: (colour, line style)}``: distinct colours for distinct models.

    >>> styles = model_styles(["streamssl", "streamssl-trees", "river-arf", "river-arf+context", "other"])
    >>> styles["river-arf+context"] == (styles["river-arf"][0], "--"), len({c for c, _ in styles.values()})
    (True, 4)
    """
    from .peers import CONTEXT_SUFFIX

    styles: dict[str, tuple[str, str]] = {}
    blues, others = iter(_BLUES), iter(_OTHERS)
    for model in models:
        base = model.removesuffix(CONTEXT_SUFFIX)
        if base in styles or base in _COLOURS:
            colour = styles[base][0] if base in styles else _COLOURS[base]
        elif base.startswith("streamssl"):
            colour = next(blues, "#4f83d1")
        else:
            colour = next(others, "#555555")
        styles.setdefault(base, (colour, "-"))
        styles[model] = (colour, "--" if model != base else "-")
    return {m: styles[m] for m in models}


def default_window(events: int | None) -> int:
    """Scored events per point of the accuracy curve: a twentieth of the stream, 50 to 1,000.

    >>> default_window(1500), default_window(45312), default_window(None)
    (75, 1000, 1000)
    """
    return 1000 if events is None else max(50, min(1000, events // 20))


def accuracy_plot(runs: Sequence[ModelRun], path: str | Path, title: str, window: int,
                  known_drifts: Sequence[int] = ()) -> Path:
    """Write a PNG of each model's accuracy over a sliding window of ``window`` scored events.

    Drifts detected by ``streamssl`` (the default model) are short ticks at the top; drift points
    known for the stream are dashed vertical lines. Beside it, each model's reliability diagram
    (accuracy against served confidence, :func:`reliability_panel`). Below, when a streamssl
    model ran, a panel shows how its members shared the answers over time (their combiner weights).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mixed = next((r for r in sorted(runs, key=lambda r: r.model != "streamssl") if r.weights), None)
    fig = plt.figure(figsize=(15.5, 5.5 if mixed is None else 7.5), dpi=110)
    grid = fig.add_gridspec(1 if mixed is None else 2, 2, width_ratios=[3, 1],
                            height_ratios=None if mixed is None else [3, 1.2])
    ax = fig.add_subplot(grid[0, 0])
    styles = model_styles([r.model for r in runs])
    reliability_panel(fig.add_subplot(grid[0, 1]), runs, styles)
    if mixed is not None:
        wax = fig.add_subplot(grid[1, 0], sharex=ax)
        weights_panel(wax, mixed)
    lowest = 1.0
    for run in runs:
        if not run.curve:
            continue
        xs, ys = zip(*run.curve)
        lowest = min(lowest, *ys)
        main = run.model == "streamssl"
        colour, style = styles[run.model]
        ax.plot(xs, ys, label=f"{run.model}  ({run.result.get('accuracy', float('nan')):.3f})",
                color=colour, linestyle=style, linewidth=2.4 if main else 1.2, alpha=1.0 if main else 0.85,
                zorder=3 if main else 2)
    for x in known_drifts:
        ax.axvline(x, color="black", linestyle="--", linewidth=0.8, alpha=0.6)
    default = next((r for r in runs if r.model == "streamssl"), None)
    if default is not None and default.result.get("drifts"):
        ax.plot(default.result["drifts"], [1.0] * len(default.result["drifts"]), marker="v", linestyle="none",
                color=_COLOURS["streamssl"], markersize=7, label="drift detected (streamssl)", clip_on=False)
    (ax if mixed is None else wax).set_xlabel("event")
    ax.set_ylabel(f"accuracy over the last {window:,} scored events")
    ax.set_ylim(max(0.0, lowest - 0.05), 1.02)  # fitted to the curves, not to 0
    ax.set_title(title, loc="left")
    ax.grid(alpha=0.25)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


#: A colour per member of the streamssl learner, the same in every plot.
_MEMBER_COLOURS = {"mlp": "#1f4e9c", "raw": "#82a9e6", "memory": "#2a9d8f", "tree": "#6a994e", "raw-tree": "#a7c957", "linear": "#f4a261"}


def weights_panel(ax, run: ModelRun) -> None:
    """Stacked areas of ``run``'s member weights over time (each point sums to 1)."""
    xs = [x for x, _ in run.weights]
    names = list(dict.fromkeys(name for _, w in run.weights for name in w))
    ax.stackplot(xs, [[w.get(name, 0.0) for _, w in run.weights] for name in names], labels=names,
                 colors=[_MEMBER_COLOURS.get(n, "#8c8c8c") for n in names], alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{run.model}:\nmembers' weights", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def reliability_panel(ax, runs: Sequence[ModelRun], styles: dict[str, tuple[str, str]]) -> None:
    """Each model's reliability diagram: accuracy against mean served confidence per bin of
    confidence (the replay JSON's ``reliability``), with its ECE; on the diagonal, a confidence
    means what it says."""
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, alpha=0.5)
    for run in runs:
        bins = run.result.get("reliability") or []
        if not bins:
            continue
        colour, style = styles[run.model]
        ece = run.result.get("calibration_error")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", markersize=3,
                color=colour, linestyle=style, linewidth=2.0 if run.model == "streamssl" else 1.0,
                label=f"{run.model}  (ECE {ece:.3f})" if ece is not None else run.model)
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("served confidence (15 bins)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title("reliability", loc="left", fontsize=10)
    ax.grid(alpha=0.25)
    if len(ax.get_lines()) > 1:
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

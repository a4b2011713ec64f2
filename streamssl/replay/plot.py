"""Plots a person would rather look at than read: accuracy over time, every model, drifts marked."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .bench import ModelRun

# One colour per model family: streamssl in blues, peers in other hues, the baseline in grey.
_COLOURS = {"streamssl": "#1f4e9c", "streamssl-ssl": "#4f83d1", "streamssl-pseudo": "#82a9e6",
            "streamssl-ssl-pseudo": "#9ec0f0", "streamssl-no-ssl": "#2e6bbf", "streamssl-no-pseudo": "#3f79c9",
            "river-arf": "#d1495b", "river-hat": "#edae49", "river-lr": "#00798c", "river-nb": "#8e5cb0",
            "no-change": "#8c8c8c"}


def accuracy_plot(runs: Sequence[ModelRun], path: str | Path, title: str, window: int,
                  known_drifts: Sequence[int] = ()) -> Path:
    """Write a PNG of each model's accuracy over a sliding window of ``window`` scored events.

    Drifts detected by ``streamssl`` (the default model) are short ticks at the top; drift points
    known for the stream are dashed vertical lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12.5, 5.5), dpi=110)
    for run in runs:
        if not run.curve:
            continue
        xs, ys = zip(*run.curve)
        main = run.model == "streamssl"
        ax.plot(xs, ys, label=f"{run.model}  ({run.result.get('accuracy', float('nan')):.3f})",
                color=_COLOURS.get(run.model), linewidth=2.4 if main else 1.2, alpha=1.0 if main else 0.85,
                zorder=3 if main else 2)
    for x in known_drifts:
        ax.axvline(x, color="black", linestyle="--", linewidth=0.8, alpha=0.6)
    default = next((r for r in runs if r.model == "streamssl"), None)
    if default is not None and default.result.get("drifts"):
        ax.plot(default.result["drifts"], [1.0] * len(default.result["drifts"]), marker="v", linestyle="none",
                color=_COLOURS["streamssl"], markersize=7, label="drift detected (streamssl)", clip_on=False)
    ax.set_xlabel("event")
    ax.set_ylabel(f"accuracy over the last {window:,} scored events")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title, loc="left")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path

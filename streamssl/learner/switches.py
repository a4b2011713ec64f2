"""The learner's switches, declared once.

Each :class:`Switch` names the :class:`~streamssl.learner.StreamLearner` argument it sets (on is
``True``, or the part with settings that :func:`~streamssl.learner.build_learner` gives it) or
the one ``setting`` of that argument's part it sets (the drift stage's ``channels`` and
``respond``: the switches given make the part's settings, as a mapping), its
flag on ``streamssl replay`` / ``bench`` (``--flag``; an on/off switch also has ``--no-flag``)
and its key in the daemon's ``learner:`` config section. The CLI's flags
(:func:`add_switches`), the daemon's config fields and both commands' learner
(:func:`switch_settings` into :func:`~streamssl.learner.build_learner`) all come from
:data:`SWITCHES`, so a new switch is one line here. Left unset (``None``), a switch keeps the
learner's default.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_switches(p)
>>> args = p.parse_args(["--no-trees", "--combiner", "select"])
>>> switch_settings(vars(args), "flag")
{'encoder': None, 'pseudo_labels': None, 'temporal': None, 'memory': None, 'trees': False, 'linear': None, 'calibrate': None, 'drift': None, 'combiner': 'select'}
>>> switch_settings(vars(p.parse_args(["--drift", "error:DDM", "--no-drift-response"])), "flag")["drift"]
{'channels': ('error:DDM',), 'respond': False}
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from .combine import COMBINERS


def drift_channel(text: str) -> str:
    """A drift channel spec in its normal form (``error:ADWIN``); ValueError says what is wrong."""
    from ..drift.detectors import ChannelSpec

    return str(ChannelSpec.parse(text))


@dataclass(frozen=True)
class Switch:
    """One user-facing switch of the learner."""

    argument: str  # the StreamLearner argument it sets
    flag: str  # --flag on the CLI
    key: str  # the key in the daemon's learner: section
    help: str
    choices: tuple[str, ...] | None = None  # None: on/off
    repeated: bool = False  # a list of drift channel specs, --flag once per item
    setting: str | None = None  # sets this setting of the argument's part, not the argument

    @property
    def dest(self) -> str:
        """Its attribute on parsed CLI arguments."""
        return self.flag.replace("-", "_")

    @property
    def config_type(self) -> Any:
        """Its type in the daemon's config (``None`` allowed: the learner's default)."""
        if self.repeated:
            return list[str] | None
        if self.choices:
            return Literal[self.choices] | None
        return bool | None


SWITCHES: tuple[Switch, ...] = (
    Switch("encoder", "ssl", "ssl", "use the self-supervised encoder (default: off)"),
    Switch("pseudo_labels", "pseudo", "pseudo_labels", "learn from guarded pseudo-labels (default: off)"),
    Switch("temporal", "temporal", "temporal", "the temporal context stage: each event with its differences from "
           "moving averages of the past (default: on)"),
    Switch("memory", "memory", "memory", "the nearest-neighbour memory head (default: on)"),
    Switch("trees", "trees", "trees", "the tree heads, adaptive random forests on the same features and on the "
           "event's own (default: on; --no-trees for about 1.5 times the events/s at 5 %% labels)"),
    Switch("linear", "linear", "linear", "the linear head, logistic regression (one-vs-rest) on the event's own "
           "features learned one SGD step per label (default: on)"),
    Switch("calibrate", "calibrate", "calibrate", "calibrate the served answer: one temperature refit on the last "
           "128 labelled events, so a confidence of 0.9 is right about 90 %% of the time (default: on)"),
    Switch("drift", "drift", "drift_channels", "a drift channel: a detector watching a signal, e.g. "
           "error:ADWIN, confidence:PageHinkley:threshold=1, features:MMD; repeat for several (default: ADWIN on the "
           "error and on the confidence, CUSUM on the residual). Signals: error, residual, confidence, entropy, ssl_loss, features, embedding; CUSUM reads the residual (correct - confidence)",
           repeated=True, setting="channels"),
    Switch("drift", "drift-response", "drift_response", "respond to drifts: background head, pseudo-label "
           "pause, encoder learning-rate boost, fresh two-sample reference (default: on); off, drifts are only "
           "reported", setting="respond"),
    Switch("combiner", "combiner", "combiner", "how the heads answer: ewa, averaged by weights on their recent "
           "errors (default); select, the most accurate of the last 50 labels alone", choices=tuple(COMBINERS)),
)


def _cli_drift_channel(text: str) -> str:
    try:
        return drift_channel(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_switches(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """One CLI flag per switch, each ``None`` unless given."""
    for s in SWITCHES:
        if s.repeated:
            parser.add_argument(f"--{s.flag}", action="append", type=_cli_drift_channel, default=None,
                                metavar="SIGNAL:DETECTOR[:K=V...]", help=s.help)
        elif s.choices:
            parser.add_argument(f"--{s.flag}", choices=s.choices, default=None, help=s.help)
        else:
            parser.add_argument(f"--{s.flag}", action=argparse.BooleanOptionalAction, default=None, help=s.help)


def switch_settings(values: Mapping[str, Any], by: Literal["flag", "key"]) -> dict[str, Any]:
    """The learner's arguments from parsed CLI arguments (``by="flag"``) or the daemon's
    ``learner:`` section (``by="key"``), as a mapping; the switches that set a part's settings
    give that part's argument as a mapping of the settings given (``None`` if none was)."""
    out: dict[str, Any] = {}
    for s in SWITCHES:
        value = values.get(s.dest if by == "flag" else s.key)
        value = tuple(value) if s.repeated and value is not None else value
        if s.setting is None:
            out[s.argument] = value
        elif value is not None:
            out[s.argument] = {**(out.get(s.argument) or {}), s.setting: value}
        else:
            out.setdefault(s.argument, None)
    return out

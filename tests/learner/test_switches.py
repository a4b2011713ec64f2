"""The learner's switches are declared once and reach the learner the same way from the CLI and
from the daemon's config."""

from __future__ import annotations

import inspect

import pytest

from streamssl.cli import build_parser, make_learner
from streamssl.config import LearnerConfig
from streamssl.learner import StreamLearner, build_learner
from streamssl.learner.switches import SWITCHES, switch_settings

ON_OFF = [s for s in SWITCHES if not s.choices and not s.repeated]


def test_every_switch_is_a_learner_argument_a_cli_flag_and_a_config_key():
    parameters = inspect.signature(StreamLearner).parameters
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["replay"]._actions}
    for s in SWITCHES:
        assert s.argument in parameters and s.dest in flags and s.key in LearnerConfig.model_fields


@pytest.mark.parametrize("switch", ON_OFF, ids=lambda s: s.flag)
def test_an_on_off_switch_turns_its_part_off_from_the_cli_and_from_the_config(switch):
    default = inspect.signature(StreamLearner).parameters[switch.argument].default
    flag = f"--{switch.flag}" if default is False else f"--no-{switch.flag}"
    from_cli = make_learner(build_parser().parse_args(["replay", "stream.csv", flag, "--device", "cpu"]))
    config = LearnerConfig.model_validate({switch.key: not default, "device": "cpu"})
    from_config = build_learner(config.threshold, config.device, **switch_settings(dict(config), "key"))
    # On is True or the part with its settings (build_learner gives pseudo-labels their threshold).
    assert (getattr(from_cli, switch.argument) is not False) is (not default)
    assert (getattr(from_config, switch.argument) is not False) is (not default)


def test_choices_and_drift_channels_reach_the_learner_in_the_same_form():
    """(The daemon's config leaves the tree head off unless told: its one default of its own.)"""
    args = build_parser().parse_args(["replay", "s.csv", "--combiner", "select", "--drift", "error:ADWIN",
                                      "--drift", "features:MMD", "--no-trees", "--device", "cpu"])
    config = LearnerConfig.model_validate({"combiner": "select", "drift_channels": ["error:ADWIN", "features:MMD"]})
    assert switch_settings(vars(args), "flag") == switch_settings(dict(config), "key")
    learner = make_learner(args)
    assert learner.combiner == "select" and learner.drift_channels == ("error:ADWIN", "features:MMD")

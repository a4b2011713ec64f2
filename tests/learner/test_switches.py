"""The learner's switches are declared once and reach the learner the same way from the CLI and
from the daemon's config."""

from __future__ import annotations

import inspect

import pytest

from streamssl.cli import build_parser, make_learner
from streamssl.config import LearnerConfig
from streamssl.learner import StreamLearner, build_learner
from streamssl.learner.stream_learner import PARTS
from streamssl.learner.switches import SWITCHES, switch_settings

ON_OFF = [s for s in SWITCHES if not s.choices and not s.repeated]


def test_every_switch_is_a_learner_argument_a_cli_flag_and_a_config_key():
    parameters = inspect.signature(StreamLearner).parameters
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["replay"]._actions}
    for s in SWITCHES:
        assert s.argument in parameters and s.dest in flags and s.key in LearnerConfig.model_fields
        if s.setting is not None:  # a setting of the argument's part
            assert s.setting in inspect.signature(PARTS[s.argument]).parameters


def _value(learner: StreamLearner, switch) -> object:
    """What a switch set on a learner: its argument, or the setting of the argument's part."""
    value = getattr(learner, switch.argument)
    return value if switch.setting is None else getattr(value, switch.setting)


@pytest.mark.parametrize("switch", ON_OFF, ids=lambda s: s.flag)
def test_an_on_off_switch_turns_its_part_off_from_the_cli_and_from_the_config(switch):
    default = inspect.signature(StreamLearner).parameters[switch.argument].default
    flag = f"--{switch.flag}" if default is False else f"--no-{switch.flag}"
    from_cli = make_learner(build_parser().parse_args(["replay", "stream.csv", flag, "--device", "cpu"]))
    config = LearnerConfig.model_validate({switch.key: not default, "device": "cpu"})
    from_config = build_learner(config.threshold, config.device, **switch_settings(dict(config), "key"))
    # On is True or the part with its settings (build_learner gives pseudo-labels their threshold).
    assert (_value(from_cli, switch) is not False) is (not default)
    assert (_value(from_config, switch) is not False) is (not default)


def test_choices_and_drift_channels_reach_the_learner_in_the_same_form():
    """(The daemon's config and the CLI keep the learner's defaults alike: the tree heads on.)"""
    args = build_parser().parse_args(["replay", "s.csv", "--combiner", "select", "--drift", "error:ADWIN",
                                      "--drift", "features:MMD", "--device", "cpu"])
    config = LearnerConfig.model_validate({"combiner": "select", "drift_channels": ["error:ADWIN", "features:MMD"]})
    assert switch_settings(vars(args), "flag") == switch_settings(dict(config), "key")
    learner = make_learner(args)
    assert learner.combiner == "select" and learner.drift.channels == ("error:ADWIN", "features:MMD")
    assert learner.drift.respond  # the setting not given keeps the part's default

"""End-to-end tests of ``streamssl replay`` through ``cli.main``, and of the metrics it serves."""

from __future__ import annotations

import gzip
import json
import math
import re
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from conftest import shared_data
from streamssl import cli
from streamssl.drift.monitor import DriftEvent
from streamssl.metrics import LearnerMetrics
from streamssl.replay.run import DeadLetters, bundled_sample, count_records
from streamssl.sources.file import BadRecord, FileSource

ELEC2 = shared_data("elec2.csv.gz")
JSON_KEYS = {
    "events", "accuracy", "kappa", "events_per_second", "peak_rss_mb", "labels_used",
    "pseudo_labels_accepted", "pseudo_label_precision", "drifts", "drift_events", "ssl", "experts",
    "accuracy_after_first_batch", "majority_rate", "no_change_accuracy", "rows_rejected", "label_column",
    "calibration_error", "estimated_accuracy", "reliability",
}
FAST = ["--quiet", "--no-ssl"]  # the encoder is exercised by the bundled-sample run


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """`main` sets torch's thread count (default 1); put it back for the other test modules."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def replay(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["replay", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def replay_json(capsys, tmp_path, *args) -> tuple[dict, str, str]:
    out_file = tmp_path / "out.json"
    code, out, err = replay(capsys, *args, "--json", out_file)
    assert code == 0, err
    return json.loads(out_file.read_text()), out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("streamssl: error:")]


def write_csv(path: Path, rows: list[str], header: str = "a,b,c,label") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def good_rows(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return [f"{a:.4f},{b:.4f},{c:.4f},{int(a > 0)}" for a, b, c in X]


# -- the bundled sample and a real stream ------------------------------------------------


def test_replay_of_the_bundled_sample_writes_the_documented_json(capsys, tmp_path):
    result, out, err = replay_json(capsys, tmp_path, "--limit", 1500, "--label-rate", 0.05, "--quiet")
    assert set(result) == JSON_KEYS
    assert result["events"] == 1500
    assert 0.0 <= result["accuracy"] <= 1.0 and -1.0 <= result["kappa"] <= 1.0
    assert result["accuracy"] > 0.5
    # The label mask is the seeded draw (seed 0), and elec2 has no unlabelled rows.
    assert result["labels_used"] == int((np.random.default_rng(0).random(1500) < 0.05).sum())
    assert 50 <= result["labels_used"] <= 100
    assert result["events_per_second"] > 0 and result["peak_rss_mb"] > 0
    assert isinstance(result["pseudo_labels_accepted"], int) and result["pseudo_labels_accepted"] >= 0
    precision = result["pseudo_label_precision"]
    assert precision is None or 0.0 <= precision <= 1.0
    assert isinstance(result["drifts"], list) and all(type(d) is int for d in result["drifts"])
    assert all(0 < d <= 1500 for d in result["drifts"])
    assert [e["position"] for e in result["drift_events"] if e["level"] == "drift"] == result["drifts"]
    assert "elec2_sample.csv.gz" in out and "1,500" in out
    assert err == ""


def test_drift_flags_choose_the_channels_and_the_response(capsys, tmp_path):
    result, _, _ = replay_json(capsys, tmp_path, "--limit", 1500, "--label-rate", 0.05, "--drift", "error:DDM",
                               "--drift", "features:MMD:reference=300:window=100", "--no-drift-response")
    assert {(e["signal"], e["detector"]) for e in result["drift_events"]} <= {("error", "DDM"), ("features", "MMD")}
    assert any(e["signal"] == "features" for e in result["drift_events"])  # Elec2's prices wander off
    with pytest.raises(SystemExit) as exit_:
        replay(capsys, "--limit", 10, "--drift", "confidence:DDM")
    assert exit_.value.code == 2 and "DDM reads a 0/1 stream" in capsys.readouterr().err


@pytest.mark.parametrize("objective", ["vicreg", "dino"])
def test_objective_flag_turns_the_encoder_on_and_reports_its_collapse_measures(capsys, tmp_path, objective):
    result, out, _ = replay_json(capsys, tmp_path, "--limit", 1500, "--label-rate", 0.05, "--objective", objective)
    ssl = result["ssl"]
    assert ssl["objective"] == objective and ssl["steps"] == 1500 // 64
    assert np.isfinite(ssl["loss"])
    assert 1.0 <= ssl["effective_rank"] <= 16.0 and 1.0 <= ssl["projection_effective_rank"]
    assert 0.0 <= ssl["embedding_std_min"] <= ssl["embedding_std_mean"] <= 1.0
    assert "embedding effective rank" in out and objective in out
    # Without the encoder there is nothing to report; --no-ssl wins over --objective.
    result, _, _ = replay_json(capsys, tmp_path, "--limit", 300, "--objective", objective, "--no-ssl", "--quiet")
    assert result["ssl"] is None


def test_bundled_sample_ships_with_the_package():
    path = bundled_sample()
    assert path.is_file() and path.name == "elec2_sample.csv.gz"
    assert count_records(path) == 5000


@pytest.mark.slow
def test_replay_of_real_elec2_beats_the_majority_class(capsys, tmp_path):
    if not ELEC2.exists():
        pytest.skip(f"{ELEC2} is not on this machine")
    limit = 3000
    result, _, _ = replay_json(capsys, tmp_path, ELEC2, "--limit", limit, "--label-rate", 1, "--quiet")
    labels = [v for batch in FileSource(ELEC2, batch_size=1000, limit=limit) for v in batch.y]
    majority = max(labels.count(c) for c in set(labels)) / len(labels)
    assert result["events"] == limit and result["labels_used"] == limit
    assert result["accuracy"] > majority + 0.05, (result["accuracy"], majority)
    assert result["kappa"] > 0.2


def test_switching_the_encoder_and_pseudo_labels(capsys, tmp_path, monkeypatch):
    built = []
    make = cli.make_learner
    monkeypatch.setattr(cli, "make_learner", lambda args: built.append(make(args)) or built[-1])
    common = ["--limit", 1500, "--label-rate", 0.3, "--threshold", 0.9, "--quiet"]

    with_pseudo, _, _ = replay_json(capsys, tmp_path, "--no-ssl", "--pseudo", *common)
    assert with_pseudo["pseudo_labels_accepted"] > 0  # so that switching it off means something
    assert built[-1].pseudo_labels.threshold == 0.9  # --threshold reaches the policy

    default, _, _ = replay_json(capsys, tmp_path, *common)
    assert default["pseudo_labels_accepted"] == 0  # both mechanisms default to off
    assert built[-1].ssl is None

    replay_json(capsys, tmp_path, "--ssl", *common)
    assert built[-1].ssl is not None and built[-1].encoder.objective == "infonce"

    result, _, _ = replay_json(capsys, tmp_path, "--no-ssl", "--no-pseudo", *common)
    assert result["pseudo_labels_accepted"] == 0
    assert result["pseudo_label_precision"] is None
    assert result["events"] == 1500 and result["labels_used"] == with_pseudo["labels_used"]
    model = built[-1]
    assert model.ssl is None and model.encoder is False and model.pseudo_labels is False
    assert model.policy.accepted == 0


def test_delayed_labels_past_the_end_are_not_counted(capsys, tmp_path):
    result, _, _ = replay_json(capsys, tmp_path, *FAST, "--limit", 500, "--label-delay", 100, "--label-rate", 1)
    assert result["labels_used"] == 400


# -- bad rows ----------------------------------------------------------------------------


def test_bad_rows_are_reported_skipped_and_dead_lettered(capsys, tmp_path):
    rows = good_rows(60)
    rows[1] = "4,x,6,1"              # line 3
    rows[3] = "1,2,0"                # line 5
    rows[5] = "inf,1,2,1"            # line 7
    rows[40] = "1,2,3,4,5"           # line 42
    path = write_csv(tmp_path / "bad.csv", rows)
    dead = tmp_path / "dead.jsonl"
    result, out, err = replay_json(capsys, tmp_path, path, *FAST, "--dead-letter", dead)

    assert result["events"] == 56
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {path}:3: column 'b' is numeric, got 'x'; row skipped",
        f"warning: {path}:5: expected 4 columns, got 3; row skipped",
        f"warning: {path}:7: column 'a': 'inf' is not a finite float32; row skipped",
        f"warning: {path}:42: expected 4 columns, got 5; row skipped",
    ]
    assert len(err.splitlines()) == 4 and "Traceback" not in err
    assert re.search(r"rows rejected\s*│\s*4\b", out), out

    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(d["path"], d["line"]) for d in letters] == [(str(path), n) for n in (3, 5, 7, 42)]
    assert [d["raw"] for d in letters] == ["4,x,6,1", "1,2,0", "inf,1,2,1", "1,2,3,4,5"]
    assert [d["kind"] for d in letters] == ["wrong_type", "columns", "non_finite", "columns"]
    assert all(set(d) == {"path", "line", "kind", "reason", "raw"} and d["reason"] for d in letters)
    assert result["rows_rejected"] == {"wrong_type": 1, "columns": 2, "non_finite": 1}


def test_only_the_first_ten_bad_rows_are_shown_but_all_are_counted(capsys, tmp_path):
    rows = good_rows(30) + ["inf,1,2,0"] * 15
    path = write_csv(tmp_path / "many_bad.csv", rows)
    dead = tmp_path / "dead.jsonl"
    result, out, err = replay_json(capsys, tmp_path, path, *FAST, "--dead-letter", dead)
    assert result["events"] == 30
    assert len([line for line in err.splitlines() if line.startswith("warning:")]) == 10
    assert len(dead.read_text().splitlines()) == 15
    assert re.search(r"rows rejected\s*│\s*15\b", out), out


# -- user errors -------------------------------------------------------------------------


def _empty(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    return path, "empty file"


def _directory(tmp_path):
    path = tmp_path / "folder.csv"
    path.mkdir()
    return path, "is a directory"


def _all_bad(tmp_path):
    return write_csv(tmp_path / "all_bad.csv", ["1,2,3", "1,2,0", "inf,2,3,1"]), "no events to replay (3 rows rejected)"


def _missing(tmp_path):
    return tmp_path / "missing.csv", "no such file"


def _unknown_type(tmp_path):
    path = tmp_path / "stream.txt"
    path.write_text("a,label\n1,0\n")
    return path, "unknown file type"


def _damaged_gzip(tmp_path):
    path = tmp_path / "cut.csv.gz"
    data = gzip.compress(("a,b,c,label\n" + "\n".join(good_rows(3000)) + "\n").encode())
    path.write_bytes(data[: len(data) // 2])
    return path, "corrupt or truncated gzip data"


@pytest.mark.parametrize("make", [_missing, _empty, _directory, _all_bad, _unknown_type, _damaged_gzip],
                         ids=["missing", "empty", "directory", "all-rows-bad", "unknown-type", "damaged-gzip"])
def test_unusable_input_is_one_error_line_and_exit_2(capsys, tmp_path, make):
    path, reason = make(tmp_path)
    code, out, err = replay(capsys, path, *FAST)
    assert code == 2
    assert len(error_lines(err)) == 1, err
    line = error_lines(err)[0]
    assert str(path) in line and reason in line
    assert "Traceback" not in err


@pytest.mark.parametrize("flag,value,message", [
    ("--label-rate", "2", "must be between 0 and 1"),
    ("--label-rate", "abc", "invalid"),
    ("--batch-size", "0", "must be >= 1"),
    ("--label-delay", "-1", "must be >= 0"),
    ("--limit", "-5", "must be >= 0"),
    ("--threshold", "1.5", "must be in (0, 1]"),
    ("--threads", "0", "must be >= 1"),
    ("--part", "mlp", "expected NAME.SETTING=VALUE"),
    ("--part", "mlp.max_steps", "expected NAME.SETTING=VALUE"),
])
def test_invalid_flag_values_are_argparse_errors(capsys, flag, value, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["replay", flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err and "Traceback" not in err


def test_part_flags_set_the_learners_parts_over_the_switches():
    parser = cli.build_parser()
    args = parser.parse_args(["replay", "--pseudo", "--threshold", "0.95", "--part", "mlp.max_steps=64",
                              "--part", "pseudo_labels.warmup=50", "--part", "temporal.spans=[4, 16]"])
    learner = cli.make_learner(args)
    assert learner.mlp.max_steps == 64 and learner.mlp.hidden == 64
    assert learner.pseudo_labels.threshold == 0.95 and learner.pseudo_labels.warmup == 50
    assert tuple(learner.temporal.spans) == (4, 16)


def test_a_number_yaml_reads_as_text_is_read_as_the_number_its_setting_holds():
    # YAML 1.1 reads 1e-5 (no dot) as a string; it reached the forest and failed mid-run.
    args = cli.build_parser().parse_args(["replay", "--part", "trees.drift_delta=1e-5", "--part", "trees.n_models=5"])
    trees = cli.make_learner(args).trees
    assert trees.drift_delta == 1e-5 and isinstance(trees.drift_delta, float) and trees.n_models == 5


@pytest.mark.parametrize("part,message", [
    ("mlp.steps_max=64", "--part: part mlp (MLPHead) has no setting steps_max (its settings:"),
    ("forest.n_models=5", "--part: no part 'forest'"),
    ("mlp.max_steps=0", "--part: part mlp: MLPHead needs"),
    ("trees.drift_delta=small", "--part: part trees: drift_delta must be a number, got 'small'"),
])
def test_a_wrong_part_setting_is_a_user_error(capsys, part, message):
    code, _, err = replay(capsys, "--limit", 10, "--part", part, *FAST)
    assert code == 2 and message in error_lines(err)[0]


def test_a_part_switched_off_takes_no_settings(capsys):
    code, _, err = replay(capsys, "--limit", 10, "--no-memory", "--part", "memory.k=3", *FAST)
    assert code == 2 and "part memory is switched off" in error_lines(err)[0]


def test_threshold_zero_is_refused_by_the_argument_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["replay", "--limit", "10", "--threshold", "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--threshold" in err and "Traceback" not in err


def test_unknown_device_is_a_user_error(capsys):
    code, _, err = replay(capsys, "--limit", 10, "--device", "bogus", *FAST)
    assert code == 2 and "bogus" in error_lines(err)[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_user_error(capsys):
    code, _, err = replay(capsys, "--limit", 10, "--device", "cuda", *FAST)
    assert code == 2 and "cuda" in error_lines(err)[0].lower()


def test_json_into_a_missing_directory_is_a_user_error(capsys, tmp_path):
    target = tmp_path / "nowhere" / "out.json"
    code, _, err = replay(capsys, "--limit", 10, "--json", target, *FAST)
    assert code == 2 and str(target) in error_lines(err)[0]


def test_dead_letter_into_a_missing_directory_is_a_user_error(capsys, tmp_path):
    target = tmp_path / "nowhere" / "dead.jsonl"
    code, _, err = replay(capsys, "--limit", 10, "--dead-letter", target, *FAST)
    assert code == 2 and str(target) in error_lines(err)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_port_in_use_is_a_user_error(capsys):
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = replay(capsys, "--limit", 10, "--metrics-port", port, *FAST)
    assert code == 2 and str(port) in error_lines(err)[0]


# -- metrics -----------------------------------------------------------------------------


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            samples[key] = s.value
    return samples


def test_metrics_are_served_with_plausible_values(capsys, tmp_path):
    port = free_port()
    events, batch_size = 1500, 64
    result, _, _ = replay_json(capsys, tmp_path, *FAST, "--pseudo", "--limit", events, "--label-rate", 0.3,
                               "--threshold", 0.9, "--batch-size", batch_size, "--metrics-port", port)
    m = scrape(port)

    labelled = m["streamssl_events_processed_total{kind=labelled}"]
    unlabelled = m["streamssl_events_processed_total{kind=unlabelled}"]
    assert labelled + unlabelled == events
    assert labelled == result["labels_used"]

    buckets = sorted((float(k.split("le=")[1].rstrip("}")), v) for k, v in m.items()
                     if k.startswith("streamssl_prediction_confidence_bucket"))
    assert buckets[-1] == (math.inf, events)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert m["streamssl_prediction_confidence_count"] == events
    # Two classes: every prediction after the first batch (no class known yet) has confidence >= 0.5.
    assert 0.5 * (events - batch_size) <= m["streamssl_prediction_confidence_sum"] <= events

    assert m["streamssl_batch_processing_seconds_count"] == math.ceil(events / batch_size)
    assert 0 < m["streamssl_batch_processing_seconds_sum"] < 60

    assert m["streamssl_pseudo_labels_accepted_total"] == result["pseudo_labels_accepted"] > 0
    correct = m["streamssl_pseudo_labels_scored_total{outcome=correct}"]
    wrong = m["streamssl_pseudo_labels_scored_total{outcome=wrong}"]
    assert correct / (correct + wrong) == pytest.approx(result["pseudo_label_precision"])
    assert m["streamssl_prequential_accuracy_ratio"] == pytest.approx(result["accuracy"])
    assert 0.5 < result["accuracy"] <= 1.0
    # Estimated without labels: the mean confidence of the last 1,000 predictions (later, so
    # higher, than the replay's figure over every event); calibrated, the replay's estimate is
    # close to its realised accuracy, and the learner's recent calibration error is small.
    assert result["estimated_accuracy"] < m["streamssl_estimated_accuracy_ratio"] <= 1.0
    assert abs(result["estimated_accuracy"] - result["accuracy"]) < 0.05
    assert 0 < m["streamssl_calibration_error"] < 0.1


def test_the_estimated_accuracy_is_the_mean_of_the_last_1000_served_confidences():
    metrics = LearnerMetrics(CollectorRegistry())
    metrics.served([0.2] * 500)
    metrics.served(np.full(1000, 0.9))
    assert metrics.registry.get_sample_value("streamssl_estimated_accuracy_ratio") == pytest.approx(0.9)
    metrics.served([0.4] * 500)
    assert metrics.registry.get_sample_value("streamssl_estimated_accuracy_ratio") == pytest.approx(0.65)
    assert metrics.registry.get_sample_value("streamssl_prediction_confidence_count") == 2000


def test_the_calibration_error_is_read_from_the_learner_when_scraped():
    metrics = LearnerMetrics(CollectorRegistry())
    ece = lambda: metrics.registry.get_sample_value("streamssl_calibration_error")  # noqa: E731
    assert math.isnan(ece())  # no learner yet
    learner = _Learner()
    learner.calibration_error = None  # no labelled event yet
    metrics.sync_learner(learner)
    assert math.isnan(ece())
    learner.calibration_error = 0.04
    assert ece() == 0.04  # the learner's figure now, without another sync
    learner.calibration_error = 0.02
    assert ece() == 0.02


def test_every_metric_is_prefixed_and_counters_end_in_total():
    registry = CollectorRegistry()
    metrics = LearnerMetrics(registry)
    metrics.events.labels(kind="labelled").inc()
    metrics.pseudo_rejected.labels(reason="warmup").inc()
    metrics.drifts.labels(signal="error", detector="ADWIN", level="drift").inc()
    metrics.pseudo_scored.labels(outcome="wrong").inc()
    families = list(registry.collect())
    assert len(families) >= 9
    for family in families:
        assert family.name.startswith("streamssl_"), family.name
        if family.type == "counter":
            values = [s.name for s in family.samples if not s.name.endswith("_created")]
            assert values and all(name.endswith("_total") for name in values), (family.name, values)
        else:
            assert not family.name.endswith("_total"), family.name
    assert {f.name for f in families if f.type == "histogram"} == {
        "streamssl_prediction_confidence", "streamssl_batch_processing_seconds"}


class _Policy:
    def __init__(self):
        self.accepted, self.rejected = 0, {}


class _Monitor:
    def __init__(self):
        self.counts, self.events = {}, []


class _Learner:
    def __init__(self):
        self.policy, self.monitor, self.ssl_loss = _Policy(), _Monitor(), None


def test_syncing_a_learner_twice_does_not_count_twice():
    registry = CollectorRegistry()
    metrics, learner = LearnerMetrics(registry), _Learner()
    learner.policy.accepted, learner.policy.rejected = 5, {"warmup": 7}
    learner.monitor.counts = {("error", "ADWIN", "drift"): 1}
    learner.monitor.events = [DriftEvent(10, "error", "ADWIN", "drift", 1234.5)]
    learner.ssl_loss = 0.25
    metrics.sync_learner(learner)
    metrics.sync_learner(learner)
    learner.policy.accepted, learner.policy.rejected["warmup"] = 8, 9
    metrics.sync_learner(learner)
    value = registry.get_sample_value
    assert value("streamssl_pseudo_labels_accepted_total") == 8
    assert value("streamssl_pseudo_labels_rejected_total", {"reason": "warmup"}) == 9
    assert value("streamssl_drift_detections_total", {"signal": "error", "detector": "ADWIN", "level": "drift"}) == 1
    assert value("streamssl_last_drift_timestamp_seconds") == 1234.5
    assert value("streamssl_ssl_loss") == 0.25


def test_the_pseudo_label_cut_is_exported_while_pseudo_labels_are_on():
    from streamssl.learner import StreamLearner
    from streamssl.learner.pseudo import PseudoLabelPolicy

    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 3))
    for policy in (False, PseudoLabelPolicy(threshold=0.95, warmup=10)):
        registry = CollectorRegistry()
        metrics, learner = LearnerMetrics(registry), StreamLearner(pseudo_labels=policy, trees=False, seed=0)
        learner.learn_many(X, [int(a > 0) if i % 4 == 0 else None for i, (a, *_) in enumerate(X)])
        learner.policy.observe_answers(np.full(200, 0.96), np.arange(200) % 5 != 0)  # 80 % right at 0.96
        metrics.sync_learner(learner)
        cut = registry.get_sample_value("streamssl_pseudo_label_cut", {"threshold": "0.95"})
        assert cut is None if policy is False else cut == learner.policy.cut > 0.96
        samples = [s for family in registry.collect() for s in family.samples if s.name == "streamssl_pseudo_label_cut"]
        assert len(samples) == (0 if policy is False else 1)  # no sample at all while off


def test_collapse_measures_are_exported_from_a_real_learner():
    from streamssl.learner import StreamLearner
    from streamssl.ssl.continual import Encoder

    registry = CollectorRegistry()
    metrics, learner = LearnerMetrics(registry), StreamLearner(encoder=Encoder("byol"), seed=0)
    metrics.sync_learner(learner)  # before the first step: nothing to report, nothing set
    assert registry.get_sample_value("streamssl_ssl_effective_rank", {"space": "encoder"}) is None
    rng = np.random.default_rng(0)
    for _ in range(4):
        X = rng.normal(size=(128, 5))
        learner.learn_many(X, [int(v) for v in X[:, 0] > 0])
    metrics.sync_learner(learner)
    stats = learner.ssl_stats()
    value = registry.get_sample_value
    assert stats["steps"] == 8
    assert value("streamssl_ssl_effective_rank", {"space": "encoder"}) == stats["effective_rank"]
    assert value("streamssl_ssl_effective_rank", {"space": "projection"}) == stats["projection_effective_rank"]
    assert value("streamssl_ssl_embedding_std", {"stat": "mean"}) == stats["embedding_std_mean"]
    assert value("streamssl_ssl_embedding_std", {"stat": "min"}) == stats["embedding_std_min"]


# -- replay plumbing: the progress total and the dead letters ----------------------------


def test_count_records_counts_data_lines(tmp_path):
    csv_path = write_csv(tmp_path / "s.csv", ["1,2,3,0", "", "4,5,6,1", "7,8,9,"])
    assert count_records(csv_path) == 3
    assert count_records(csv_path, limit=2) == 2
    gz = tmp_path / "s.csv.gz"
    gz.write_bytes(gzip.compress(csv_path.read_bytes()))
    assert count_records(gz) == 3
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text('{"a": 1, "label": 0}\n\n{"a": 2}\n')
    assert count_records(jsonl) == 2
    assert count_records(tmp_path / "missing.csv") is None
    assert count_records(tmp_path) is None


def test_dead_letters_count_by_reason_and_show_a_few(tmp_path):
    import io

    stream = io.StringIO()
    dead = DeadLetters(tmp_path / "d.jsonl", stream, show=2)
    for line, reason, kind in [(2, "expected 3 columns, got 2", "columns"), (3, "column 'a' is numeric, got 'x'",
                               "wrong_type"), (4, "column 'b' is numeric, got 'y'", "wrong_type")]:
        dead(BadRecord("f.csv", line, reason, "raw", kind))
    dead.close()
    assert dead.count == 3
    assert dead.by_reason == {"columns": 1, "wrong_type": 2}
    assert stream.getvalue().splitlines() == [
        "warning: f.csv:2: expected 3 columns, got 2; row skipped",
        "warning: f.csv:3: column 'a' is numeric, got 'x'; row skipped",
    ]
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 3


def test_jsonl_gzip_stream_with_string_labels_unlabelled_events_and_delay(capsys, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "events.jsonl.gz"
    lines = []
    for i in range(2000):
        x = rng.normal(size=3)
        label = None if i % 10 == 9 else ("up" if x[0] + x[1] > 0 else "down")
        lines.append(json.dumps({"features": {"a": x[0], "b": x[1], "c": x[2]}, "label": label, "id": i}))
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    result, _, _ = replay_json(capsys, tmp_path, path, "--label-rate", 0.2, "--label-delay", 50, *FAST)
    assert result["events"] == 2000
    # 1800 events have a label; about 20 % of them are revealed, those due after the end are not.
    assert 300 < result["labels_used"] < 420
    assert result["accuracy"] > 0.85


# -- events as they come: categories, missing cells, the label anywhere -------------------


def messy_sample(path: Path, n: int, missing: float = 0.1, seed: int = 0) -> Path:
    """The bundled sample with its label first (as words), the day as text and a share of the
    other cells empty or NA."""
    rng = np.random.default_rng(seed)
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    source = FileSource(bundled_sample(), batch_size=n, limit=n)
    lines = []
    for batch in source:
        names = source.feature_names
        for x, y in zip(batch.X, batch.y):
            cells = []
            for name, v in zip(names, x.tolist()):
                if name == "day":
                    cells.append(days[int(v) - 1])
                else:
                    cells.append(("", "NA")[int(rng.random() < 0.5)] if rng.random() < missing else f"{v:g}")
            lines.append(",".join(["up" if y == 1 else "down", *cells]))
    path.write_text("\n".join(["label," + ",".join(names), *lines]) + "\n")
    return path


def test_a_messy_csv_replays_every_row(capsys, tmp_path):
    path = messy_sample(tmp_path / "messy.csv", 3000)
    result, out, err = replay_json(capsys, tmp_path, path, *FAST, "--label-column", "label")
    assert result["events"] == 3000 and result["rows_rejected"] == {} and result["label_column"] == "label"
    assert "warning" not in err
    assert re.search(r"feature columns\s*│\s*7 numeric · 1 categorical · 7 with missing values", out), out
    assert result["accuracy_after_first_batch"] > result["majority_rate"] + 0.1  # it learns from them
    default, _, _ = replay_json(capsys, tmp_path, path, *FAST)  # 'label' is found by its name
    assert default["label_column"] == "label" and default["accuracy"] == result["accuracy"]


def test_the_label_column_is_said_and_an_unknown_one_is_an_error(capsys, tmp_path):
    path = write_csv(tmp_path / "first.csv", ["0,1,2,3", "1,4,5,6"], header="y,a,b,c")
    result, out, _ = replay_json(capsys, tmp_path, path, *FAST, "--label-column", "y")
    assert result["label_column"] == "y" and result["events"] == 2
    code, _, err = replay(capsys, path, *FAST, "--label-column", "nope")
    assert code == 2 and "no column 'nope' in the header" in error_lines(err)[0]


def test_version():
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0


def test_help_has_no_restructured_text_markup(capsys):
    parser = cli.build_parser()
    texts = [parser.format_help()] + [a.format_help() for a in parser._subparsers._group_actions[0].choices.values()]
    assert not any("``" in t or ":class:" in t for t in texts)

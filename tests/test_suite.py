"""The benchmark suite's quick mode, end to end, as CI runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_data

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # whole benchmark runs: `pytest -m "not slow and not kafka"` leaves them out


@pytest.mark.skipif(not shared_data("usenet1.csv.gz").exists(), reason="../shared/data is not beside the repository")
def test_quick_suite_writes_a_report_with_tables_and_plots(tmp_path):
    env = {**os.environ, "STREAMSSL_SHARED_DATA": str(shared_data("."))}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--quick", "--out", str(tmp_path),
                           "--workers", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "RESULTS.md").read_text()
    assert "## Accuracy at 5 % labels" in report and "| elec2_sample |" in report and "| usenet1 |" in report
    assert "python benchmarks/suite.py --quick" in report
    assert "## Failed runs" not in report
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == ["elec2_sample.0.05.png", "usenet1.0.05.png"]
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "elec2_sample.0.05.0.json", "passes.json", "usenet1.0.05.0.json"]


@pytest.mark.skipif(not shared_data("usenet1.csv.gz").exists(), reason="../shared/data is not beside the repository")
def test_a_pass_with_late_labels_says_so_and_keeps_apart_from_the_main_pass(tmp_path):
    env = {**os.environ, "STREAMSSL_SHARED_DATA": str(shared_data("."))}
    suite = [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--quick", "--streams", "usenet1",
             "--models", "river-nb", "--workers", "1", "--label-delay", "100"]
    refused = subprocess.run(suite, capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and "--label-delay needs --tag or --out" in refused.stderr
    done = subprocess.run([*suite, "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "usenet1.0.05.0.json").read_text())
    assert doc["label_delay"] == 100 and doc["runs"][0]["model"] == "river-nb"
    report = (tmp_path / "RESULTS.md").read_text()
    assert "is revealed 100 events after its event" in report and "--label-delay 100" in report


def test_encoder_throughput_benchmark_prints_and_writes_its_figures(tmp_path):
    out = tmp_path / "throughput.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "encoder_throughput.py"), "--objectives",
                           "dino,jepa", "--batches", "64,256", "--seconds", "0.05", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "batch 256" in done.stdout and "dino" in done.stdout and "jepa" in done.stdout
    import json

    rows = json.loads(out.read_text())["rows"]
    assert [(r["objective"], r["batch"]) for r in rows] == [("dino", 64), ("dino", 256), ("jepa", 64), ("jepa", 256)]
    assert all(r["events_per_second"] > 0 and r["steps"] >= 10 for r in rows)


@pytest.mark.skipif(not shared_data("usenet1.csv.gz").exists(), reason="../shared/data is not beside the repository")
def test_objectives_benchmark_writes_its_table(tmp_path):
    env = {**os.environ, "STREAMSSL_SHARED_DATA": str(shared_data("."))}
    report = tmp_path / "OBJECTIVES.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "objectives.py"), "--streams", "usenet1",
                           "--seeds", "0", "--models", "streamssl,streamssl-ssl-pseudo-dino", "--workers", "1",
                           "--out", str(tmp_path), "--report", str(report)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    assert "## usenet1" in text and "| streamssl |" in text and "| streamssl-ssl-pseudo-dino |" in text
    assert "python benchmarks/objectives.py --seeds 0 --streams usenet1" in text


def test_river_streams_are_written_the_same_every_time_and_read_by_the_bench(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import river_streams
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from streamssl.replay.bench import BenchSettings

    first, second = tmp_path / "a" / "phishing.csv.gz", tmp_path / "b" / "phishing.csv.gz"
    river_streams.write_csv("phishing", first)
    river_streams.write_csv("phishing", second)
    assert first.read_bytes() == second.read_bytes()  # fixed seeds, no time stamp in the gzip header
    source = BenchSettings().file.source(str(first), batch_size=10_000, on_bad=lambda bad: pytest.fail(str(bad)))
    batches = list(source)
    assert sum(len(b.y) for b in batches) == 1250 and len(source.feature_names) == 9
    assert set(batches[0].y) == {0, 1}


def test_compare_passes_counts_the_pseudo_labels_of_two_recorded_passes():
    # River's streams under the audit of before (the streamssl-pseudo runs of their report until
    # 2026-12-06 15:10, kept apart) and the exact Beta audit (counted apart once by hand).
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_passes.py"),
                           str(ROOT / "benchmarks/results/pseudo-guards/audit-before/river-streams"), "streamssl-pseudo",
                           str(ROOT / "benchmarks/results/pseudo-guards/audit-jeffreys/river-streams"),
                           "streamssl-pseudo", "--new-tag", "beta", "--streams", "river-streams", "--pseudo"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| hyperplane | 5% | 0 | 1,431 · 0.9553 ✗ | 0 · n/a |" in done.stdout
    assert "| old | 9 | 4 | 9,522 | 0.9783 |" in done.stdout and "| new | 0 | 0 | 0 | n/a |" in done.stdout


def test_compare_passes_gives_each_seeds_mean_whose_mean_is_the_rows_mean():
    # The main pass against its tagged pass without smoothed targets, both kept in results/.
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_passes.py"),
                           str(ROOT / "benchmarks/results"), "streamssl", str(ROOT / "benchmarks/results"),
                           "streamssl-no-smoothing", "--new-tag", "no-smoothing"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in done.stdout.splitlines()
            if line.startswith(("| 1% |", "| 5% |"))]
    for rate in ("1%", "5%"):
        streams = [r for r in rows if r[0] == rate and r[1] != "**mean**"]
        mean_row, = [r for r in rows if r[0] == rate and r[1] == "**mean**"]
        assert len(streams) == 7
        up, level, down = (sum(int(r[5].split(" / ")[i]) for r in streams) for i in range(3))
        assert up + level + down == 21  # 7 streams, 3 seeds
        per_seed = [float(x.split(": ")[1]) for x in mean_row[5].split(";")[0].removeprefix("per seed ").split(", ")]
        assert len(per_seed) == 3 and "(s.e.)" in mean_row[5]
        # Every stream holds every seed, so the mean over seeds of the suite's mean per seed is the row's mean.
        assert sum(per_seed) / 3 == pytest.approx(float(mean_row[4].strip("*")), abs=0.006)


def test_combiner_replay_probes_see_what_the_learner_saw():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import combiner_replay as cr
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import numpy as np

    mix = cr.Informative(["a", "b"])
    mix.update({"a": [True] * 5, "b": [True] * 5})  # nothing tells them apart: no step, no share
    assert mix.weights == {"a": 0.5, "b": 0.5}
    mix.update({"a": [True], "b": [False]})
    assert mix.weights["a"] > 0.6

    seen = []

    class Spy(cr.MemberTemperatures):
        def observe(self, probas, y):
            seen.append((probas["a"].tolist(), y.tolist()))

    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    log = [["serve", {"a": p, "b": p}, np.array([0, 1, -1]), np.ones(3, dtype=bool)],
           ["update", {"a": [True, False], "b": [True, False]}]]
    accuracy, alone = cr.replay(log, ["a", "b"], Spy(["a", "b"]), revealed=np.array([True, False, True]))
    # Rows 0 and 2 were labelled; row 2's class had no column when it was served.
    assert seen == [([[0.9, 0.1]], [0])]
    assert accuracy == alone["a"] == 2 / 3


def test_the_report_says_how_members_were_scored_on_late_labels():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from suite import combiner_regret
    finally:
        sys.path.pop(0)
    run = {"accuracy": 0.80, "labels_used": 50, "experts": {"mlp": {"accuracy": 0.85}, "tree": {"accuracy": 0.70}}}
    cells = {("s", 0.05): {"streamssl": [run]}}
    at_once = combiner_regret(cells, ["s"], [0.05])
    late = combiner_regret(cells, ["s"], [0.05], label_delay=100)
    assert at_once[-1] == late[-1] == "| s | -5.0 (mlp 0.850, 50 labels) |"
    assert "events late" not in " ".join(at_once) and "came 100 events late" in " ".join(late)
    assert combiner_regret({("s", 0.05): {"river-nb": [run]}}, ["s"], [0.05], label_delay=100) == []

"""The benchmark suite's quick mode, end to end, as CI runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_data

ROOT = Path(__file__).resolve().parents[1]


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

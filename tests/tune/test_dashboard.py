"""The studies open in optuna-dashboard: started on 127.0.0.1 (a free port) on a journal that
seqbench wrote, the study is found through its JSON API, then the dashboard is stopped."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.tune.helpers import ok, seqbench, write_suite


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_optuna_dashboard_lists_the_study_over_http(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed")
    suite = write_suite(tmp_path, tune='sampler = "grid"\ntrials = 1', epochs=2)
    results = tmp_path / "results"
    run = ok(seqbench("tune", str(suite), "--results", str(results), "--device", "cpu", "-q"))
    journal = results / "tn" / "tune" / "journal.log"
    assert f"optuna-dashboard {journal}" in run.stdout  # the command the user is shown
    port = _free_port()
    command = shutil.which("optuna-dashboard")
    argv = [command] if command else [sys.executable, "-m", "optuna_dashboard._cli"]
    dashboard = subprocess.Popen(
        [*argv, str(journal), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only
    try:
        deadline, studies = time.monotonic() + 60, None
        while time.monotonic() < deadline and dashboard.poll() is None:
            try:
                with opener.open(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except OSError:
                time.sleep(0.5)
        assert studies is not None, dashboard.stderr.read() if dashboard.poll() else "no answer"
        names = [s["study_name"] for s in studies]
        assert names == ["tn/gru4rec/synthetic"]
        study_id = studies[0]["study_id"]
        url = f"http://127.0.0.1:{port}/api/studies/{study_id}?after=0"
        with opener.open(url, timeout=10) as response:
            detail = json.load(response)
        assert len(detail["trials"]) == 1 and detail["trials"][0]["state"] == "Complete"
    finally:
        dashboard.terminate()
        try:
            dashboard.wait(timeout=10)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            dashboard.wait()

"""engine=ray engine.address=... runs on an existing Ray cluster (a local head on loopback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl

RAY = Path(sys.executable).parent / "ray"
PORT = 6391


@pytest.fixture
def ray_head():
    if not RAY.exists() and shutil.which("ray") is None:
        pytest.skip("the ray command is not installed")
    command = str(RAY if RAY.exists() else shutil.which("ray"))
    started = subprocess.run(
        [command, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={PORT}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tempfile.mkdtemp(prefix='fr', dir='/tmp')}"],  # short: socket paths
        capture_output=True, text=True, timeout=180,
    )
    assert started.returncode == 0, started.stderr
    yield f"127.0.0.1:{PORT}"
    subprocess.run([command, "stop", "--force"], capture_output=True, timeout=120)


@pytest.mark.slow
def test_runs_on_an_existing_local_ray_cluster(tmp_path, ray_head):
    overrides = ["dataset=synthetic", "num_clients=4", "clients_per_round=2", "num_rounds=2", "progress=false",
                 "engine=ray", f"engine.address={ray_head}"]
    summary = run_experiment(build_experiment(make_config(overrides)), tmp_path / "run")
    assert summary["engine"] == "ray"
    assert [r["round"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1, 2]


def test_token_authentication_sets_and_restores_the_environment(monkeypatch, caplog):
    from fedsim.engine import ray_engine
    from fedsim.engine.ray_engine import token_authentication

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setitem(sys.modules, "ray", sys.modules.get("ray", object()))  # as if Ray were imported
    monkeypatch.setattr(ray_engine, "_driver_uses_tokens", lambda: True)
    with token_authentication(True):
        assert os.environ["RAY_AUTH_MODE"] == "token" and len(os.environ["RAY_AUTH_TOKEN"]) == 64
    assert "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ
    with token_authentication(False):
        assert "RAY_AUTH_MODE" not in os.environ
    # Ray imported without tokens: turning them on would lock the driver out, so warn instead
    monkeypatch.setattr(ray_engine, "_driver_uses_tokens", lambda: False)
    with token_authentication(True):
        assert "RAY_AUTH_MODE" not in os.environ
    assert "accepts connections without a token" in caplog.text
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's own choice is left alone
    with token_authentication(True):
        assert os.environ["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in os.environ


CLUSTER = """
import subprocess, sys
from fedsim.engine.ray_engine import token_authentication
with token_authentication(True):
    import ray
    context = ray.init(include_dashboard=False, num_cpus=1, log_to_driver=False)
print("TOKEN" if __import__("fedsim.engine.ray_engine").engine.ray_engine._driver_uses_tokens() else "NO TOKEN")
intruder = subprocess.run([sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1]); print('CONNECTED')",
                           context.address_info["gcs_address"]], capture_output=True, text=True, timeout=120)
print("INTRUDER", intruder.returncode, "CONNECTED" in intruder.stdout)
ray.shutdown()
"""


@pytest.mark.slow
def test_local_cluster_refuses_a_client_without_the_token():
    # what fedsim's Ray engine does around run_simulation, in a fresh interpreter (Ray fixes its
    # authentication mode on import); the intruder runs without fedsim's environment
    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    result = subprocess.run([sys.executable, "-c", CLUSTER], env=env, capture_output=True, text=True, timeout=240)
    assert "TOKEN\n" in result.stdout and "NO TOKEN" not in result.stdout, result.stderr[-2000:]
    assert "INTRUDER 1 False" in result.stdout, result.stdout


@pytest.mark.slow
def test_a_ray_simulation_runs_in_a_network_namespace_with_loopback_only(tmp_path):
    """The README's way to keep Ray's every-interface ports off the network (unshare --net)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare --net is not permitted here")
    run = tmp_path / "run"
    script = (f"ip link set lo up && ip -brief addr && {sys.executable} -m fedsim.cli engine=ray num_rounds=2 "
              f"progress=false hydra.run.dir={run}")
    done = subprocess.run([unshare, "--net", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    interfaces = [line.split()[0] for line in done.stdout.splitlines() if line.strip() and " " in line
                  and not line.startswith(" ")]
    assert interfaces[:1] == ["lo"] and (run / "summary.json").exists()

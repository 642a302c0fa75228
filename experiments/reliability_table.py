"""The faults fedsim was put through, whether each run survived, and what data was lost.

Each scenario runs a short simulation (synthetic data, 8 clients, 3 per round, 8 rounds)
and checks the records afterwards: every round has its row, the summary exists, failures
and rejections are counted, and (for the crash) the resumed run equals an uninterrupted
one. "Data lost" counts rounds whose records are missing or differ from the reference.

    python experiments/reliability_table.py                 # every scenario, then the hostile inputs
    python experiments/reliability_table.py --hostile-only  # rewrite only the hostile-input table

The hostile-input table runs ``tests/test_hostile_inputs.py`` and ``tests/test_hostile_folders.py``
(the same matrix the test suite runs) and counts, per kind of input, the cases refused in one line before training
with the files already written unchanged, and lists those fedsim does not handle yet (the
matrix's strict-xfail cases) and those skipped here (e.g. no GPU to refuse).
"""

from __future__ import annotations

import os
import subprocess
import sys
import signal
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from fedsim.config import compose_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl
from fedsim.server.loop import TIMING_COLUMNS

BASE = ["dataset=synthetic", "num_clients=8", "clients_per_round=3", "num_rounds=8", "progress=false",
        "train.epochs=1", "hics.temperature=0.01"]
TIMINGS = set(TIMING_COLUMNS)  # the only columns two identical runs may differ in


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def in_process(folder: Path, overrides: list[str]) -> tuple[bool, int, str]:
    """Run in-process; (survived, rounds lost, what was counted)."""
    try:
        summary = run_experiment(build_experiment(compose_config(BASE + overrides)), folder)
    except Exception as exc:  # noqa: BLE001 - the point is to report it
        return False, 8, f"crashed: {exc}"
    rows = read_jsonl(folder / "metrics.jsonl")
    counted = f"{summary['failed_client_rounds']} failed client-rounds, {summary['rejected_replies']} rejected replies"
    return True, 8 - len(rows), counted


def sigkill_and_resume(folder: Path, sampler: str) -> tuple[bool, int, str]:
    """Kill the process after round 5 (checkpoint at 3), resume, compare to a clean run."""
    args = BASE + [f"sampler={sampler}", "checkpoint_every=3"]
    cli(*args, f"hydra.run.dir={folder / 'clean'}", cwd=folder)
    killed = cli(*args, "crash_after_round=5", f"hydra.run.dir={folder / 'killed'}", cwd=folder)
    resumed = cli(f"resume={folder / 'killed'}", f"hydra.run.dir={folder / 'log'}", cwd=folder)
    clean, again = strip(read_jsonl(folder / "clean" / "metrics.jsonl")), strip(read_jsonl(folder / "killed" / "metrics.jsonl"))
    lost = sum(a != b for a, b in zip(clean, again)) + abs(len(clean) - len(again))
    return resumed.returncode == 0, lost, f"killed with exit {killed.returncode}; resumed run identical: {lost == 0}"


def bad_config_after_a_run(folder: Path) -> tuple[bool, int, str]:
    """A bad override aimed at a finished run's folder must not touch its records."""
    run = folder / "run"
    cli(*BASE, f"hydra.run.dir={run}", cwd=folder)
    before = (run / "metrics.jsonl").read_bytes()
    bad = cli(*BASE, "clients_per_round=99", f"hydra.run.dir={run}", cwd=folder)
    unchanged = (run / "metrics.jsonl").read_bytes() == before
    return bad.returncode == 2 and unchanged, 0 if unchanged else 8, f"exit {bad.returncode}, records unchanged: {unchanged}"


def two_writers_one_folder(folder: Path) -> tuple[bool, int, str]:
    """Two runs started at once into one folder: exactly one may run, its records alone."""
    run = folder / "run"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "fedsim.cli", *BASE, f"seed={seed}", f"hydra.run.dir={run}"],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for seed in (0, 1)]
    codes = sorted(p.wait() for p in procs)
    rows = read_jsonl(run / "metrics.jsonl")
    one_run = [r["round"] for r in rows] == list(range(1, 9))
    ok = codes == [0, 2] and one_run
    return ok, 0 if one_run else 8, f"exit codes {codes}; rows are one run's rounds 1-8: {one_run}"


def _ray_run(folder: Path, rounds: int, *overrides: str) -> tuple[subprocess.Popen, Path | None]:
    """Start a Ray-engine run in the background; wait for its first row; (process, Ray session dir)."""
    run = folder / f"run{len(list(folder.glob('run*')))}"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    before = set(Path("/tmp/ray").glob("session_2*"))
    proc = subprocess.Popen([sys.executable, "-m", "fedsim.cli", *BASE, "engine=ray", f"num_rounds={rounds}",
                             *overrides, f"hydra.run.dir={run}"], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not read_jsonl(run / "metrics.jsonl"):
        time.sleep(1)
    sessions = sorted(set(Path("/tmp/ray").glob("session_2*")) - before)
    return proc, sessions[-1] if sessions else None


def _processes_of(session: Path) -> list[int]:
    """Pids whose command line names the Ray session (gcs_server, raylet, agents, workers)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if session.name.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def _outsider_connects(folder: Path, *overrides: str) -> bool | None:
    """While a Ray-engine run trains, a client without a token tries to join its cluster."""
    proc, session = _ray_run(folder, 400, *overrides)
    try:
        port_file = next(session.glob("gcs_server_port_*"), None) if session else None
        if port_file is None:
            return None
        intruder = ("import ray, sys; from ray.util import get_node_ip_address; "
                    "ray.init(address=f'{get_node_ip_address()}:{sys.argv[1]}'); print('CONNECTED')")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        result = subprocess.run([sys.executable, "-c", intruder, port_file.read_text().strip()], env=env,
                                capture_output=True, text=True, timeout=180)
        return result.returncode == 0 and "CONNECTED" in result.stdout
    finally:
        proc.kill()
        proc.wait()


def ray_outsider_without_token(folder: Path) -> tuple[bool, int, str]:
    """An outsider is refused by fedsim's local Ray cluster, and (control) let in with token_auth off."""
    joined = _outsider_connects(folder)
    control = _outsider_connects(folder, "engine.token_auth=false")
    return joined is False and control is True, 0, (
        f"outsider {'refused' if joined is False else 'CONNECTED' if joined else 'not tried'}; "
        f"control with engine.token_auth=false: outsider {'connects' if control else 'refused'}")


def ray_driver_sigkill(folder: Path) -> tuple[bool, int, str]:
    """SIGKILL the driver of a Ray-engine run; how long Ray's processes outlive it."""
    proc, session = _ray_run(folder, rounds=400)
    if session is None:
        proc.kill()
        return False, 0, "no Ray session found"
    alive_at_kill = len(_processes_of(session))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.time()
    while _processes_of(session) and time.time() - killed_at < 600:
        time.sleep(1)
    left = _processes_of(session)
    for pid in left:  # do not leave them to the next scenario
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    seconds = time.time() - killed_at
    return not left, 0, (f"{alive_at_kill} Ray processes at the kill; all gone after {seconds:.0f} s" if not left
                         else f"{len(left)} of {alive_at_kill} Ray processes still up after {seconds:.0f} s (killed)")


SCENARIOS = {
    "SIGKILL after round 5, resume (random)": lambda d: sigkill_and_resume(d, "random"),
    "SIGKILL after round 5, resume (HiCS-FL)": lambda d: sigkill_and_resume(d, "hics"),
    "30% client failures + 5% stragglers (random)": lambda d: in_process(d, ["faults=unreliable"]),
    "30% client failures + 5% stragglers (HiCS-FL)": lambda d: in_process(d, ["faults=unreliable", "sampler=hics"]),
    "30% client failures + 5% stragglers (pow-d)": lambda d: in_process(d, ["faults=unreliable", "sampler=powd"]),
    "every client fails every round": lambda d: in_process(d, ["faults.always_fail=[0,1,2,3,4,5,6,7]"]),
    "join/leave schedule (HiCS-FL)": lambda d: in_process(
        d, ["sampler=hics", "faults.availability={initial:3,join_every:3,join_count:2,leave_after:6,leave_count:2}"]
    ),
    "bad config aimed at a finished run's folder": bad_config_after_a_run,
    "two runs started at once into one folder": two_writers_one_folder,
    "Ray engine: a client without the cluster's token joins": ray_outsider_without_token,
    "Ray engine: driver killed with SIGKILL mid-run": ray_driver_sigkill,
}


TESTS = Path(__file__).resolve().parent.parent / "tests"
HOSTILE_TESTS = [TESTS / "test_hostile_inputs.py", TESTS / "test_hostile_folders.py"]
HOSTILE_HEADING = "## Hostile inputs"
# test function of tests/test_hostile_inputs.py -> the kind of input it feeds fedsim
HOSTILE_KINDS = {
    "test_bad_config_value_is_refused_before_training_in_one_line": "config values (checks the CLI runs, in-process)",
    "test_device_that_is_not_there_is_refused": "config values (checks the CLI runs, in-process)",
    "test_cli_prints_one_error_line_and_exits_2_without_records": "config values through the `fedsim` command",
    "test_resume_refuses_a_config_naming_foreign_targets": "run folders (resume=, reruns, foreign folders)",
    "test_resume_refuses_an_unreadable_config_yaml": "run folders (resume=, reruns, foreign folders)",
    "test_resume_checks_the_saved_config_values": "run folders (resume=, reruns, foreign folders)",
    "test_resume_of_something_that_is_not_a_run": "run folders (resume=, reruns, foreign folders)",
    "test_resume_with_other_settings_is_refused": "run folders (resume=, reruns, foreign folders)",
    "test_resume_of_a_finished_run_changes_nothing": "run folders (resume=, reruns, foreign folders)",
    "test_rerun_into_a_finished_run_folder_is_skipped": "run folders (resume=, reruns, foreign folders)",
    "test_folder_with_user_files_but_no_records_is_refused": "run folders (resume=, reruns, foreign folders)",
    "test_folder_holding_a_different_run_is_refused": "run folders (resume=, reruns, foreign folders)",
    "test_cli_resume_of_a_foreign_config_is_one_line_exit_2": "run folders (resume=, reruns, foreign folders)",
    "test_hostile_checkpoint_is_refused_and_the_folder_left_unchanged":
        "checkpoint files (resume of an unfinished run)",
    "test_hostile_idx_files_are_one_line_data_errors": "IDX files (MNIST format)",
    "test_hostile_cifar_batches_are_one_line_data_errors_and_run_nothing": "CIFAR-10 batch files (pickles)",
    "test_cifar_folder_in_place_of_a_batch": "CIFAR-10 batch files (pickles)",
    "test_cifar_payload_reads_alone_run_nothing": "CIFAR-10 batch files (pickles)",
    # tests/test_hostile_folders.py: the second round (folders planted as an attacker would)
    **dict.fromkeys(["test_resume_does_not_resolve_the_environment_or_send_it_anywhere",
                     "test_a_resumed_run_takes_no_hooks_from_its_folder",
                     "test_a_tensorboard_folder_outside_the_run_folder_is_refused",
                     "test_a_yaml_alias_bomb_is_refused_at_once",
                     "test_a_partition_file_that_is_not_the_runs_partition_is_refused",
                     "test_hostile_metrics_lines_are_refused_naming_the_line",
                     "test_a_fifo_in_a_run_folder_is_refused_without_hanging",
                     "test_record_files_that_are_links_are_refused_and_their_targets_untouched"],
                    "run folders, second round (environment, hooks, aliases, partition, records, FIFOs, links)"),
    **dict.fromkeys(["test_a_checkpoint_with_an_entry_fedsim_does_not_write_is_refused_before_inflating",
                     "test_a_checkpoint_declaring_a_huge_entry_is_refused_before_inflating",
                     "test_an_idx_gzip_whose_content_outgrows_its_header_is_not_inflated_past_it",
                     "test_an_idx_fifo_is_refused_without_hanging",
                     "test_cifar_labels_of_nested_shared_references_are_refused_before_expanding"],
                    "decompression bombs and special files (checkpoints, IDX and CIFAR data)"),
    **dict.fromkeys(["test_a_fresh_run_never_writes_through_a_planted_link",
                     "test_a_fresh_run_into_a_folder_with_links_or_user_files_by_fedsims_names_is_refused",
                     "test_safe_reads_refuse_links_and_oversized_files",
                     "test_compare_replaces_a_planted_link_instead_of_writing_through_it",
                     "test_files_hydra_writes_are_not_written_through_links"],
                    "planted links and users' files (nothing written outside, nothing overwritten)"),
    **dict.fromkeys(["test_compare_skips_a_bad_run_folder_in_one_line_naming_the_file",
                     "test_compare_does_not_hang_on_a_fifo", "test_compare_output_paths_that_are_files_are_refused"],
                    "`fedsim-compare` folders (each bad one skipped in one line; `--strict` refuses)"),
    **dict.fromkeys(["test_values_past_what_fits_are_refused_before_allocating",
                     "test_a_run_that_trains_nothing_exits_4",
                     "test_tracking_targets_that_cannot_be_written_are_refused_before_training",
                     "test_ctrl_c_is_one_line_and_exit_130"],
                    "sizes and ranges past what fits, runs that train nothing (exit 4), Ctrl-C (exit 130)"),
}


def hostile_input_table() -> list[str]:
    """Run the hostile-input matrix (pytest) and summarise it per kind of input."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
        subprocess.run([sys.executable, "-m", "pytest", *map(str, HOSTILE_TESTS), "-q", "-p", "no:cacheprovider",
                        f"--junitxml={report}", "-o", "junit_family=xunit1"], env=env, capture_output=True, text=True)
        cases = ET.parse(report).getroot().iter("testcase")
        tally: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        skip_reasons: dict[str, None] = {}
        for case in cases:
            function, _, case_id = case.get("name").partition("[")
            kind = HOSTILE_KINDS.get(function)
            if kind is None:  # the control run and any new test not yet given a kind
                continue
            label = case_id.rstrip("]") or function.removeprefix("test_").replace("_", " ")
            skipped = case.find("skipped")
            if case.find("failure") is not None or case.find("error") is not None:
                outcome = "FAILED"
            elif skipped is not None and skipped.get("type") == "pytest.xfail":
                outcome = "gap"
            elif skipped is not None:
                outcome = "skipped"
                skip_reasons[skipped.get("message", "").split(": ", 1)[-1]] = None  # drop "device=X is accepted"
            else:
                outcome = "handled"
            tally[kind][outcome].append(label)
    lines = ["| input | cases | refused in one line (exit 2), files unchanged, no payload run | not handled yet "
             "(strict xfail in the matrix) | skipped here |", "|---|---|---|---|---|"]
    for kind in dict.fromkeys(HOSTILE_KINDS.values()):
        got = tally.get(kind, {})
        total = sum(len(v) for v in got.values())
        gaps = got.get("gap", []) + [f"{c} (FAILED)" for c in got.get("FAILED", [])]
        lines.append(f"| {kind} | {total} | {len(got.get('handled', []))} | {len(gaps)}"
                     f"{': ' + '; '.join(f'`{g}`' for g in gaps) if gaps else ''} | "
                     f"{'; '.join(f'`{s}`' for s in got.get('skipped', [])) or '-'} |")
        print(lines[-1], flush=True)
    lines += [""] + [f"Skipped here: {reason}." for reason in skip_reasons]
    return lines


def hostile_section() -> str:
    lines = hostile_input_table()
    return (f"{HOSTILE_HEADING}\n\n`tests/test_hostile_inputs.py` and `tests/test_hostile_folders.py`: each case "
            "must end in one line naming the input (`fedsim: error: ...`, exit 2; 3 only for a diverged run, 4 for "
            "a run that trained nothing, 130 for Ctrl-C; `fedsim-compare` skips a bad run folder in one line "
            "naming the file) before training where the input is "
            "known before training, leave every file already written unchanged (hashed before and after) and "
            "never run a payload (each payload only creates a marker file).\n\n" + "\n".join(lines) + "\n")


def main() -> None:
    """Run every scenario and the hostile-input matrix; print/save the tables."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = Path(args[0]) if args else Path("experiments/results/reliability.md")
    if "--hostile-only" in sys.argv and out.exists():
        kept = out.read_text().split(f"\n{HOSTILE_HEADING}\n")[0].rstrip("\n")
        out.write_text(f"{kept}\n\n{hostile_section()}")
        return
    lines = ["| fault | survived | rounds of records lost | what was recorded |", "|---|---|---|---|"]
    for name, scenario in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as folder:
            survived, lost, note = scenario(Path(folder))
        lines.append(f"| {name} | {'yes' if survived else 'NO'} | {lost} | {note} |")
        print(lines[-1], flush=True)
    hostile = "Hostile replies (NaN/inf, wrong shape or dtype, missing keys, absurd num-examples): see tests/test_reliability.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("Produced by: `python experiments/reliability_table.py`\n\n" + "\n".join(lines)
                   + f"\n\n{hostile}\n\n{hostile_section()}")


if __name__ == "__main__":
    main()

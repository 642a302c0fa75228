"""Where the Ray engine's driver process spends its time: a py-spy sample of a real run.

Starts ``fedsim +experiment=paper_fmnist_s2 engine=ray`` (evaluation only after the last
round, so the driver's own work is the engine's), waits until round 3 is recorded, samples
the driver's Python threads with py-spy (``pip install py-spy``; idle samples included) for
``--seconds``, and writes the share of samples per thread and per innermost frame, split
into waiting (lock/condition waits, sleeps, Ray's blocking ``get``) and running.

py-spy sees Python frames only: CPU the driver spends in Ray's native threads (its core
worker, gRPC) does not appear here; ``benchmarks/engine_overhead.py`` measures the driver's
CPU seconds as a whole.

    python benchmarks/ray_driver_profile.py --rounds 25 --out benchmarks/results/ray_driver_profile.md
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAITING = ("Condition.wait", "_wait_for_tstate_lock", "get_objects", "listen_error_messages", "sleep",
           "send_and_receive", "Popen._wait", "Event.wait", "select", "poll")


def rounds_recorded(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        sys.exit("py-spy is not installed; install it with: pip install py-spy")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FLWR_TELEMETRY_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, raw = Path(tmp) / "run", Path(tmp) / "samples.txt"
        proc = subprocess.Popen([sys.executable, "-m", "fedsim.cli", "+experiment=paper_fmnist_s2", "engine=ray",
                                 f"num_rounds={args.rounds}", "eval_every=100000", "progress=false",
                                 f"hydra.run.dir={run_dir}"], cwd=tmp, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while rounds_recorded(run_dir) < 3:
            if proc.poll() is not None:
                sys.exit(f"the run ended before round 3: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
        started_round = rounds_recorded(run_dir)
        subprocess.run([pyspy, "record", "-p", str(proc.pid), "-d", str(args.seconds), "-r", "50", "-f", "raw",
                        "-o", str(raw), "--threads", "--idle"], check=True, capture_output=True)
        ended_round = rounds_recorded(run_dir)
        proc.wait()
        wall = json.loads((run_dir / "summary.json").read_text()).get("wall_seconds")
        threads: collections.Counter = collections.Counter()
        leaves: collections.Counter = collections.Counter()
        running = total = 0
        for line in raw.read_text().splitlines():
            stack, count = line.rsplit(" ", 1)
            frames, n = stack.split(";"), int(count)
            total += n
            threads[frames[0].split(": ", 1)[-1]] += n
            leaf = frames[-1].split(" (")[0]
            if not any(w in leaf for w in WAITING):
                running += n
                leaves[frames[-1]] += n
    command = " ".join(["python benchmarks/ray_driver_profile.py", *sys.argv[1:]])
    lines = [f"Produced by: `{command}`", "",
             f"FMNIST setting 2, Ray engine, {args.rounds} rounds ({wall} s wall), py-spy at 50 Hz over "
             f"{args.seconds} s (rounds {started_round + 1}-{ended_round}), load average {os.getloadavg()[0]:.1f}.",
             "", f"- samples: {total} over {len(threads)} Python threads; **{running} ({running / max(total, 1):.1%}) "
             "not waiting** (the rest: condition and lock waits, sleeps, Ray's blocking get, the grid's pull sleep)", "",
             "| thread | samples |", "|---|---|"]
    lines += [f"| {name} | {n} |" for name, n in threads.most_common()]
    lines += ["", "| innermost frame of a running sample | samples |", "|---|---|"]
    lines += [f"| `{frame}` | {n} |" for frame, n in leaves.most_common(12)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

"""Run a study's (sampler x seed) grid as one Hydra multirun on the joblib launcher.

Each job is ``fedsim +experiment=<preset> sampler=<s> seed=<k>`` in ``<out>/<sampler>_seed<k>``;
fedsim skips finished runs and resumes unfinished ones, and each run folder has one writer
(its lock), so rerunning the same command continues a study across sittings. Jobs run in
``jobs`` worker processes (one torch thread each: the inline engine's default), seed-major,
so samplers are paired as early as possible.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

from fedsim.errors import RunFailed


def run_sweep(out: Path, experiment: str, samplers: Sequence[str], seeds: Sequence[int], jobs: int = 2,
              extra: Sequence[str] = ()) -> None:
    """Launch the grid (blocks until every job has finished); a failed run raises RunFailed."""
    command = [
        sys.executable, "-m", "fedsim.cli", "-m", f"+experiment={experiment}",
        f"seed={','.join(str(k) for k in seeds)}", f"sampler={','.join(samplers)}", "progress=false",
        "hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", f"hydra.sweep.dir={out}",
        "hydra.sweep.subdir=${sampler.name}_seed${seed}", *extra,
    ]
    returncode = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    if returncode:
        raise RunFailed(returncode)

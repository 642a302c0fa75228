"""``fedsim-compare FOLDER... [--target 0.75] [--smooth 5] [--baseline random] [--effect 1.5x]
[--effect 0.01] [--window 50] [--final-window 10] [--out DIR] [--no-plots]``

Writes into ``--out`` (default: the first folder): ``comparison.md`` (the report),
``comparison.csv`` (one row per setting x sampler), ``paired.csv`` (one row per setting x
metric x sampler against the baseline), ``per_run.csv``, ``selection.csv`` and the PNGs
``accuracy.png``, ``learning_curves.png``, ``participation.png`` (when partitions have
groups) and ``per_class.png`` (when runs record per-class accuracy).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from fedsim.compare import metrics, report, stats
from fedsim.compare.load import load
from fedsim.safe_io import write_text_atomic

DEFAULT_EFFECTS = ("1.5x", "0.01")


def compare(paths: Sequence[str | Path], *, target: float = 0.75, smooth: int = 5, baseline: str = "random",
            effects: Sequence[str] = DEFAULT_EFFECTS, window: int = 50, final_window: int = 10,
            out: str | Path | None = None, plots: bool = True, strict: bool = False) -> dict[str, Any]:
    """Load, measure, compare and write everything; returns the tables and written files."""
    if smooth < 1 or window < 1 or final_window < 1:
        raise ValueError("smooth, window and final_window must be >= 1")
    for effect in effects:
        stats.parse_effect(effect)
    study = load(paths, strict=strict)
    out_dir = Path(out) if out is not None else Path(paths[0])
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; give a folder for the report")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out_dir}: cannot create it ({exc.strerror or exc}); give another folder") from None
    done = study.finished()
    result: dict[str, Any] = {"study": study, "runs": len(done.runs), "unfinished": study.unfinished, "files": [],
                              "skipped": study.skipped}
    if done.runs.empty:
        return result
    per_run = metrics.per_run(done, target, smooth, final_window)
    summary = metrics.summarize(per_run)
    # pairs only runs drawn with the same random streams (per_run.csv keeps its columns)
    streams = per_run.merge(done.runs[["run", "streams_version"]], on="run", how="left")
    paired = stats.paired(streams, baseline, effects=effects)
    health = metrics.selection_health(done, window)
    selection = metrics.selection_summary(health) if not health.empty else health
    fewest = metrics.fewest_distinct(done, window)
    shares = metrics.group_shares(done)
    written: list[Path] = []
    if plots:
        from fedsim.compare import plots as plotting

        written += [plotting.accuracy_bands(done, target, out_dir / "accuracy.png"),
                    plotting.learning_curves(done, target, out_dir / "learning_curves.png")]
        written += [p for p in (plotting.participation(shares, out_dir / "participation.png"),
                                plotting.per_class(done, out_dir / "per_class.png")) if p is not None]
    markdown = report.to_markdown(summary, paired, selection, shares, fewest=fewest, target=target, smooth=smooth,
                                  window=window, baseline=baseline, effects=effects, unfinished=study.unfinished,
                                  plots=[p.name for p in written], final_window=final_window,
                                  mixed_streams=done.mixed_streams(), skipped=study.skipped)
    files = {"comparison.md": None, "comparison.csv": report.summary_csv(summary, selection, fewest),
             "paired.csv": paired, "per_run.csv": per_run, "selection.csv": health}
    write_text_atomic(out_dir / "comparison.md", markdown)
    for name, frame in files.items():
        if frame is not None:
            report.write_csv(frame, out_dir / name)
    result.update(mixed_streams=done.mixed_streams(), per_run=per_run, summary=summary, paired=paired, selection=selection, fewest=fewest,
                  shares=shares, markdown=markdown, files=[out_dir / n for n in files] + written)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``fedsim-compare``."""
    parser = argparse.ArgumentParser(prog="fedsim-compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="sweep or run folders (searched for metrics.jsonl)")
    parser.add_argument("--target", type=float, default=0.75, help="target accuracy (default 0.75)")
    parser.add_argument("--smooth", type=int, default=5, help="trailing-mean window for smoothed rounds to target (default 5)")
    parser.add_argument("--baseline", default="random", help="sampler the others are paired against (default random)")
    parser.add_argument("--effect", action="append", default=None,
                        help="effect for 'seeds needed': '1.5x' (ratio of rounds to target) or '0.01' "
                             "(accuracy difference); repeatable (default: 1.5x and 0.01)")
    parser.add_argument("--window", type=int, default=50, help="rounds per selection-health window (default 50)")
    parser.add_argument("--final-window", type=int, default=10, help="evaluated rounds in the final-window mean (default 10)")
    parser.add_argument("--out", default=None, help="output folder (default: the first folder)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--strict", action="store_true",
                        help="refuse the whole comparison when a run folder cannot be read (default: skip it)")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"fedsim-compare: no such path: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = [p for p in args.paths if not Path(p).is_dir()]
    if files:
        print(f"fedsim-compare: {files[0]} is not a folder; give run or sweep folders", file=sys.stderr)
        return 2
    try:
        result = compare(args.paths, target=args.target, smooth=args.smooth, baseline=args.baseline,
                         effects=args.effect or DEFAULT_EFFECTS, window=args.window,
                         final_window=args.final_window, out=args.out, plots=not args.no_plots,
                         strict=args.strict)
    except ValueError as error:  # BadRun (with --strict) included: one line naming the file
        print(f"fedsim-compare: {error}", file=sys.stderr)
        return 2
    for reason in result["skipped"]:
        print(f"fedsim-compare: skipped a run folder: {reason}", file=sys.stderr)
    print(f"{result['runs']} finished run(s); {len(result['unfinished'])} unfinished run(s) left out"
          + (f"; {len(result['skipped'])} unreadable run folder(s) skipped" if result["skipped"] else ""))
    for setting in result.get("mixed_streams", []):
        print(f"fedsim-compare: warning: {setting} mix runs of fedsim before and after 0.2.0 (other random "
              f"streams) under one seed, so those seeds are not paired; rerun the older ones", file=sys.stderr)
    for _, row in result["unfinished"].iterrows():
        print(f"unfinished: {row['run']} ({row['rounds_recorded']} rounds recorded)")
    if not result["runs"]:
        print("fedsim-compare: no finished runs to compare", file=sys.stderr)
        return 1
    for path in result["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

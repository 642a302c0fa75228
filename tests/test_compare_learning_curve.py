"""fedsim.results.learning_curve.write_learning_curve on tiny runs."""

from __future__ import annotations

from pathlib import Path

from matplotlib.image import imread

from compare_helpers import write_run
from fedsim.results.learning_curve import write_learning_curve


def test_writes_png_with_and_without_per_class(tmp_path: Path) -> None:
    plain = write_run(tmp_path, "plain", accuracies=[0.5, None, 0.7])
    path = write_learning_curve(plain)
    assert path == plain / "learning_curve.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert imread(path).shape[:2] == (400, 700)  # 7 x 4 inches at 100 dpi
    classes = write_run(tmp_path, "classes", accuracies=[0.5, 0.6, 0.7],
                        per_class=[[0.4, 0.6], None, [0.6, None]])
    assert write_learning_curve(classes, "curve.png") == classes / "curve.png"
    assert (classes / "curve.png").stat().st_size > 0


def test_no_evaluated_round_draws_nothing(tmp_path: Path) -> None:
    run = write_run(tmp_path, "empty", accuracies=[None, None])
    assert write_learning_curve(run) is None
    assert not (run / "learning_curve.png").exists()

"""Tracking sinks: round hooks that send each round's metrics to CSV, TensorBoard or MLflow.

Choose them with the ``tracking`` config group, several at once
(``fedsim tracking=[csv,tensorboard,mlflow]``); each option adds its hook under the
top-level ``hooks`` mapping (``conf/tracking/*.yaml``), so one can also be added by hand:
``fedsim +hooks.csv._target_=fedsim.tracking.CsvTracker``.

Every sink records the same per-round values (:func:`round_metrics`): accuracy, loss,
train loss, accuracy per class, and the selection: clients selected, distinct clients
selected so far, failed clients and rejected replies. A resumed run continues its sinks:
the CSV file drops the rows after the checkpoint, the MLflow run is reopened, TensorBoard
gets a new event file in the same folder. Sinks add nothing to ``summary.json``.

TensorBoard and MLflow are optional: ``pip install 'fedsim[tracking]'``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fedsim.errors import ConfigError
from fedsim.hooks import RoundHook, RoundResult, RunContext
from fedsim.results.recorder import METRICS_FILE
from fedsim.safe_io import RECORDS_LIMIT, atomic_writer, open_write, read_text


def _finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def config_yaml(config: Any) -> str:
    """The run's resolved configuration as YAML ('' when there is none)."""
    if config is None:
        return ""
    if isinstance(config, DictConfig):
        return OmegaConf.to_yaml(config, resolve=True)
    return OmegaConf.to_yaml(OmegaConf.create(config))


def flatten_config(config: Any) -> dict[str, str]:
    """The resolved configuration as ``{"train.lr": "0.05", ...}`` (lists as JSON)."""
    if config is None:
        return {}
    plain = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, (list, tuple, dict)):
            flat[prefix] = json.dumps(node)
        else:
            flat[prefix] = "null" if node is None else str(node)

    walk("", plain)
    return flat


class SelectionTracker(RoundHook):
    """Base of the sinks: keeps the distinct clients selected so far and builds each round's values."""

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.config: Any = None
        self.num_classes = 0
        self.seen: set[int] = set()

    def on_run_start(self, context: RunContext) -> None:
        """Remember the run; on resume, count the clients selected before the checkpoint."""
        self.run_dir = Path(context.run_dir)
        self.config = context.config
        self.num_classes = int(context.num_classes)
        self.seen = set()
        if context.resumed:
            self.seen = previously_selected(self.run_dir, context.first_round)

    def round_metrics(self, result: RoundResult) -> dict[str, float]:
        """This round's values by name (missing or non-finite values left out)."""
        row = result.row
        self.seen.update(int(c) for c in row.get("selected") or [])
        values: dict[str, float | None] = {
            "accuracy": _finite(row.get("accuracy")),
            "loss": _finite(row.get("loss")),
            "train_loss": _finite(row.get("train_loss")),
            "selection/selected": float(len(row.get("selected") or [])),
            "selection/distinct_clients": float(len(self.seen)),
            "selection/failed": float(len(row.get("failed") or [])),
            "selection/rejected": float(len(row.get("rejected") or {})),
        }
        for k, acc in enumerate(row.get("per_class_accuracy") or []):
            values[f"per_class_accuracy/{k}"] = _finite(acc)
        return {name: value for name, value in values.items() if value is not None}


def previously_selected(run_dir: Path, first_round: int) -> set[int]:
    """Clients selected in the rounds before ``first_round``, from the run's ``metrics.jsonl``."""
    path = run_dir / METRICS_FILE
    seen: set[int] = set()
    if not os.path.lexists(path):
        return seen
    for line in read_text(path, RECORDS_LIMIT).splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and int(row.get("round", first_round)) < first_round:
            seen.update(int(c) for c in row.get("selected") or [])
    return seen


class CsvTracker(SelectionTracker):
    """``metrics.csv`` in the run folder: one row per round, accuracy per class as columns.

    Columns: round, accuracy, loss, train_loss, selected, distinct_clients, failed,
    rejected, available, then ``accuracy_class_<k>`` for each class. A value that was not
    measured (a round without evaluation) is an empty cell.
    """

    BASE_COLUMNS = ("round", "accuracy", "loss", "train_loss", "selected", "distinct_clients", "failed",
                    "rejected", "available")

    def __init__(self, filename: str = "metrics.csv") -> None:
        super().__init__()
        if not filename or Path(filename).name != filename:
            raise ConfigError(f"hooks.csv.filename={filename}: give a file name without folders, e.g. metrics.csv")
        self.filename = filename
        self.columns: list[str] = []
        self.path: Path | None = None

    def on_run_start(self, context: RunContext) -> None:
        """Write the header (or, on resume, keep only the rows before the first round to run)."""
        super().on_run_start(context)
        self.columns = list(self.BASE_COLUMNS) + [f"accuracy_class_{k}" for k in range(self.num_classes)]
        self.path = self.run_dir / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict[str, str]] = []
        if context.resumed and os.path.lexists(self.path):
            text = read_text(self.path, RECORDS_LIMIT)
            kept = [r for r in csv.DictReader(io.StringIO(text, newline="")) if r.get("round", "").isdigit()
                    and int(r["round"]) < context.first_round]
        with atomic_writer(self.path) as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def on_round_end(self, result: RoundResult) -> None:
        """Append the round's row."""
        values = self.round_metrics(result)
        row = result.row
        record: dict[str, Any] = {
            "round": result.server_round,
            "accuracy": values.get("accuracy", ""),
            "loss": values.get("loss", ""),
            "train_loss": values.get("train_loss", ""),
            "selected": int(values["selection/selected"]),
            "distinct_clients": int(values["selection/distinct_clients"]),
            "failed": int(values["selection/failed"]),
            "rejected": int(values["selection/rejected"]),
            "available": row.get("available", ""),
        }
        for k in range(self.num_classes):
            record[f"accuracy_class_{k}"] = values.get(f"per_class_accuracy/{k}", "")
        with open_write(self.path, append=True) as handle:
            csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore").writerow(record)


def writable_folder(path: Path, setting: str) -> Path:
    """``path`` as a folder fedsim can write in, made if missing; one-line ConfigError otherwise.

    Checked when the run starts (before round 1), so a tracking folder that is a file, a
    link or read-only stops the run before any training instead of with a traceback later.
    """
    if os.path.islink(path) or (os.path.lexists(path) and not path.is_dir()):
        raise ConfigError(f"{setting}: {path} is {'a link' if os.path.islink(path) else 'a file'}, not a folder "
                          f"fedsim can write its tracking into; remove it")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".fedsim-write-test-{os.getpid()}"
        with open_write(probe):
            pass
        probe.unlink()
    except (OSError, ConfigError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{setting}: cannot write in {path} ({reason}); make it writable or remove it") from None
    return path


def _require(module: str) -> None:
    raise ConfigError(f"tracking: {module} is not installed; install it with: pip install 'fedsim[tracking]'")


class TensorBoardTracker(SelectionTracker):
    """TensorBoard event files in ``<run folder>/<subdir>`` (default ``tensorboard``).

    Scalars per round (step = round): ``accuracy``, ``loss``, ``train_loss``,
    ``per_class_accuracy/<k>``, ``selection/{selected,distinct_clients,failed,rejected}``;
    and the resolved config as the text ``config``. View with ``tensorboard --logdir outputs``.
    """

    def __init__(self, subdir: str = "tensorboard") -> None:
        super().__init__()
        try:
            import tensorboard  # noqa: F401  (SummaryWriter needs it)
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            _require("tensorboard")
        parts = Path(subdir).parts
        if not parts or Path(subdir).is_absolute() or ".." in parts:
            raise ConfigError(f"hooks.tensorboard.subdir={subdir}: must be a folder inside the run folder "
                              f"(relative, without ..), e.g. tensorboard")
        self.subdir = subdir
        self.writer: Any = None

    def on_run_start(self, context: RunContext) -> None:
        """Open the writer and record the config."""
        from torch.utils.tensorboard import SummaryWriter

        super().on_run_start(context)
        folder = writable_folder(self.run_dir / self.subdir, "tracking=tensorboard")
        self.writer = SummaryWriter(log_dir=str(folder))
        text = config_yaml(context.config)
        if text:
            # TensorBoard renders text as Markdown: indent by four spaces to keep it verbatim.
            self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()),
                                 global_step=context.first_round - 1)
        self.writer.flush()

    def on_round_end(self, result: RoundResult) -> None:
        """Write the round's scalars."""
        for name, value in self.round_metrics(result).items():
            self.writer.add_scalar(name, value, global_step=result.server_round)
        self.writer.flush()

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowTracker(SelectionTracker):
    """One MLflow run per fedsim run: params = the flattened resolved config, metrics per round.

    ``tracking_uri`` null (default) logs to a local file store ``file:<run folder>/mlruns``,
    no server needed (view: ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri
    <run folder>/mlruns``); any other MLflow URI (``http://...``, ``sqlite:///...``,
    ``file:/...``) is used as given. MLflow 3 keeps its file store in maintenance mode and
    refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``: for a ``file:`` URI this tracker
    sets that variable (unless it is already set), since the file store needs no database
    set-up (a fresh ``sqlite:`` store takes seconds to create its tables).
    Metrics (step = round) have the same names as TensorBoard's; the run is tagged with
    the run folder (``fedsim.run_dir``), which is how a resumed run finds it again.
    """

    MAX_PARAMS_PER_CALL = 100
    MAX_PARAM_LENGTH = 6000

    def __init__(self, tracking_uri: str | None = None, experiment_name: str = "fedsim",
                 run_name: str | None = None) -> None:
        super().__init__()
        try:
            import mlflow  # noqa: F401
        except ImportError:
            _require("mlflow")
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.client: Any = None
        self.run_id: str | None = None

    def uri(self) -> str:
        """The tracking URI this run logs to."""
        if self.tracking_uri:
            return str(self.tracking_uri)
        return (self.run_dir / "mlruns").resolve().as_uri()

    def on_run_start(self, context: RunContext) -> None:
        """Create (or, on resume, reopen) the MLflow run and log the config as params."""
        from mlflow.tracking import MlflowClient

        super().on_run_start(context)
        uri = self.uri()
        if not self.tracking_uri:
            writable_folder(self.run_dir / "mlruns", "tracking=mlflow")
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(self.experiment_name))
        run_dir = str(self.run_dir.resolve())
        if context.resumed:
            found = self.client.search_runs([experiment_id], filter_string=f"tags.`fedsim.run_dir` = '{run_dir}'",
                                            max_results=1)
            if found:
                self.run_id = found[0].info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                return
        tags = {"fedsim.run_dir": run_dir}
        sampler = self._config_value("sampler", "name")
        if sampler:
            tags["fedsim.sampler"] = str(sampler)
        run = self.client.create_run(experiment_id, tags=tags, run_name=self.run_name or self.run_dir.name)
        self.run_id = run.info.run_id
        self._log_params(flatten_config(context.config))

    def _config_value(self, *keys: str) -> Any:
        node = self.config
        for key in keys:
            if node is None or not hasattr(node, "get"):
                return None
            node = node.get(key)
        return node

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[: self.MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(items), self.MAX_PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[start:start + self.MAX_PARAMS_PER_CALL])

    def on_round_end(self, result: RoundResult) -> None:
        """Log the round's metrics with step = round."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, result.server_round) for name, value in self.round_metrics(result).items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Mark the MLflow run finished."""
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, status="FINISHED")

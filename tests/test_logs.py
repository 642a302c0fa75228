"""fedsim's logging set-up and the failure report hook."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from conftest import make_config
from fedsim.errors import ConfigError
from fedsim.experiment import build_experiment, run_experiment
from fedsim.hooks import RoundResult, RunContext
from fedsim.logs import FailureReport, close_logging, setup_logging

ARRAYS = ArrayRecord({"w": Array(np.ones(3, dtype=np.float32))})


@pytest.fixture
def logging_set_up():
    """Undo setup_logging after the test (it stops propagation to the root logger)."""
    yield
    close_logging()


class RootRecorder(logging.Handler):
    """Stands in for Hydra's console handler on the root logger."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_console_gets_one_line_per_message_at_the_level_and_the_file_gets_everything(tmp_path, capsys,
                                                                                       logging_set_up):
    root = RootRecorder()
    logging.getLogger().addHandler(root)
    try:
        setup_logging(tmp_path, "INFO")
        log = logging.getLogger("fedsim.some.module")
        log.debug("detail only in the file")
        log.info("loaded %d examples", 40)
        log.warning("two\nlines")
        try:
            raise ValueError("bad value\nsecond line")
        except ValueError:
            log.exception("building failed")
    finally:
        logging.getLogger().removeHandler(root)
    err = capsys.readouterr().err.splitlines()
    assert err == ["fedsim: loaded 40 examples", "fedsim: warning: two | lines",
                   "fedsim: error: building failed (ValueError: bad value | second line)"]
    assert root.records == []  # nothing reaches Hydra's root handler: no duplicate lines
    close_logging()
    text = (tmp_path / "fedsim.log").read_text()
    assert "DEBUG   fedsim.some.module: detail only in the file" in text
    assert "Traceback (most recent call last)" in text and "loaded 40 examples" in text


def test_warning_level_hides_info_and_no_run_dir_means_no_file(tmp_path, capsys, logging_set_up, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup_logging(None, "warning")
    logging.getLogger("fedsim").info("hidden")
    logging.getLogger("fedsim").warning("shown")
    assert capsys.readouterr().err == "fedsim: warning: shown\n"
    assert list(tmp_path.iterdir()) == []


def test_a_second_set_up_replaces_the_first_and_close_restores(tmp_path, capsys):
    logger = logging.getLogger("fedsim")
    before = (list(logger.handlers), logger.propagate)
    setup_logging(tmp_path / "a", "INFO")
    setup_logging(tmp_path / "b", "INFO")  # the next run of a sweep
    logging.getLogger("fedsim").info("second run")
    close_logging()
    assert capsys.readouterr().err == "fedsim: second run\n"  # printed once, not twice
    assert "second run" not in (tmp_path / "a" / "fedsim.log").read_text()
    assert "second run" in (tmp_path / "b" / "fedsim.log").read_text()
    assert (list(logger.handlers), logger.propagate) == before


def test_an_unknown_level_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="log_level=LOUD: expected one of DEBUG, INFO, WARNING, ERROR"):
        setup_logging(tmp_path, "LOUD")
    assert not (tmp_path / "fedsim.log").exists()


def result(server_round: int, selected, failed=(), reasons=None, rejected=None) -> RoundResult:
    return RoundResult(server_round, ARRAYS, {"round": server_round, "accuracy": 0.5, "loss": 1.0,
                                              "selected": list(selected), "failed": list(failed),
                                              "failure_reasons": reasons or {}, "rejected": rejected or {}})


def test_failure_report_logs_each_round_and_a_summary_line(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="fedsim.failures")
    hook = FailureReport()
    hook.on_run_start(RunContext(tmp_path, None, 1, 3, num_classes=2))
    hook.on_round_end(result(1, [0, 1, 2]))
    hook.on_round_end(result(2, [0, 2, 4], failed=[0, 4],
                             reasons={"0": "injected failure", "4": "rejected: NaN in arrays"},
                             rejected={"4": "NaN in arrays"}))
    hook.on_round_end(result(3, [1, 3, 5], failed=[3], reasons={"3": "no reply"}))
    summary: dict = {"final_accuracy": 0.5}
    hook.on_run_end(summary)
    assert summary == {"final_accuracy": 0.5}  # adds nothing
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.WARNING, "round 2: 2 of 3 selected clients failed: partition 0 (injected failure), "
                          "partition 4 (rejected: NaN in arrays)"),
        (logging.WARNING, "round 3: 1 of 3 selected clients failed: partition 3 (no reply)"),
        (logging.WARNING, "3 failed client-rounds, 1 rejected reply (partition 4: NaN in arrays)"),
    ]


def test_failure_report_without_failures_logs_the_summary_at_debug_only(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="fedsim.failures")
    hook = FailureReport()
    hook.on_run_start(RunContext(tmp_path, None, 1, 1, num_classes=2))
    hook.on_round_end(result(1, [0, 1]))
    hook.on_run_end({})
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "0 failed client-rounds, 0 rejected replies")]


def test_failure_report_lists_at_most_three_rejected_replies(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="fedsim.failures")
    hook = FailureReport()
    hook.on_run_start(RunContext(tmp_path, None, 1, 5, num_classes=2))
    for r in range(1, 6):
        hook.on_round_end(result(r, [r], failed=[r], reasons={str(r): "rejected: inf loss"},
                                 rejected={str(r): "inf loss"}))
    hook.on_run_end({})
    assert caplog.records[-1].getMessage() == ("5 failed client-rounds, 5 rejected replies (partition 1: inf loss; "
                                               "partition 2: inf loss; partition 3: inf loss; 2 more)")


def test_failure_report_on_a_run_with_injected_failures(tmp_path, small_overrides, caplog, capsys, logging_set_up):
    caplog.set_level(logging.WARNING, logger="fedsim.failures")
    setup_logging(tmp_path, "INFO")
    experiment = build_experiment(make_config(small_overrides + ["faults.always_fail=[0,1,2,3,4,5]"]))
    summary = run_experiment(experiment, tmp_path)  # FailureReport is one of fedsim's own hooks
    close_logging()
    err = capsys.readouterr().err
    assert err.count("selected clients failed") == 3
    assert "fedsim: warning: 9 failed client-rounds, 0 rejected replies" in err
    assert "9 failed client-rounds" in (tmp_path / "fedsim.log").read_text()
    assert summary["failed_client_rounds"] == 9

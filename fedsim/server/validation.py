"""Checks of a client's training reply before anything in it is trusted.

A reply that fails is rejected with a reason (recorded in the round's row) and never
aggregated or shown to the sampler: one hostile or broken client must neither crash the
run nor poison the global model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, RecordDict

from fedsim.errors import NON_FINITE


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_arrays(record: Any, expected: dict[str, tuple[tuple[int, ...], np.dtype]], name: str) -> str | None:
    if not isinstance(record, ArrayRecord):
        return f"missing {name}"
    if set(record.keys()) != set(expected):
        return f"{name}: keys {sorted(record.keys())} != expected {sorted(expected)}"
    for key, (shape, dtype) in expected.items():
        array = record[key].numpy()
        if array.shape != shape:
            return f"{name}.{key}: shape {array.shape} != {shape}"
        if array.dtype != dtype:
            return f"{name}.{key}: dtype {array.dtype} != {dtype}"
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            return f"{name}.{key}: {NON_FINITE}"
    return None


def reply_problem(
    content: RecordDict,
    global_arrays: dict[str, np.ndarray],
    output_keys: tuple[str, str],
    max_examples: int,
) -> str | None:
    """Why a training reply must be rejected, or None if it is sound.

    Checks: the model arrays have exactly the global model's keys, shapes and dtypes and
    are finite; the output-layer update matches the output layer and is finite; the
    metrics hold a whole ``num-examples`` in [1, max_examples], a finite ``train-loss``
    and a non-negative ``num-steps``.
    """
    if "metrics" not in content.metric_records:
        return "missing metrics"
    metrics = content.metric_records["metrics"]
    for key in ("num-examples", "train-loss", "num-steps"):
        if key not in metrics:
            return f"metrics: missing {key}"
    num_examples = metrics["num-examples"]
    if not isinstance(num_examples, int) or not 1 <= num_examples <= max_examples:
        return f"metrics: num-examples={num_examples} outside [1, {max_examples}]"
    if not _finite_number(metrics["train-loss"]):
        return f"metrics: train-loss={metrics['train-loss']} is not a finite number"
    if not isinstance(metrics["num-steps"], int) or metrics["num-steps"] < 0:
        return f"metrics: num-steps={metrics['num-steps']} is not a count"
    expected = {k: (v.shape, v.dtype) for k, v in global_arrays.items()}
    problem = _check_arrays(content.array_records.get("arrays"), expected, "arrays")
    if problem:
        return problem
    weight_key, bias_key = output_keys
    expected_update = {"bias": expected[bias_key], "weight": expected[weight_key]}
    return _check_arrays(content.array_records.get("output_update"), expected_update, "output_update")

"""The fast central evaluator agrees with the plain evaluation it replaced; per-class accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord
from torch.nn import functional as F

from fedsim.models.networks import FmnistCnn, Mlp
from fedsim.server.evaluation import CentralEvaluator, Evaluation


def reference(model_factory, arrays, x, y):
    """The previous code path: a fresh model, no_grad, batches of 1024, python sums."""
    model = model_factory()
    model.load_state_dict(arrays.to_torch_state_dict())
    model.eval()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    total, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(y), 1024):
            logits = model(x[s : s + 1024])
            total += float(F.cross_entropy(logits, y[s : s + 1024], reduction="sum"))
            correct += int((logits.argmax(1) == y[s : s + 1024]).sum())
    return total / len(y), correct / len(y)


@pytest.mark.parametrize(
    "factory,shape",
    [(lambda: FmnistCnn((1, 28, 28), 10), (1, 28, 28)), (lambda: Mlp((8,), 10, (16,)), (8,))],
)
def test_matches_the_previous_code(factory, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, *shape)).astype(np.float32)
    y = rng.integers(0, 10, size=1500).astype(np.int64)
    evaluator = CentralEvaluator(x, y, factory)
    for seed in range(3):  # the one model instance gets new weights each call
        torch.manual_seed(seed)
        arrays = ArrayRecord(factory().state_dict())
        loss, accuracy = evaluator(arrays)
        ref_loss, ref_accuracy = reference(factory, arrays, x, y)
        assert abs(accuracy - ref_accuracy) <= 1e-6
        assert abs(loss - ref_loss) <= 1e-6 * max(1.0, abs(ref_loss))


def test_per_class_accuracy_and_absent_classes():
    x = np.eye(4, dtype=np.float32)[[0, 1, 1, 2, 2, 2]]
    y = np.array([0, 1, 1, 2, 2, 0], dtype=np.int64)  # class 3 absent
    model = Mlp((4,), 4, ())
    with torch.no_grad():  # logits = x: predicts the one-hot position
        model.head.weight.copy_(torch.eye(4))
        model.head.bias.zero_()
    evaluator = CentralEvaluator(x, y, lambda: Mlp((4,), 4, ()))
    result = evaluator.evaluate(ArrayRecord(model.state_dict()))
    assert isinstance(result, Evaluation)
    # predictions 0,1,1,2,2,2 vs labels 0,1,1,2,2,0: class 0 1/2, class 1 2/2, class 2 2/2
    assert result.per_class_accuracy == [0.5, 1.0, 1.0, None]
    assert result.accuracy == pytest.approx(5 / 6)
    assert result.num_examples == 6
    assert evaluator(ArrayRecord(model.state_dict()))[1] == result.accuracy


def test_model_built_once_and_loaded_in_place():
    calls = []

    def factory():
        calls.append(1)
        return Mlp((3,), 2, (4,))

    x = np.zeros((5, 3), np.float32)
    y = np.zeros(5, np.int64)
    evaluator = CentralEvaluator(x, y, factory)
    pointers = [p.data_ptr() for p in evaluator.model.parameters()]
    for _ in range(3):
        evaluator(ArrayRecord(Mlp((3,), 2, (4,)).state_dict()))
    assert len(calls) == 1
    assert [p.data_ptr() for p in evaluator.model.parameters()] == pointers


def test_threads_setting_is_restored_and_results_unchanged():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=300).astype(np.int64)
    arrays = ArrayRecord(FmnistCnn().state_dict())
    before = torch.get_num_threads()
    one = CentralEvaluator(x, y, FmnistCnn).evaluate(arrays)
    two = CentralEvaluator(x, y, FmnistCnn, threads=2).evaluate(arrays)
    assert torch.get_num_threads() == before
    assert abs(one.loss - two.loss) <= 1e-6 and one.accuracy == two.accuracy


def test_batch_mean_accuracy_is_the_mean_of_per_batch_accuracies():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=150).astype(np.int64)
    torch.manual_seed(0)
    arrays = ArrayRecord(FmnistCnn().state_dict())
    plain = CentralEvaluator(x, y, FmnistCnn).evaluate(arrays)
    result = CentralEvaluator(x, y, FmnistCnn, batch_size=32, batch_mean_size=64).evaluate(arrays)
    assert plain.batch_mean_accuracy is None and result.accuracy == plain.accuracy
    model = FmnistCnn()
    model.load_state_dict(arrays.to_torch_state_dict())
    model.eval()
    with torch.no_grad():
        right = (model(torch.from_numpy(x)).argmax(1).numpy() == y)
    by_batch = [right[0:64].mean(), right[64:128].mean(), right[128:150].mean()]  # the last batch is short
    assert result.batch_mean_accuracy == pytest.approx(np.mean(by_batch), abs=1e-12)
    assert abs(result.batch_mean_accuracy - right.mean()) > 1e-6  # a different number from the accuracy

"""The DivFL probe: loss, accuracy and gradient from one pass equal the separate computations."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fedsim.client.training import evaluate_model, evaluate_with_gradient
from fedsim.models import Mlp, paper_network


def _reference_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    model.eval()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
    model.zero_grad(set_to_none=True)
    return grads


def test_one_pass_matches_separate_evaluation_and_whole_batch_gradient():
    torch.manual_seed(0)
    model = paper_network((1, 28, 28), 10, "fmnist")
    x = torch.randn(300, 1, 28, 28)
    y = torch.randint(0, 10, (300,))

    # batches of 128 leave a ragged last batch of 44: the mean must still be over all 300
    loss, accuracy, gradient = evaluate_with_gradient(model, x, y, batch_size=128)
    expected_loss, expected_accuracy = evaluate_model(model, x, y)

    assert abs(loss - expected_loss) < 1e-5
    assert accuracy == expected_accuracy
    reference = _reference_gradient(model, x, y)
    assert gradient.dtype == np.float32
    assert gradient.shape == reference.shape == (sum(p.numel() for p in model.parameters()),)
    np.testing.assert_allclose(gradient, reference, rtol=1e-4, atol=1e-6)


def test_probe_leaves_no_gradient_behind():
    model = Mlp((20,), 4)
    evaluate_with_gradient(model, torch.randn(10, 20), torch.randint(0, 4, (10,)))
    assert all(p.grad is None for p in model.parameters())

"""The ``device`` setting: auto / cpu / cuda / cuda:N, refused with a ConfigError when impossible."""

from __future__ import annotations

import pytest
import torch

from fedsim.devices import resolve_device
from fedsim.errors import ConfigError


def test_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_without_cuda_is_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")


def test_auto_with_cuda_is_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda", 0)


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_refused_without_gpu(monkeypatch, spec):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as info:
        resolve_device(spec)
    message = str(info.value)
    assert "\n" not in message and message.startswith("device=") and "device=cpu" in message


def test_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"device=cuda:3: only 1 CUDA GPU"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("spec", ["gpu", "cpu:0", "cuda:x", "", "mps"])
def test_garbage_refused(spec):
    with pytest.raises(ConfigError, match="device="):
        resolve_device(spec)


def test_runtime_and_evaluator_default_to_cpu():
    from fedsim.client.runtime import ClientRuntime
    from fedsim.server.evaluation import CentralEvaluator
    import numpy as np
    from torch import nn

    runtime = ClientRuntime(source=None, client_indices=[np.arange(2)], model_factory=lambda: nn.Linear(2, 2))
    assert runtime.device == torch.device("cpu")
    runtime.release()
    evaluator = CentralEvaluator(np.zeros((2, 2), np.float32), np.zeros(2, np.int64), lambda: nn.Linear(2, 2))
    assert evaluator.device == torch.device("cpu")


def test_runtime_refuses_cuda_without_gpu(monkeypatch):
    from fedsim.client.runtime import ClientRuntime
    import numpy as np
    from torch import nn

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runtime = ClientRuntime(None, [np.arange(2)], lambda: nn.Linear(2, 2), device="cuda")
    with pytest.raises(ConfigError):
        runtime.device
    runtime.release()


def test_ray_actor_auto_follows_its_gpu_share(monkeypatch):
    from fedsim.client import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(runtime, "ray_gpu_ids", lambda: [3])  # Ray gave this actor GPU 3 (seen as cuda:0)
    assert runtime.process_device("auto") == torch.device("cuda", 0)
    monkeypatch.setattr(runtime, "ray_gpu_ids", lambda: [])  # no GPU share
    assert runtime.process_device("auto") == torch.device("cpu")
    monkeypatch.setattr(runtime, "ray_gpu_ids", lambda: None)  # not a Ray actor
    assert runtime.process_device("auto") == torch.device("cuda", 0)


def test_ray_gpu_share_refused_without_gpu(monkeypatch):
    from fedsim.engine.ray_engine import RayEngine

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="engine.num_gpus_per_client=0.5"):
        RayEngine(num_gpus_per_client=0.5).check_gpus()
    RayEngine(num_gpus_per_client=0).check_gpus()
    with pytest.raises(ConfigError):
        RayEngine(num_gpus_per_client=-1)


def _old_train_locally(model, x, y, config, seed):
    """The previous implementation (python float sum per step), for bit-identity."""
    from torch.nn import functional as F
    from fedsim.client.training import make_optimizer

    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, config)
    model.train()
    total, steps = 0.0, 0
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            steps += 1
    return total / steps


def test_cpu_training_bit_identical_to_previous_code():
    from fedsim.client.training import LocalTrainingConfig, train_locally
    from fedsim.models.networks import FmnistCnn

    torch.manual_seed(0)
    x, y = torch.randn(150, 1, 28, 28), torch.randint(0, 10, (150,))
    config = LocalTrainingConfig(lr=0.05, momentum=0.9, epochs=2, batch_size=32)
    a, b = FmnistCnn(), FmnistCnn()
    b.load_state_dict(a.state_dict())
    old_loss = _old_train_locally(a, x, y, config, 7)
    new = train_locally(b, x, y, config, 7)
    assert new.mean_loss == old_loss and new.num_steps == 10
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)

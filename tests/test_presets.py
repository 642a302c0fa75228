"""Experiment presets compose to the settings their sources give."""

from __future__ import annotations

import pytest

from conftest import make_config


def test_authors_fmnist_setting_2_preset_matches_the_codes_config():
    cfg = make_config(["+experiment=authors_fmnist_s2", "sampler=hics_reference"])
    assert (cfg.num_clients, cfg.clients_per_round, cfg.train.epochs, cfg.train.batch_size) == (50, 10, 1, 64)
    assert (cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay) == (0.001, 0.9, 5e-4)
    assert cfg.algorithm.proximal_mu == 0.5 and cfg.train.keep_optimizer_state is True
    assert (cfg.sampler.temperature, cfg.sampler.lam, cfg.sampler.gamma0, cfg.sampler.num_clusters) == (0.001, 10, 4, 5)
    assert cfg.model._target_.endswith("FmnistCnnReference")
    # the two differences docs/authors-parity.md found to change numbers
    assert cfg.model.init_gain == "relu" and cfg.dataset.normalization == "half"


@pytest.mark.parametrize("sampler, proportional", [("random", False), ("random_proportional", True)])
def test_two_random_presets(sampler, proportional):
    cfg = make_config([f"sampler={sampler}"])
    assert cfg.sampler.proportional is proportional and cfg.sampler.name == sampler

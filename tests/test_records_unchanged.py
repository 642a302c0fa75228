"""The pinned 30-round digits runs (seed 0) reproduce exactly after refactors.

The fixture was captured with ``tests/fixtures/capture_records.py`` at the commit before the
architecture refactor. Accuracy and selected clients must match exactly; the test loss to a
relative 1e-6 (evaluation may sum in other batch sizes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.capture_records import SAMPLERS, capture

FIXTURE = Path(__file__).parent / "fixtures" / "records_digits_seed0.json"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_records_match_the_fixture(sampler):
    expected = json.loads(FIXTURE.read_text())[sampler]
    got = capture(sampler)
    assert [r["round"] for r in got] == [r["round"] for r in expected]
    assert [r["selected"] for r in got] == [r["selected"] for r in expected]
    assert [r["accuracy"] for r in got] == [r["accuracy"] for r in expected]
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in expected], rel=1e-6)

"""The bench's naive baseline must be the same model as the served one, or its ratio is
meaningless: PyTorch one-at-a-time scores equal TextModel's (fp32 encoder) within fp32 noise.
(On CPU the service serves the int8 encoder by default; its agreement with fp32 is checked in
test_model_repository_build.py.)"""

from __future__ import annotations

import pytest

from crossguard.bench.data import bench_texts
from crossguard.bench.naive import naive_predictor
from crossguard.core.model_repository import ModelRepository
from crossguard.text.model import TextModel

pytestmark = pytest.mark.integration


def test_naive_pytorch_path_matches_the_served_model(model_repository: ModelRepository) -> None:
    texts = bench_texts(12)
    model = TextModel(model_repository, precision="fp32")
    model.load()
    try:
        served = model.predict(texts)
    finally:
        model.close()
    naive = naive_predictor()
    diff = max(
        abs(served[i][c] - score)
        for i, text in enumerate(texts)
        for c, score in naive(text).items()
    )
    assert diff <= 1e-4

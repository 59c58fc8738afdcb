"""The benign image set of `crossguard eval vision`: its confidence bound and re-posted copies."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from crossguard.models.eval_vision import upper_bound, variant


def test_upper_bound_is_the_one_sided_clopper_pearson_bound() -> None:
    # Zero failures: 1 - 0.05 ** (1 / n) (the "rule of three" is its approximation 3 / n).
    for n in (44, 299, 344):
        assert upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n))
    assert upper_bound(0, 299) < 0.01 < upper_bound(0, 298)
    assert upper_bound(3, 100) > upper_bound(1, 100) > upper_bound(0, 100)
    assert upper_bound(5, 5) == upper_bound(0, 0) == 1.0


def test_a_variant_is_a_rescaled_crop_of_the_photo() -> None:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    sizes = set()
    for _ in range(20):
        copy = variant(photo, rng)
        assert copy.mode == "RGB" and 256 <= max(copy.size) <= 1024
        # The crop keeps 60-100% of each side of a 4:3 photo.
        assert 4 / 3 * 0.6 - 0.01 <= copy.width / copy.height <= 4 / 3 / 0.6 + 0.01
        sizes.add(copy.size)
    assert len(sizes) > 10  # copies differ

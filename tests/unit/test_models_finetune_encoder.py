"""Label matrix of the fine-tuning experiment: masks follow annotation, not absence."""

from __future__ import annotations

import numpy as np
import pytest

from crossguard.core.taxonomy import Category
from crossguard.models.data import Example
from crossguard.models.devcases import DevCase
from crossguard.models.finetune_encoder import label_matrix, positive_weight
from crossguard.models.train_heads import DEVCASE_WEIGHT

pytestmark = pytest.mark.unit

CATS = (Category.HATE, Category.VIOLENCE, Category.SELF_HARM)


def _case(label: int, category: Category) -> DevCase:
    return DevCase(id="x", family="f", text="t", label=label, category=category, split="train")


def test_label_matrix_masks_unannotated_and_weights_devcases() -> None:
    openai = [
        Example("a", {Category.HATE: 1, Category.VIOLENCE: 0}),
        Example("b", {Category.SELF_HARM: 0}),
    ]
    devcases = [_case(0, Category.VIOLENCE), _case(1, Category.SELF_HARM)]
    y, m, w = label_matrix(openai, devcases, CATS)
    assert y.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]
    # A missing key is "not annotated"; a benign case is 0 for every head, a harmful case
    # annotated only for its own category (DevCase.label_for).
    assert m.tolist() == [[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 1]]
    assert w.tolist() == [1.0, 1.0, DEVCASE_WEIGHT, DEVCASE_WEIGHT]


def test_positive_weight_counts_annotated_rows_only() -> None:
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], np.float32)
    m = np.array([[1, 1], [1, 0], [1, 0], [0, 0]], np.float32)
    # Category 0: 1 positive, 2 negatives; category 1: its only positive is unannotated.
    assert positive_weight(y, m).tolist() == [2.0, 1.0]

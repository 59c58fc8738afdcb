"""Padding-aware sub-batching of TextModel's encoder calls (pure planning, no model)."""

from __future__ import annotations

from crossguard.text.model import plan_sub_batches


def _padding(lengths: list[int], chunk: list[int]) -> int:
    width = max(lengths[i] for i in chunk)
    return sum(width - lengths[i] for i in chunk)


def test_every_text_is_planned_once() -> None:
    lengths = [(i * 37) % 101 + 1 for i in range(64)]
    for max_size, max_padding in [(1, None), (8, None), (16, 0.25), (64, 0.0), (64, 10.0)]:
        plan = plan_sub_batches(lengths, max_size, max_padding)
        assert sorted(i for chunk in plan for i in chunk) == list(range(64))
        assert all(1 <= len(chunk) <= max_size for chunk in plan)


def test_padding_stays_within_the_bound() -> None:
    lengths = [(i * 37) % 101 + 1 for i in range(64)]
    for bound in (0.0, 0.1, 0.25, 1.0):
        for chunk in plan_sub_batches(lengths, 64, bound):
            real = sum(lengths[i] for i in chunk)
            assert _padding(lengths, chunk) <= bound * real + 1e-9


def test_similar_lengths_make_one_call_and_a_jump_splits() -> None:
    assert plan_sub_batches([10, 11, 10, 12], 16, 0.25) == [[0, 2, 1, 3]]
    plan = plan_sub_batches([10, 200, 11, 190], 16, 0.25)
    assert plan == [[0, 2], [3, 1]]


def test_fixed_sub_batches_without_a_bound() -> None:
    assert plan_sub_batches([5, 1, 3, 2, 4], 2, None) == [[1, 3], [2, 4], [0]]
    assert plan_sub_batches([5, 1, 3], 2, None, sort=False) == [[0, 1], [2]]


def test_unsorted_plan_keeps_order() -> None:
    plan = plan_sub_batches([10, 10, 100, 100], 8, 0.25, sort=False)
    assert plan == [[0, 1], [2, 3]]
    assert plan_sub_batches([], 8, 0.25) == []

from __future__ import annotations

import pytest

from crossguard.core.taxonomy import OPENAI_CODES, PARENT, Category, severity
from crossguard.v1 import taxonomy_pb2

pytestmark = pytest.mark.unit


def test_every_category_round_trips_through_the_proto_enum() -> None:
    for category in Category:
        assert Category.from_proto(category.proto) is category
    proto_names = set(taxonomy_pb2.Category.keys()) - {"CATEGORY_UNSPECIFIED"}
    assert proto_names == {"CATEGORY_" + c.name for c in Category}


def test_parse_accepts_names_and_openai_codes_and_rejects_unknown() -> None:
    assert Category.parse("hate/threatening") is Category.HATE_THREATENING
    assert Category.parse("V2") is Category.VIOLENCE_GRAPHIC
    with pytest.raises(ValueError, match="unknown category 'gore'"):
        Category.parse("gore")
    with pytest.raises(ValueError, match="unknown category enum value 999"):
        Category.from_proto(999)


def test_openai_codes_and_parents_are_consistent() -> None:
    assert set(OPENAI_CODES) == {"S", "S3", "H", "H2", "HR", "SH", "V", "V2"}
    for child, parent in PARENT.items():
        assert child.value.startswith(parent.value + "/")


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, 0), (0.29, 0), (0.3, 1), (0.6, 2), (0.849, 2), (0.85, 3), (1.0, 3)],
)
def test_severity_cuts(score: float, expected: int) -> None:
    assert severity(score) == expected


def test_severity_counts_the_cuts_at_or_below_the_score() -> None:
    cuts = (0.2, 0.2, 0.7)  # equal cuts (a policy may set them) count together
    for score in (-1.0, 0.0, 0.19, 0.2, 0.5, 0.7, 0.71, 1.0, 2.0):
        assert severity(score, cuts) == sum(1 for c in cuts if score >= c)
    assert severity(float("nan")) == 0

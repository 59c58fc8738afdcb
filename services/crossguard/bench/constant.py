"""The bench's model that computes nothing, and the response the service gives for it."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from crossguard.core.taxonomy import Category, severity

CONSTANT_SCORE = 0.01
SECONDS_PER_TEXT_VAR = "CROSSGUARD_BENCH_SECONDS_PER_TEXT"


class ConstantModel:
    """A text Model (crossguard.core.model_contract) that scores every category
    CONSTANT_SCORE after sleeping `seconds_per_text` per text (the GIL released, no CPU): the
    service around it is then all that costs."""

    name = "constant"
    version = "1"

    def __init__(self, seconds_per_text: float = 0.0) -> None:
        self.seconds_per_text = seconds_per_text
        self.categories = list(Category)
        self.thresholds = dict.fromkeys(self.categories, 0.5)
        self.model_infos = [(self.name, self.version)]
        self._scores = dict.fromkeys(self.categories, CONSTANT_SCORE)

    @classmethod
    def from_env(cls) -> ConstantModel:
        return cls(float(os.environ.get(SECONDS_PER_TEXT_VAR, "0")))

    def load(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def predict(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        if self.seconds_per_text > 0:
            time.sleep(self.seconds_per_text * len(texts))
        return [dict(self._scores) for _ in texts]

    def close(self) -> None:
        pass


def constant_response() -> bytes:
    """The response the text server gives for ConstantModel's scores (same fields, same size)."""
    from crossguard.core.proto_convert import result_to_proto
    from crossguard.core.results import ClassifierResult, Modality, Score, StageTime

    result = ClassifierResult(
        modality=Modality.TEXT,
        scores=[Score(c, CONSTANT_SCORE, severity(CONSTANT_SCORE)) for c in Category],
        models=[(ConstantModel.name, ConstantModel.version)],
        timings=[StageTime(s, 0.123) for s in ("prepare", "model", "evidence", "total")],
    )
    return bytes(result_to_proto(result).SerializeToString())

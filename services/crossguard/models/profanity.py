"""Build the profanity entry: alt-profanity-check's sklearn pipeline converted with skl2onnx.

The graph takes raw strings ([batch, 1]) and returns `offensive` [batch], the probability of
offensive language. Build-time only (scikit-learn, skl2onnx, onnx).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.model_repository import (
    MODEL_FILE,
    Manifest,
    ModelEntry,
    ModelRepository,
    TensorSpec,
)
from crossguard.core.taxonomy import Category
from crossguard.models._common import (
    ProgressFn,
    batch_and_single_diff,
    check_parity,
    cpu_session,
    dist_version,
    package_provenance,
    parity_metrics,
    require,
    stderr_progress,
)

NAME = "profanity"
VERSION = "1"
PACKAGE = "alt-profanity-check"
LOCALE = "C.UTF-8"
OUTPUT = "offensive"

# ASCII only: ONNX's tokenizer regex `\w` is ASCII-only, so non-ASCII text may differ from sklearn.
PARITY_SENTENCES: list[str] = [
    "",
    "Hello world.",
    "Thanks, have a lovely day!",
    "What a fucking idiot",
    "You are a piece of shit",
    "I love puppies and sunshine",
    "go to hell you bastard",
    "This is a perfectly normal sentence about the weather.",
    "shut up, stupid",
    "damn it, I forgot my keys again",
    "The quick brown fox jumps over the lazy dog",
    "What the hell is wrong with you??",
    "F*** this s***",
    "she is such a bitch",
    "Have a great weekend, everyone!",
    "RT @someone: lmao that game was trash",
    "I will find you and kill you",
    "ass",
    "classic assessment of the class",
    "Scunthorpe United won the match",
    "12345 67890",
    "!!!???",
    "ALL CAPS DAMN SHOUTING",
    "tabs\tand\nnewlines",
    "you're a moron and everyone knows it",
    "Please review the attached document before the meeting.",
    "what an asshole move",
    "crap, the build failed",
    "He's a good guy, honestly",
    "suck it loser",
]


def _fix_locale(model: Any) -> int:
    """Set every StringNormalizer's locale to C.UTF-8 (en_US may be missing on the host)."""
    onnx = require("onnx")
    changed = 0
    for node in model.graph.node:
        if node.op_type != "StringNormalizer":
            continue
        kept = [a for a in node.attribute if a.name != "locale"]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(onnx.helper.make_attribute("locale", LOCALE))
        changed += 1
    return changed


def _add_offensive_output(model: Any, prob_name: str) -> None:
    """Append Gather(probabilities, 1, axis=1) -> `offensive` [batch] and make it the output."""
    onnx = require("onnx")
    graph = model.graph
    graph.initializer.append(
        onnx.helper.make_tensor("offensive_index", onnx.TensorProto.INT64, [], [1])
    )
    graph.node.append(
        onnx.helper.make_node(
            "Gather", [prob_name, "offensive_index"], [OUTPUT], axis=1, name="offensive_gather"
        )
    )
    del graph.output[:]
    graph.output.append(
        onnx.helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["batch"])
    )


def _convert(out: Path) -> Any:
    require("sklearn")
    skl2onnx = require("skl2onnx")
    onnx = require("onnx")
    pc = require("profanity_check.profanity_check")
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("tfidf", pc.vectorizer), ("clf", pc.model)])
    model = skl2onnx.convert_sklearn(
        pipeline,
        "profanity",
        initial_types=[("text", StringTensorType([None, 1]))],
        options={id(pc.model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    _fix_locale(model)
    # skl2onnx emits opset imports in set order; sort them so rebuilds are byte-identical.
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    prob_name = next(o.name for o in model.graph.output if o.name != "label")
    _add_offensive_output(model, prob_name)
    onnx.checker.check_model(model)
    out.write_bytes(model.SerializeToString())
    return pipeline


def onnx_offensive(session: Any, texts: list[str]) -> np.ndarray:
    arr = np.asarray(texts, dtype=object).reshape(-1, 1)
    return np.asarray(session.run([OUTPUT], {"text": arr})[0], dtype=np.float32)


def build_profanity(repo: ModelRepository, *, progress: ProgressFn = stderr_progress) -> ModelEntry:
    """Convert alt-profanity-check's TF-IDF + calibrated LinearSVC into `repo`."""
    require("onnxruntime")  # before the entry is cleared: a clear error, not a half-written entry
    out_dir = repo.fresh_entry_dir(NAME, VERSION)
    t0 = time.perf_counter()
    progress(f"{NAME}: converting {PACKAGE} (scikit-learn pipeline) with skl2onnx")
    pipeline = _convert(out_dir / MODEL_FILE)
    ref = pipeline.predict_proba(PARITY_SENTENCES)[:, 1]
    session = cpu_session(out_dir / MODEL_FILE)
    diff = batch_and_single_diff(
        lambda texts: onnx_offensive(session, texts), PARITY_SENTENCES, ref
    )
    check_parity(NAME, diff, "scikit-learn", progress)

    manifest = Manifest(
        name=NAME,
        version=VERSION,
        task="text-classification",
        inputs=[TensorSpec(name="text", dtype="string", shape=["batch", 1])],
        outputs=[TensorSpec(name=OUTPUT, dtype="float32", shape=["batch"])],
        labels=[OUTPUT],
        taxonomy={OUTPUT: Category.PROFANITY.value},
        preprocessing={
            "input": "raw text, one string per row",
            "tokenizer": "TF-IDF word tokens inside the graph (regex \\b\\w\\w+\\b, lowercase)",
            "string_normalizer_locale": LOCALE,
            "note": "ONNX \\w is ASCII-only: non-ASCII text may score differently from sklearn",
        },
        provenance=package_provenance(
            PACKAGE,
            licence="MIT",
            description="alt-profanity-check: TF-IDF (english stop words) + LinearSVC calibrated "
            "with sigmoid (CalibratedClassifierCV), trained on ~200k labeled offensive/clean "
            f"texts; converted with skl2onnx {dist_version('skl2onnx')} "
            f"from scikit-learn {dist_version('scikit-learn')}",
        ),
        metrics={
            **parity_metrics(
                diff, f"scikit-learn {dist_version('scikit-learn')} predict_proba[:, 1]"
            ),
            "parity_texts": len(PARITY_SENTENCES),
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(NAME, VERSION)

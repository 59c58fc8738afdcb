"""The review service's Kubernetes manifests, rendered with kustomize for every deployable
overlay (the generic rules in test_deploy_manifests cover probes, security context,
autoscaling and PDBs; these are the review-specific ones)."""

from __future__ import annotations

import pytest

from .test_deploy_manifests import DEPLOYABLE, Resource, by_name, of_kind, pod_labels, render

pytestmark = pytest.mark.deploy


@pytest.fixture(scope="module", params=DEPLOYABLE)
def resources(request: pytest.FixtureRequest) -> list[Resource]:
    return render(request.param)


def test_review_deployment_probes_http_health_and_reads_its_database_from_a_secret(
    resources: list[Resource],
) -> None:
    deploy = by_name(resources, "Deployment", "crossguard-review")
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["python", "-m", "crossguard.review"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = {e["name"]: e for e in c["env"]}
    assert env["CROSSGUARD_REVIEW_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "crossguard-db-app"
    )
    assert env["CROSSGUARD_REVIEW_COOKIE_SECURE"]["value"] == "true"
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert env["CROSSGUARD_REVIEW_PORT"]["value"] == str(port)
    ingress = by_name(resources, "Ingress", "crossguard-review")
    assert ingress["spec"]["tls"], "reviewers reach the UI over TLS only"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = by_name(resources, "Service", backend["name"])
    assert service["spec"]["selector"].items() <= pod_labels(deploy).items()


def test_only_the_reviewer_ingress_reaches_the_review_pods(resources: list[Resource]) -> None:
    labels = pod_labels(by_name(resources, "Deployment", "crossguard-review"))
    admitting = [
        p
        for p in of_kind(resources, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", [])
        and p["spec"].get("ingress")
        and p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        and p["spec"]["podSelector"] != {}
    ]
    assert [p["metadata"]["name"] for p in admitting] == ["crossguard-review-ingress"]
    (rule,) = admitting[0]["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]

"""Policy loading: validation errors name the bad field; hot reload keeps the old policy on
an invalid file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category
from crossguard.policy import PolicyError, PolicyStore, load_policy, parse_policy
from crossguard.policy.loader import PolicyIssue, default_policy_text

pytestmark = pytest.mark.unit


def issues_of(text: str) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    assert "p.yaml" in str(info.value)
    assert all(i.source == "p.yaml" for i in info.value.issues)
    assert info.value.errors == [str(i) for i in info.value.issues]
    return info.value.issues


def errors_of(text: str) -> list[str]:
    """The issues as "field: message" (file and line are checked where they matter)."""
    return [f"{i.field}: {i.message}" for i in issues_of(text)]


def test_version_required_and_string() -> None:
    assert any(e.startswith("version:") for e in errors_of("defaults: {escalate: 0.5}"))
    assert any("quote it" in e for e in errors_of("version: 1.0"))
    assert any(e.startswith("version:") for e in errors_of('version: ""'))


def test_errors_name_file_line_and_field() -> None:
    issues = issues_of(
        """version: "x"
categories:
  hate: {escalate: 1.5}
signals:
  text:
    fallback: maybe
    retries: -1
overrides:
  - name: a
    match: {surface: dm}
    defaults: {block: 2}
escalation:
  inconsistency:
    - {signal: "*_disagreement"}
"""
    )
    where = {(i.field, i.line) for i in issues}
    assert ("categories.hate.escalate", 3) in where
    assert ("signals.text.fallback", 6) in where
    assert ("signals.text.retries", 7) in where
    assert ("overrides[0].defaults.block", 11) in where
    # A rule with no bound is reported on the line of the mapping that lacks it.
    assert ("escalation.inconsistency[0]", 14) in where
    text = {str(i) for i in issues}
    assert any(t.startswith("p.yaml:6: signals.text.fallback: Input should be") for t in text)


def test_an_inconsistency_rule_needs_exactly_one_bound() -> None:
    base = 'version: "1"\nescalation:\n  inconsistency:\n    - {signal: "x"%s}\n'
    for bounds in ("", ", at_least: 0.5, at_most: 0.2"):
        errors = errors_of(base % bounds)
        assert any("exactly one of at_least and at_most" in e for e in errors), errors
    rule = parse_policy(base % ", at_most: 0.2").escalation.inconsistency[0]
    assert (rule.at_least, rule.at_most) == (None, 0.2)


def test_duplicate_keys_are_errors_with_their_line() -> None:
    issues = issues_of('version: "x"\ncategories:\n  hate: {block: 0.9}\n  hate: {block: 0.1}\n')
    assert [(i.line, i.field, i.message) for i in issues] == [
        (4, "categories.hate", "duplicate key")
    ]


def test_yaml_syntax_error_names_the_line() -> None:
    issues = issues_of('version: "x"\ndefaults: {escalate: 0.5\n')
    assert issues[0].message.startswith("YAML syntax")
    assert issues[0].line == 3
    assert str(issues[0]).startswith("p.yaml:3: <yaml>: YAML syntax")


def test_error_paths_name_the_field() -> None:
    errs = errors_of(
        """
version: "x"
categories:
  hate: {escalate: 1.5}
signals:
  text: {fallback: maybe, retries: -1}
overrides:
  - name: a
    match: {surface: dm}
    defaults: {block: 2}
"""
    )
    joined = "\n".join(errs)
    assert "categories.hate.escalate:" in joined
    assert "signals.text.fallback:" in joined
    assert "signals.text.retries:" in joined
    assert "overrides[0].defaults.block:" in joined


def test_semantic_errors() -> None:
    assert any(
        "escalate (0.9) must be <= block (0.5)" in e
        for e in errors_of('version: "x"\ndefaults: {escalate: 0.9, block: 0.5}')
    )
    assert any(
        "age_restrict (0.95) must be <= block (0.9)" in e
        for e in errors_of('version: "x"\ncategories: {hate: {age_restrict: 0.95, block: 0.9}}')
    )
    # An unknown category is reported on its own line, along with the other errors.
    issues = issues_of('version: "x"\ncategories:\n  nope: {block: 0.5}\n  hate: {block: 2}\n')
    assert [(i.line, i.field) for i in issues] == [
        (3, "categories.nope"),
        (4, "categories.hate.block"),
    ]
    assert issues[0].message.startswith("unknown key 'nope': Input should be 'sexual', ")
    assert any(
        e.startswith("signals.video: unknown key 'video': Input should be 'default', 'text'")
        for e in errors_of('version: "x"\nsignals: {video: {retries: 1}}')
    )
    assert any(
        "unknown" in e or "Extra inputs" in e for e in errors_of('version: "x"\nthresholds: {}')
    )
    assert any(
        "match needs" in e for e in errors_of('version: "x"\noverrides: [{name: a, match: {}}]')
    )
    assert any(
        "duplicate override" in e
        for e in errors_of(
            'version: "x"\noverrides: [{name: a, match: {tenant: t}},'
            " {name: a, match: {tenant: u}}]"
        )
    )
    assert any(
        "severity_cuts" in e for e in errors_of('version: "x"\nseverity_cuts: [0.9, 0.5, 1]')
    )
    assert any(
        e.startswith("categories.hate.severity_cuts:")
        for e in errors_of('version: "x"\ncategories: {hate: {severity_cuts: [0.5, 0.2, 0.9]}}')
    )
    assert any(
        e.startswith("signals.image.on_reason.unsupported_language:")
        for e in errors_of('version: "x"\nsignals: {image: {on_reason: {unsupported_language: x}}}')
    )
    assert any(
        e.startswith("hash_matches.banks.csam.action:")
        for e in errors_of('version: "x"\nhash_matches: {banks: {csam: {action: allow}}}')
    )
    assert any(
        e.startswith("escalation.hold:")
        for e in errors_of('version: "x"\nescalation: {hold: escalate}')
    )


def test_statement_of_reasons_errors() -> None:
    errs = errors_of(
        """version: "x"
statement_of_reasons:
  territorial_scope: [EEA, US]
  restrictions:
    block: {}
    limit_visibility: {visibility: [other]}
    age_restrict: {visibility: [hidden]}
  grounds:
    hate: {kind: illegal_content}
    sexual: {clause: ""}
  redress: []
"""
    )
    joined = "\n".join(errs)
    assert "statement_of_reasons.territorial_scope: Value error, unknown territory 'US'" in joined
    assert "statement_of_reasons.restrictions.block: Value error, a restriction needs" in joined
    assert "restrictions.limit_visibility: Value error, visibility 'other' needs" in joined
    assert "restrictions.age_restrict.visibility[0]:" in joined
    assert "grounds.hate: Value error, illegal_content needs the legal ground" in joined
    assert "grounds.sexual: Value error, incompatible_content needs the terms clause" in joined
    assert "statement_of_reasons.redress:" in joined


def test_yaml_syntax_and_shape_errors() -> None:
    assert errors_of("version: [unclosed")[0].startswith("<yaml>: YAML syntax")
    assert errors_of("- a list")[0].startswith("<root>")
    assert errors_of("")[0].startswith("<root>")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_openai_codes_accepted() -> None:
    p = parse_policy('version: "x"\ncategories: {H2: {block: 0.4}}')
    assert p.thresholds(Category.HATE_THREATENING).block == 0.4


def test_signal_keys_are_the_modalities() -> None:
    from typing import get_args

    from crossguard.policy.model import SignalKey

    assert set(get_args(SignalKey)) == {"default", *(m.value for m in Modality)}


def test_signal_inherits_from_default() -> None:
    p = parse_policy(
        'version: "x"\nsignals: {default: {fallback: allow, retries: 3, deadline_ms: 500},'
        " audio: {deadline_ms: 9000}}"
    )
    audio = p.signal(Modality.AUDIO)
    assert (audio.fallback, audio.retries, audio.deadline_ms) == ("allow", 3, 9000)


def write(path: Path, text: str, mtime_step: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + mtime_step * 1_000_000_000))


def test_hot_reload(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "policy.yaml"
    write(path, 'version: "v1"\ndefaults: {escalate: 0.5, block: 0.9}', 0)
    store = PolicyStore(path, check_interval=0.0)
    assert store.current().version == "v1"
    assert not store.maybe_reload()  # unchanged

    write(path, 'version: "v2"\ndefaults: {escalate: 0.4, block: 0.8}', 1)
    assert store.current().version == "v2"
    assert store.current().thresholds(Category.HATE).block == 0.8

    with caplog.at_level(logging.ERROR, logger="crossguard.policy.loader"):
        write(path, 'version: "v3"\ndefaults: {escalate: 2}', 2)
        assert store.current().version == "v2"  # invalid: old policy kept
    assert store.last_error is not None
    assert "defaults.escalate" in str(store.last_error)
    assert any("keeping previous policy" in r.getMessage() for r in caplog.records)

    path.unlink()
    assert store.current().version == "v2"  # a vanished file keeps the policy too

    write(path, 'version: "v4"', 3)
    assert store.current().version == "v4"
    assert store.last_error is None


def test_reload_checks_are_rate_limited(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    write(path, 'version: "v1"', 0)
    store = PolicyStore(path, check_interval=3600)
    write(path, 'version: "v2"', 1)
    assert store.current().version == "v1"
    assert store.maybe_reload()
    assert store.current().version == "v2"


def test_invalid_policy_at_startup_fails(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("defaults: {}")
    with pytest.raises(PolicyError, match="version"):
        PolicyStore(path)


def test_default_store_uses_packaged_policy() -> None:
    store = PolicyStore(None)
    assert store.current().version in default_policy_text()


def test_deployment_policy_starts_as_the_packaged_default() -> None:
    from pathlib import Path

    from crossguard.policy.loader import default_policy_text

    deployed = (Path(__file__).resolve().parents[2] / "k8s/base/policy/policy.yaml").read_text()
    body = deployed[deployed.index("# Crossguard default") :]
    assert body == default_policy_text(), "copy services/crossguard/policy/default_policy.yaml"

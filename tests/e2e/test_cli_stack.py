"""End to end through the `crossguard` command: real broker, real services, real worker."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from crossguard.core.model_repository import ModelRepository

# Whole-stack runs wait longer than the suite-wide pytest-timeout allows.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CLI = [sys.executable, "-m", "crossguard.cli"]


@pytest.fixture
def cli_env(model_repository: ModelRepository) -> dict[str, str]:
    return {
        **os.environ,
        "CROSSGUARD_MODEL_REPOSITORY": str(model_repository.root.resolve()),
        "COLUMNS": "200",
    }


@pytest.fixture
def run_cli(
    tmp_path: Path, cli_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            cwd=tmp_path,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def running_stack(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`crossguard up` in the background; yields once its state file says it is up."""
    proc = subprocess.Popen(
        [*CLI, "up"],
        cwd=tmp_path,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    state = tmp_path / ".crossguard" / "stack.json"
    deadline = time.monotonic() + 240
    while not state.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"crossguard up did not come up:\n{out}")
        time.sleep(0.3)
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def test_moderate_blocks_a_threat_and_allows_a_friendly_sentence(
    running_stack: subprocess.Popen[str],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    threat = run_cli("moderate", "--text", "I will find you and kill you", "--json")
    assert threat.returncode == 0, threat.stderr
    decision = json.loads(threat.stdout)
    assert decision["action"] in ("ACTION_ESCALATE", "ACTION_BLOCK"), decision
    harms = [c for c in decision["categories"] if c["category"] != "CATEGORY_PROFANITY"]
    top = max(harms, key=lambda c: c["score"])
    assert top["category"] in ("CATEGORY_VIOLENCE", "CATEGORY_HARASSMENT"), decision

    friendly = run_cli(
        "moderate", "--text", "Thanks for the lovely dinner, see you soon!", "--json"
    )
    assert friendly.returncode == 0, friendly.stderr
    assert json.loads(friendly.stdout)["action"] == "ACTION_ALLOW", friendly.stdout

    # A spoken threat (the demo's sample voice note) through the audio service, alone and with
    # a harmless caption.
    from crossguard.cli.items import bundled_samples

    voice = bundled_samples().parent / "voice-threat.wav"
    for extra in ((), ("--text", "Listen to this, haha")):
        spoken = run_cli("moderate", "--audio", str(voice), *extra, "--json")
        assert spoken.returncode == 0, spoken.stderr
        decision = json.loads(spoken.stdout)
        assert decision["action"] in ("ACTION_ESCALATE", "ACTION_BLOCK"), decision
        missing = decision.get("missing_signals", [])
        assert not any(m["modality"] == "MODALITY_AUDIO" for m in missing), decision
        # The decision carries the voice note's timed transcript for its reviewers.
        (audio,) = [g for g in decision["evidence"] if g["modality"] == "MODALITY_AUDIO"]
        (transcript,) = audio["transcripts"]
        assert transcript["segments"] and all(s["text"] for s in transcript["segments"])
    # An image alone: the vision service reads the meme's text (OCR) and the text service scores
    # it; a photo with a friendly caption is allowed.
    samples = Path(__file__).resolve().parents[2] / "services/crossguard/cli/samples"
    meme = run_cli("moderate", "--image", str(samples / "threat-meme.jpg"), "--json")
    assert meme.returncode == 0, meme.stderr
    meme_decision = json.loads(meme.stdout)
    assert meme_decision["action"] in ("ACTION_ESCALATE", "ACTION_BLOCK"), meme_decision
    cat = run_cli(
        "moderate", "--text", "My cat says hi", "--image", str(samples / "cat.jpg"), "--json"
    )
    assert cat.returncode == 0, cat.stderr
    assert json.loads(cat.stdout)["action"] == "ACTION_ALLOW", cat.stdout

    # The readable form names the action and the policy.
    table = run_cli("moderate", "--text", "I will find you and kill you")
    assert table.returncode == 0, table.stderr
    assert "policy" in table.stdout and ("BLOCK" in table.stdout or "ESCALATE" in table.stdout)
    heard = run_cli("moderate", "--audio", str(voice))
    assert heard.returncode == 0, heard.stderr
    assert "heard in" in heard.stdout, heard.stdout

    # A labeled replay through the same running stack reports speed and quality.
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text(
        "\n".join(
            json.dumps({"id": f"r{i}", "text": text, "labels": {"violence": label}})
            for i, (text, label) in enumerate(
                [
                    ("I will find you and kill you", 1),
                    ("I'm going to beat him until he stops breathing.", 1),
                    ("Let's meet up and I'll show you what happens to snitches.", 1),
                    ("What a lovely afternoon at the beach.", 0),
                    ("Can you recommend a good beginner camera?", 0),
                    ("Our book club meets on Thursday at 7pm.", 0),
                ]
            )
        )
    )
    replay = run_cli("replay", str(labeled))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "throughput" in replay.stdout and "latency p99" in replay.stdout
    violence_row = next(line for line in replay.stdout.splitlines() if "violence" in line)
    assert "1.000" in violence_row, replay.stdout  # AUC on an easy, separable set

    # The review service is up with the stack, serves its login page, and escalations reach
    # its store (SQLite next to the state file).
    review_url = json.loads((tmp_path / ".crossguard" / "stack.json").read_text())["review_url"]
    assert httpx.get(f"{review_url}/login").status_code == 200
    store = sqlite3.connect(tmp_path / ".crossguard" / "review.db")
    deadline = time.monotonic() + 60
    while store.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0:
        assert time.monotonic() < deadline, "no escalation reached the review store"
        time.sleep(0.5)
    store.close()

    # Ctrl-C stops the whole stack cleanly and removes its state file.
    running_stack.send_signal(signal.SIGINT)
    assert running_stack.wait(60) == 0
    assert not (tmp_path / ".crossguard" / "stack.json").exists()


def test_demo_prints_a_decision_for_every_sample(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    from crossguard.cli.items import bundled_samples, load_jsonl

    expected = len(list(load_jsonl(bundled_samples())))
    result = run_cli("demo", timeout=420)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "summary" in out
    assert "review UI http://localhost:" in out and "demo-lead" in out
    printed = [
        line
        for line in out.splitlines()
        if line.split()[:1] in (["ALLOW"], ["ESCALATE"], ["BLOCK"])
    ]
    assert len(printed) == expected, out
    # Image samples are scored by the vision service (the threat meme, an image alone, through
    # OCR and the text service), audio items (alone and with text) by the audio service.
    assert "image: not_configured" not in out
    assert "audio: not_configured" not in out
    meme = next(line for line in printed if "demo-110" in line)
    assert meme.split()[0] in ("ESCALATE", "BLOCK"), meme

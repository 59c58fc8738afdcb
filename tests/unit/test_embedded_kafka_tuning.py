from __future__ import annotations

import pytest

from crossguard.core.broker import EMBEDDED_KAFKA_TUNING, tuned_for_embedded
from crossguard.core.settings import KafkaSettings

pytestmark = pytest.mark.unit


def test_the_embedded_tuning_fills_only_what_was_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSGUARD_KAFKA_CONSUMER_FETCH_MAX_WAIT_MS", "250")
    tuned = tuned_for_embedded(KafkaSettings(session_timeout_ms=9000))
    assert tuned.consumer_fetch_max_wait_ms == 250  # from the environment
    assert tuned.session_timeout_ms == 9000  # given
    assert tuned.producer_max_batch_size == EMBEDDED_KAFKA_TUNING["producer_max_batch_size"]


def test_the_embedded_fetch_wait_is_short_and_the_default_is_aiokafkas() -> None:
    assert KafkaSettings().consumer_fetch_max_wait_ms == 500
    tuned = tuned_for_embedded(KafkaSettings())
    assert tuned.consumer_fetch_max_wait_ms == EMBEDDED_KAFKA_TUNING["consumer_fetch_max_wait_ms"]
    assert tuned.consumer_fetch_max_wait_ms < 500

"""The one status-code mapping of the shared remote text client (core.remote_text), as
the vision and consistency services' errors carry it."""

from __future__ import annotations

import grpc

from crossguard.core.errors import DeadlineExceeded, InvalidInput, NotReady
from crossguard.core.grpc_server import status_for
from crossguard.core.remote_text import error_for
from crossguard.core.serving.batch_client import ItemError


def test_refusal_is_invalid_input_with_the_servers_message() -> None:
    exc = ItemError(grpc.StatusCode.INVALID_ARGUMENT, "part 'f0' is over 20000 characters")
    err = error_for("text:50051", exc, label="OCR text", texts="the OCR text", hint="SETTING")
    assert isinstance(err, InvalidInput)
    assert str(err) == (
        "OCR text: the text service refused the OCR text: part 'f0' is over 20000 characters"
    )
    assert status_for(err) == grpc.StatusCode.INVALID_ARGUMENT


def test_unavailable_and_late_are_not_ready_answered_unavailable() -> None:
    down = error_for(
        "text:50051",
        ItemError(grpc.StatusCode.UNAVAILABLE, "connection refused"),
        label="OCR text",
        texts="the OCR text",
        hint="CROSSGUARD_VISION_TEXT_ENDPOINT",
    )
    assert isinstance(down, NotReady) and not isinstance(down, DeadlineExceeded)
    assert str(down) == (
        "OCR text: text service text:50051: UNAVAILABLE connection refused; "
        "CROSSGUARD_VISION_TEXT_ENDPOINT"
    )
    late = error_for(
        "text:50051", ItemError(grpc.StatusCode.DEADLINE_EXCEEDED, ""), label="x", texts="y"
    )
    assert isinstance(late, NotReady) and isinstance(late, DeadlineExceeded)
    assert str(late) == "x: text service text:50051: DEADLINE_EXCEEDED"
    # A service passing either on answers UNAVAILABLE: the caller's missing-signal path.
    assert status_for(down) == status_for(late) == grpc.StatusCode.UNAVAILABLE

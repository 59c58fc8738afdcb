"""The English encoders the text model can serve (CROSSGUARD_TEXT_ENGLISH_ENCODER) and which
precisions each has: one rule for the settings (checked when they are read) and the model."""

from __future__ import annotations

from collections.abc import Mapping

from crossguard.core.errors import ModelError

# Setting value -> (encoder entry, heads entry); the build side is crossguard.models.heads.HEADS
# (a test keeps the two in step).
ENGLISH_ENCODERS: Mapping[str, tuple[str, str]] = {
    "minilm": ("minilm-l6-encoder", "text-heads"),
    "mpnet": ("mpnet-base-encoder", "text-heads-mpnet"),
}
# The default, and the only encoder with the int8 variant and the fp16 entry (MPNet fails the
# int8 bound; crossguard.models.encoder.EncoderSpec.no_int8).
DEFAULT_ENGLISH_ENCODER = "minilm"


def check_english_encoder(english_encoder: str, precision: str) -> str:
    """`english_encoder` if it names one of ENGLISH_ENCODERS and has the `precision` asked for,
    else a ModelError (every encoder has fp32; int8 and fp16 are the default's only)."""
    if english_encoder not in ENGLISH_ENCODERS:
        raise ModelError(
            f"English encoder {english_encoder!r} is not one of {sorted(ENGLISH_ENCODERS)}"
        )
    if english_encoder != DEFAULT_ENGLISH_ENCODER and precision in ("int8", "fp16"):
        raise ModelError(
            f"the {english_encoder} encoder has no {precision} variant (fp32 only: int8 and fp16 "
            f"are built for the {DEFAULT_ENGLISH_ENCODER} encoder only); set "
            "CROSSGUARD_TEXT_ENCODER_PRECISION to auto or fp32"
        )
    return english_encoder

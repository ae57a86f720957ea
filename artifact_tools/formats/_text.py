"""Text-format members read within a size cap: shared by the readers of text formats (Triton's config.pbtxt,
MLflow's MLmodel)."""

from __future__ import annotations

from ..errors import CorruptArtifact


def bounded_text(data: bytes | bytearray | memoryview | str, label: str, max_bytes: int, what: str) -> str:
    """``data`` as text (UTF-8, a leading byte-order mark dropped), or CorruptArtifact when it is larger than
    ``max_bytes`` or not UTF-8. ``what`` names the format in the sentence ("an MLmodel file")."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > max_bytes:
            raise CorruptArtifact(f"{label} is larger than {max_bytes} bytes, too large for {what}")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CorruptArtifact(f"{label} is not UTF-8 text (byte {e.start})") from None
    else:
        text = data
        if len(text) > max_bytes:
            raise CorruptArtifact(f"{label} is larger than {max_bytes} characters, too large for {what}")
    return text.lstrip("\ufeff")

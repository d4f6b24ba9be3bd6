"""An instance's output, as the lines that failure reasons and ``Deployment.logs`` show: split on
line feeds only (a carriage return or a form feed inside a line stays there, so that a secret
that contains one is still found whole), each line cut at MAX_LINE_CHARS."""

from __future__ import annotations

MAX_LINE_CHARS = 4096
# The most of a log file read to find its last lines (a build that writes one endless line
# costs this much, not the whole file).
MAX_READ_BYTES = 1 << 20


def output_lines(data: bytes, lines: int) -> list[str]:
    """The last ``lines`` lines of ``data``."""
    if lines <= 0 or not data:
        return []
    text = data.decode("utf-8", errors="replace")
    split = text.split("\n")
    if text.endswith("\n"):
        split.pop()
    return [_clip(line) for line in split[-lines:]]


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [cut]"

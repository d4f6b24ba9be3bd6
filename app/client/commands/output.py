"""What a command prints: ``Output`` (rich tables and colors on a terminal, plain columns in a
pipe, one JSON document with ``--json``; every string scrubbed of the secrets it was told
about) and ``Progress`` (the live display of a change that is followed)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

SECRET_MASK = "********"
# Shorter --secret values are masked where they belong (their keys), not in free text, where
# hiding every "1" would garble the output.
MIN_SCRUBBED_LENGTH = 4

STATUS_STYLES = {
    "ACTIVE": "green",
    "SUCCEEDED": "bold green",
    "IN_PROGRESS": "yellow",
    "QUEUED": "yellow",
    "APPLYING_CONFIGURATION": "yellow",
    "RESTARTING": "yellow",
    "VERIFYING": "yellow",
    "PENDING_APPROVAL": "magenta",
    "SCHEDULED": "cyan",
    "SUSPENDED": "magenta",
    "NOT_DEPLOYED": "dim",
    "ERROR": "bold red",
    "FAILED": "bold red",
    "REJECTED": "red",
    "CANCELLED": "red",
    "EXPIRED": "red",
    "SUPERSEDED": "dim",
}

Cell = str | tuple[str, str | None]


class Output:
    """Everything a command prints goes through here: a terminal gets rich, a pipe plain text,
    ``--json`` one document; every string is scrubbed of the secrets it was told about."""

    def __init__(
        self, *, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.json_mode = json_mode
        self.tty = self.stdout.isatty()
        self.console = Console(file=self.stdout, highlight=False) if self.tty else None
        self._secrets: list[str] = []

    def add_secrets(self, values: Iterable[str]) -> None:
        for value in values:
            if len(value) >= MIN_SCRUBBED_LENGTH and value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, SECRET_MASK)
        return text

    def _scrub_data(self, value: object) -> object:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {key: self._scrub_data(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrub_data(item) for item in value]
        return value

    def json(self, value: object) -> None:
        self.stdout.write(json.dumps(self._scrub_data(value), indent=2, ensure_ascii=False))
        self.stdout.write("\n")
        self.stdout.flush()

    def line(self, *parts: Cell) -> None:
        """One line of text (nothing in JSON mode); ``(text, style)`` parts are colored on a
        terminal."""
        if self.json_mode:
            return
        if self.console is not None:
            self.console.print(self._text(parts), soft_wrap=True)
        else:
            self.stdout.write(self.scrub("".join(_plain(part) for part in parts)) + "\n")
            self.stdout.flush()

    def _text(self, parts: Sequence[Cell]) -> Text:
        text = Text()
        for part in parts:
            content, style = (part, None) if isinstance(part, str) else part
            text.append(self.scrub(content), style=style or "")
        return text

    def error(self, message: str) -> None:
        self.stderr.write(f"promenade: {self.scrub(message)}\n")
        self.stderr.flush()

    def warn(self, message: str) -> None:
        self.stderr.write(f"promenade: warning: {self.scrub(message)}\n")
        self.stderr.flush()

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str) -> None:
        """Rows under column headers: a rich table on a terminal, aligned plain columns in a
        pipe (an empty cell is ``-``, so that every row splits into as many fields)."""
        if self.json_mode:
            return
        if self.console is not None:
            table = Table(title=self.scrub(title), title_justify="left", header_style="bold")
            for index, column in enumerate(columns):
                # The last column (free text) wraps; the others keep their values whole.
                table.add_column(column, no_wrap=index < len(columns) - 1)
            for row in rows:
                table.add_row(*(self._text([cell]) for cell in row))
            self.console.print(table)
            return
        cells = [list(columns)] + [
            [self.scrub(_plain(cell)).replace("\n", " ") or "-" for cell in row] for row in rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        for row in cells:
            padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
            self.stdout.write("  ".join([*padded, row[-1]]).rstrip() + "\n")
        self.stdout.flush()


def _plain(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def styled(status: str) -> tuple[str, str | None]:
    return (status, STATUS_STYLES.get(status))


class Progress:
    """A live display of a change: a spinner with the current status on a terminal (each status
    reached printed above it), one line per status in a pipe, nothing with ``--json``."""

    def __init__(self, out: Output, title: str) -> None:
        self.out = out
        self.title = title
        self._status: Status | None = None

    def __enter__(self) -> Progress:
        if self.out.console is not None and not self.out.json_mode:
            self._status = self.out.console.status(self.out.scrub(self.title), spinner="dots")
            self._status.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()

    def step(self, status: str, detail: str | None, at: str | None = None) -> None:
        if self.out.json_mode:
            return
        # One line per status: a long reason is printed in full at the end.
        suffix = f"  {first_line(detail)}" if detail else ""
        if self.out.console is None:
            self.out.line(status, suffix)
            return
        clock = f"{_clock(at)} " if at else ""
        self.out.line((clock, "dim"), styled(status), suffix)
        if self._status is not None:
            self._status.update(self.out.scrub(f"{self.title}: {status}{suffix}"))


def _clock(at: str) -> str:
    try:
        return parse_time(at).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return at


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    if not lines:
        return ""
    return lines[0] + (" (...)" if len(lines) > 1 else "")

"""``python -m workers --data-plane NAME --concurrency N``: the same as ``promenade worker``."""

from __future__ import annotations

import sys

from app.cli import main

main(["worker", *sys.argv[1:]])

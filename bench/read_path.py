"""The cost of a trivial authenticated request: ``{ __typename }`` with a bearer token.

Both apps are driven in this process by the same bare ASGI caller (no HTTP client, no socket),
one request after the other, so the numbers are the servers' own work:

1. **Reference**: a plain Strawberry app (``strawberry.asgi.GraphQL``, no extensions, no
   context) answering ``{ __typename }``.
2. **Promenade**: ``app.main.create_app`` on a fresh SQLite data directory (migrated, one user
   and organization from ``promenade bootstrap``'s service), the same query with the user's
   token, so the token check, the request's session and the schema's limits are all paid.

Each is warmed up (--warmup requests), then the two take turns for --rounds rounds of
--requests each, so that whatever else the machine does falls on both; each one's rate is the
median of its rounds. The ratio is Promenade's requests/s over the reference's; issue 11 asks
for at least 0.5.

    python -m bench.read_path [--requests 1000] [--rounds 5] [--json] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import strawberry
from cryptography.fernet import Fernet
from strawberry.asgi import GraphQL

from app import cli, migrate
from app.db import create_engine, create_session_factory
from app.main import create_app
from app.services.bootstrap import bootstrap
from app.settings import Settings

QUERY = b'{"query": "{ __typename }"}'
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


async def post(app: ASGIApp, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """One POST /graphql through the app's ASGI interface; the response's body."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    chunks: list[bytes] = []
    status = 0

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    answer = b"".join(chunks)
    if status != 200 or b'"errors"' in answer:
        raise RuntimeError(f"unexpected answer {status}: {answer[:300]!r}")
    return answer


async def rate(
    app: ASGIApp,
    headers: list[tuple[bytes, bytes]],
    *,
    warmup: int,
    requests: int,
    body: bytes = QUERY,
    profile: cProfile.Profile | None = None,
) -> float:
    """Requests per second of ``requests`` POSTs of ``body``, one after the other, after
    ``warmup`` unmeasured ones (profiled by ``profile``, when given)."""
    for _ in range(warmup):
        await post(app, body, headers)
    if profile is not None:
        profile.enable()
    started = time.perf_counter()
    for _ in range(requests):
        await post(app, body, headers)
    elapsed = time.perf_counter() - started
    if profile is not None:
        profile.disable()
    return requests / elapsed


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hello"


async def measure(
    requests: int, rounds: int, warmup: int, profile_path: Path | None
) -> dict[str, float]:
    reference = GraphQL(strawberry.Schema(query=Query))
    data_dir = Path(tempfile.mkdtemp(prefix="promenade-bench-"))
    try:
        settings = Settings(data_dir=data_dir, secret_key=Fernet.generate_key().decode())
        engine = create_engine(settings.resolved_database_url)
        await migrate.upgrade(engine)
        async with create_session_factory(engine)() as session:
            made = await bootstrap(
                session, email="bench@example.com", name="Bench", organization_slug="bench"
            )
            await session.commit()
        app = create_app(settings, engine=engine)
        headers = [(b"authorization", f"Bearer {made.token}".encode())]
        profile = cProfile.Profile() if profile_path is not None else None
        reference_rates: list[float] = []
        promenade_rates: list[float] = []
        async with app.router.lifespan_context(app):
            for round_ in range(rounds):
                first = warmup if round_ == 0 else 0
                reference_rates.append(await rate(reference, [], warmup=first, requests=requests))
                promenade_rates.append(
                    await rate(app, headers, warmup=first, requests=requests, profile=profile)
                )
        await engine.dispose()
        if profile is not None and profile_path is not None:
            profile.dump_stats(profile_path)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    reference_rate = statistics.median(reference_rates)
    promenade_rate = statistics.median(promenade_rates)
    return {
        "reference_rps": reference_rate,
        "promenade_rps": promenade_rate,
        "ratio": promenade_rate / reference_rate,
        "promenade_ms": 1000 / promenade_rate,
        "reference_ms": 1000 / reference_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests of a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="the numbers as JSON")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--profile", type=Path, help="cProfile statistics of Promenade's run")
    args = parser.parse_args()
    result: dict[str, float] = {}

    async def measured() -> None:
        result.update(await measure(args.requests, args.rounds, args.warmup, args.profile))

    # The loop Promenade's servers run on (PROMENADE_EVENT_LOOP's default), for both apps.
    cli.run(measured(), event_loop=args.event_loop)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{{ __typename }} with a token: {result['promenade_rps']:.0f} req/s "
        f"({result['promenade_ms']:.2f} ms) against plain Strawberry's "
        f"{result['reference_rps']:.0f} req/s ({result['reference_ms']:.2f} ms): "
        f"ratio {result['ratio']:.3f}"
    )


if __name__ == "__main__":
    main()

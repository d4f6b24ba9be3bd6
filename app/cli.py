"""The ``promenade`` command: run the control plane, migrate, bootstrap users."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrate
from app.db import create_engine, create_session_factory, session_scope
from app.main import create_app
from app.services.bootstrap import Bootstrapped, bootstrap, is_empty
from app.services.errors import DomainError
from app.settings import Settings, SettingsError, load_settings

EMBEDDED_ADMIN_EMAIL = "admin@localhost"
EMBEDDED_ORGANIZATION = "default"


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "secret-key":
            print(Fernet.generate_key().decode())
            return
        asyncio.run(args.run(settings, args))
    except (SettingsError, DomainError) as exc:
        print(f"promenade: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promenade", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser(
        "up",
        help="run everything in one process on embedded defaults "
        "(SQLite in the data directory, the in-process bus)",
    )
    up.set_defaults(run=_up)
    api = commands.add_parser("api", help="run the GraphQL API (scaled mode: migrate first)")
    api.set_defaults(run=_api)
    for command in (up, api):
        command.add_argument("--host", help="overrides PROMENADE_HOST")
        command.add_argument("--port", type=int, help="overrides PROMENADE_PORT")

    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)

    boot = commands.add_parser(
        "bootstrap", help="create a user (and organization) if missing and print a new token"
    )
    boot.add_argument("--email", required=True)
    boot.add_argument("--name", help="the user's name when the user is new")
    boot.add_argument("--org", help="organization slug; created, with the user as ADMIN, if new")
    boot.set_defaults(run=_bootstrap)

    commands.add_parser("secret-key", help="print a new PROMENADE_SECRET_KEY")
    return parser


async def _migrate(settings: Settings, _: argparse.Namespace) -> None:
    engine = _engine(settings)
    try:
        await migrate.upgrade(engine)
        print(f"database at revision {await migrate.current_revision(engine)}", file=sys.stderr)
    finally:
        await engine.dispose()


async def _bootstrap(settings: Settings, args: argparse.Namespace) -> None:
    engine = _engine(settings)
    try:
        await _require_current_schema(engine, settings)
        async with session_scope(create_session_factory(engine)) as session:
            result = await bootstrap(
                session, email=args.email, name=args.name, organization_slug=args.org
            )
        _print_bootstrapped(result)
    finally:
        await engine.dispose()


async def _up(settings: Settings, args: argparse.Namespace) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.resolved_secret_key()  # generated once into the data directory
    engine = _engine(settings)
    try:
        await migrate.upgrade(engine)
        async with session_scope(create_session_factory(engine)) as session:
            if await is_empty(session):
                result = await bootstrap(
                    session,
                    email=EMBEDDED_ADMIN_EMAIL,
                    name="Admin",
                    organization_slug=EMBEDDED_ORGANIZATION,
                )
                _print_bootstrapped(result)
    finally:
        await engine.dispose()
    await _serve(settings, args)


async def _api(settings: Settings, args: argparse.Namespace) -> None:
    engine = _engine(settings)
    try:
        await _require_current_schema(engine, settings)
    finally:
        await engine.dispose()
    await _serve(settings, args)


async def _serve(settings: Settings, args: argparse.Namespace) -> None:
    host = args.host or settings.host
    port = args.port or settings.port
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="info", lifespan="on"
    )
    print(f"Promenade GraphQL at http://{host}:{port}/graphql", file=sys.stderr)
    await uvicorn.Server(config).serve()


def _engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return create_engine(settings.resolved_database_url)


async def _require_current_schema(engine: AsyncEngine, settings: Settings) -> None:
    current = await migrate.current_revision(engine)
    if current != migrate.head_revision():
        raise SettingsError(
            f"the database is at revision {current or 'none'}, not "
            f"{migrate.head_revision()}: run `promenade migrate` first"
        )


def _print_bootstrapped(result: Bootstrapped) -> None:
    where = f" in organization {result.organization.slug!r}" if result.organization else ""
    print(f"User {result.user.email}{where}. API token (shown once):", file=sys.stderr)
    print(result.token, flush=True)


if __name__ == "__main__":
    main()

"""The server commands that run once and end: ``promenade migrate``, ``bootstrap`` and
``rotate-key``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app import migrate
from app.crypto import SecretBox
from app.db import create_session_factory, session_scope
from app.processes.startup import engine_for
from app.services.bootstrap import Bootstrapped, bootstrap
from app.settings import Settings, SettingsError


async def run_migrate(settings: Settings, _: argparse.Namespace) -> None:
    engine = engine_for(settings)
    try:
        await migrate.upgrade(engine)
        print(f"database at revision {await migrate.current_revision(engine)}", file=sys.stderr)
    finally:
        await engine.dispose()


async def run_rotate_key(settings: Settings, args: argparse.Namespace) -> None:
    """Re-encrypt every secret with the current key (app/services/keys.py says when); with
    ``--new-key``, embedded mode's key file gets a new current key first."""
    from cryptography.fernet import Fernet

    from app.services.keys import rotate_secrets
    from app.settings import SECRET_KEY_FILE

    if args.new_key:
        if settings.secret_key:
            raise SettingsError(
                "--new-key replaces the key in the data directory's secret.key; with "
                "PROMENADE_SECRET_KEY set, set the new key there (and the old one in "
                "PROMENADE_PREVIOUS_SECRET_KEYS) on every process instead"
            )
        keys = settings.secret_keys()  # made if missing
        path = settings.data_dir / SECRET_KEY_FILE
        fresh = Fernet.generate_key().decode()
        _replace_file(path, "\n".join([fresh, *keys]) + "\n")
        print(f"new current key in {path}; the old ones follow it", file=sys.stderr)
    engine = engine_for(settings)
    try:
        await migrate.require_current(engine)
        rotation = await rotate_secrets(
            create_session_factory(engine), SecretBox(settings.secret_keys())
        )
    finally:
        await engine.dispose()
    for table, count in rotation.resealed.items():
        print(f"{table}: {count} value(s) sealed again", file=sys.stderr)
    if not rotation.complete:
        for table, ids in rotation.unreadable.items():
            if ids:
                print(
                    f"{table}: {len(ids)} value(s) no key given opens: {', '.join(ids[:20])}"
                    + (" ..." if len(ids) > 20 else ""),
                    file=sys.stderr,
                )
        raise SettingsError(
            "some values are sealed with a key that is not among PROMENADE_SECRET_KEY and "
            "PROMENADE_PREVIOUS_SECRET_KEYS (or secret.key): add that key and run rotate-key "
            "again; until then, no previous key may go"
        )
    print(
        f"every secret is sealed with the current key ({rotation.total} re-encrypted); the "
        "previous keys can go",
        file=sys.stderr,
    )


def _replace_file(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a crash leaves the old file), readable by its owner
    only: a key file half written would lose every key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


async def run_bootstrap(settings: Settings, args: argparse.Namespace) -> None:
    engine = engine_for(settings)
    try:
        await migrate.require_current(engine)
        async with session_scope(create_session_factory(engine)) as session:
            result = await bootstrap(
                session, email=args.email, name=args.name, organization_slug=args.org
            )
        print_bootstrapped(result)
    finally:
        await engine.dispose()


def print_bootstrapped(result: Bootstrapped) -> None:
    where = f" in organization {result.organization.slug!r}" if result.organization else ""
    print(f"User {result.user.email}{where}. API token (shown once):", file=sys.stderr)
    print(result.token, flush=True)

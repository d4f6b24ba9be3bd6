"""The relay between the host and one container that has no network but its own loopback.

The CONTAINER runtime starts it as root through ``nsenter --net=/proc/<pid>/ns/net``, handing
it a socket that already listens on the *host's* 127.0.0.1 (file descriptor ``--fd``). A socket
belongs to the network namespace it was made in, so the relay accepts connections from the
host on that socket while every connection it opens itself is made inside the container's
namespace, to the instance's port on the container's loopback:

    gateway --> 127.0.0.1:<host port> (host) ==relay== 127.0.0.1:<port> (container) --> instance

The container can reach nothing outside its namespace, and nothing reaches it but through here.
The relay copies bytes and nothing else; it exits on SIGTERM, or once the container's first
process (``--watch-pid``) is gone. Standard library only: it starts in tens of milliseconds.

    python -m workers.runtimes.relay --fd 3 --port 8080 --watch-pid 4242
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket

CHUNK = 65_536
WATCH_INTERVAL_S = 0.5


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _relay(
    client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, port: int
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )
    finally:
        for writer in (upstream_writer, client_writer):
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def serve(fd: int, port: int, watch_pid: int | None) -> None:
    listener = socket.socket(fileno=fd)
    listener.setblocking(False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(lambda r, w: _relay(r, w, port), sock=listener, backlog=128)
    async with server:
        while not stop.is_set():
            if watch_pid is not None and not _alive(watch_pid):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)


def main() -> None:
    parser = argparse.ArgumentParser(prog="relay", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="a listening socket of the host's")
    parser.add_argument("--port", type=int, required=True, help="the instance's port")
    parser.add_argument("--watch-pid", type=int, help="exit once this process is gone")
    args = parser.parse_args()
    asyncio.run(serve(args.fd, args.port, args.watch_pid))


if __name__ == "__main__":
    main()

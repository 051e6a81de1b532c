"""A throwaway PostgreSQL server on 127.0.0.1 for the extractor's tests and benchmark (not a test itself).

    with local_postgres() as server:
        connect(**server.connection())

`initdb` refuses to run as root (CI runs as root): there, the server runs as the `postgres` user Debian's
package creates (`runuser`), in a temporary folder it owns; it listens on 127.0.0.1 only, on a free port, with
password authentication over TCP, and is stopped and removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.sources import Connection

BINARIES = sorted(
    (path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
    key=lambda folder: [int(part) for part in folder.parent.name.split(".") if part.isdigit()],
)
"""Debian's PostgreSQL server binaries (postgresql-15 on the machines this runs on)."""
SERVER_USER = "postgres"


@dataclass(frozen=True)
class LocalServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    def connection(self) -> dict[str, object]:
        """pg8000's keyword arguments."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def target(self) -> Connection:
        """The server as the extractor connects to it (pipeline.extract.connect)."""
        return Connection("postgresql", self.host, self.port, self.database, self.user, self.password)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def available() -> str | None:
    """Why no local server can start here, or None."""
    if not BINARIES:
        return "no PostgreSQL server binaries under /usr/lib/postgresql (Debian: apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and no {SERVER_USER!r} user to run the server as"
    return None


@contextlib.contextmanager
def local_postgres(database: str = "source") -> Iterator[LocalServer]:
    """A running server with `database`, its owner `extractor` (password authentication), stopped on exit."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    binaries = BINARIES[-1]
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    data = folder / "data"
    password = secrets.token_hex(12)
    (folder / "password").write_text(password + "\n")
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        for path in (folder, folder / "password"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True, "cwd": folder}
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "extractor",
                    f"--pwfile={folder / 'password'}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            ),
            **run,
        )
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
        subprocess.run(
            _as_server_user(
                [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start"]
            ),
            **run,
        )
        server = LocalServer("127.0.0.1", port, "extractor", password, database)
        import pg8000.native

        admin = pg8000.native.Connection(**(server.connection() | {"database": "postgres"}))
        try:
            admin.run(f"CREATE DATABASE {database}")
        finally:
            admin.close()
        yield server
    except subprocess.CalledProcessError as error:
        log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
        raise RuntimeError(f"{' '.join(error.cmd)} failed: {error.stderr}{log}") from None
    finally:
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)

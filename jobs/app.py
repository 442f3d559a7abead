"""The Procrastinate app: every domain's tasks bound to one connector.

Procrastinate talks to PostgreSQL through psycopg (its own small pool); the rest of
Doorstep uses asyncpg. Jobs are *deferred* from asyncpg transactions with
:func:`jobs.store.defer` (the same SQL function procrastinate's own ``defer`` calls),
so a job is enqueued exactly when the change that wants it commits.

Tasks reach the process's services (stores, tracking, …) through the worker's
``additional_context``: :func:`service` looks one up by its class.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
import procrastinate
from procrastinate import Blueprint, JobContext

from jobs.errors import UnknownTask

T = TypeVar("T")
SERVICES = "doorstep_services"
# The last of procrastinate's schema migrations that doorstep/migrations holds.
SCHEMA_VERSION = "03.04.00_50_post_add_retry_failed_job_procedure"


def build(database_url: str, blueprints: Mapping[str, Blueprint]) -> procrastinate.App:
    """An app with the blueprints' tasks, each under its namespace (``ns:task``)."""
    connector = procrastinate.PsycopgConnector(
        conninfo=database_url,
        min_size=1,
        max_size=4,
        json_dumps=lambda v: orjson.dumps(v).decode(),
        json_loads=orjson.loads,
    )
    app = procrastinate.App(connector=connector)
    for namespace, blueprint in blueprints.items():
        # add_tasks_from renames the blueprint's tasks in place: a copy keeps the module's
        # blueprint as declared, so a second app in one process (the tests') is the same.
        app.add_tasks_from(copy.deepcopy(blueprint), namespace=namespace)
    return app


def task_names(app: procrastinate.App) -> frozenset[str]:
    """Every task the app knows (procrastinate's builtins left out)."""
    return frozenset(n for n in app.tasks if not n.startswith("builtin:"))


def check_task(app: procrastinate.App, name: str) -> str:
    """``name`` if the app knows that task."""
    if name not in task_names(app):
        raise UnknownTask(
            f"unknown task {name!r}; known: {', '.join(sorted(task_names(app)))}", field="task"
        )
    return name


def service(context: JobContext, kind: type[T]) -> T:
    """The process's service of class ``kind``, for a task."""
    services: Mapping[type[Any], Any] = (context.additional_context or {}).get(SERVICES, {})
    found = services.get(kind)
    if found is None:
        raise LookupError(f"no {kind.__name__} in this worker's services")
    assert isinstance(found, kind)
    return found

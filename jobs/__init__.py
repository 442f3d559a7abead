"""Background jobs on Procrastinate (PostgreSQL-backed, asyncio): delayed, periodic,
retried, locked per key, cancellable. See docs/jobs.md.

Domain packages declare their tasks on a ``procrastinate.Blueprint`` of their own
(``<package>/tasks.py``) and defer them inside their own transactions with
:func:`jobs.store.defer`; the composition root binds the blueprints to one app
(:func:`jobs.app.build`) and runs workers (:class:`jobs.runner.JobRunner`).
"""

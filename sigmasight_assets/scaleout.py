"""Scale-out variants of the code location (README, "Scaling out"; docs/operating.md §9 "Beyond one
machine"). ``sigmasight_assets.definitions`` stays the default: in-process executor,
``BackfillPolicy.single_run()`` everywhere. This module builds the same nine assets with
another executor or another backfill policy, so nothing here is a home-made scheduler:
Dagster's executors and its backfill daemon do the distributing and the splitting.

Two ready-made code locations (load them with ``-m sigmasight_assets.scaleout -a NAME``):

- ``celery_defs``: every step of a run is a Celery task (``dagster_celery.celery_executor``),
  picked up by ``dagster-celery`` workers listening on the same broker. Broker and result
  backend come from the environment when the module is imported:

  - ``SIGMASIGHT_CELERY_BROKER``: e.g. ``redis://127.0.0.1:6379/0`` or
    ``pyamqp://guest:guest@127.0.0.1:5672//`` (default: dagster-celery's own default,
    ``pyamqp://guest@localhost//``, which a worker started without a config file uses too);
  - ``SIGMASIGHT_CELERY_BACKEND``: the result backend; default the broker URL for a Redis
    broker, else ``rpc://``.

  The run, the workers and the webserver must share one persistent Dagster instance
  (``DAGSTER_HOME``; the repo's SQLite ``dagster.yaml`` on one machine, PostgreSQL —
  ``deploy/dagster.postgres.yaml`` — across machines) and the ``SIGMASIGHT_*`` settings,
  since a worker rebuilds the job from this module and writes the store itself.

- ``multi_run_defs``: the partitioned assets with ``BackfillPolicy.multi_run(N)``
  (``N`` = ``SIGMASIGHT_PARTITIONS_PER_RUN``, default 4), in-process executor. An asset
  backfill of a long range (UI asset graph → Materialize all → range, or the backfill API)
  is split by the daemon into runs of at most N sessions each. ``equity_balances`` depends
  on its own previous partition, so the daemon launches its chunks one after the other,
  each after the previous chunk's materializations exist; each run seeds from the stored
  session before its chunk exactly as a single run does, so the rows equal those of one
  single run (``sigmasight_assets_tests/test_scaleout.py``). ``company_profiles`` is
  unpartitioned and keeps ``single_run()``.

``sigmasight_assets.definitions.build_defs(executor=..., backfill_policy=...)`` builds any other
combination (e.g. the
multiprocess executor, or ``dagster_k8s.k8s_job_executor`` in a user-code image).
"""

from __future__ import annotations

import os

from dagster import BackfillPolicy, ExecutorDefinition

from sigmasight_assets.config import env_number
from sigmasight_assets.definitions import build_defs

CELERY_BROKER_ENV = "SIGMASIGHT_CELERY_BROKER"
CELERY_BACKEND_ENV = "SIGMASIGHT_CELERY_BACKEND"
PARTITIONS_PER_RUN_ENV = "SIGMASIGHT_PARTITIONS_PER_RUN"
DEFAULT_CELERY_BROKER = "pyamqp://guest@localhost//"  # dagster_celery.defaults.broker_url
DEFAULT_PARTITIONS_PER_RUN = 4


def celery_settings(environ=None) -> dict[str, str]:
    """``{"broker": ..., "backend": ...}`` from ``SIGMASIGHT_CELERY_BROKER`` /
    ``SIGMASIGHT_CELERY_BACKEND``: the same values configure the executor (which submits
    the tasks) and the workers (``dagster-celery worker start -y``, see README)."""
    environ = os.environ if environ is None else environ
    broker = environ.get(CELERY_BROKER_ENV) or DEFAULT_CELERY_BROKER
    backend = environ.get(CELERY_BACKEND_ENV) or (broker if broker.startswith(("redis://", "rediss://")) else "rpc://")
    return {"broker": broker, "backend": backend}


def celery_executor_from_env(environ=None) -> ExecutorDefinition:
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_settings(environ), name="sigmasight_celery")


def partitions_per_run(environ=None) -> int:
    return env_number(PARTITIONS_PER_RUN_ENV, DEFAULT_PARTITIONS_PER_RUN, minimum=1, environ=environ)


celery_defs = build_defs(executor=celery_executor_from_env())
multi_run_defs = build_defs(backfill_policy=BackfillPolicy.multi_run(partitions_per_run()))

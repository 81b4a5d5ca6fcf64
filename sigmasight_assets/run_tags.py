"""The run tags Dagster documents for the partitions a run covers and the backfill that
launched it. Dagster exports no public constant for them, so they are named here once.

- ``RANGE_START_TAG``/``RANGE_END_TAG``: one run over a partition range (the CLI's
  ``--partition-range``, the job page's backfill, ``RunRequest.partition_key_range``);
- ``PARTITION_TAG``: a run of a single partition;
- ``BACKFILL_TAG``: the id of the backfill that launched the run.
"""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"

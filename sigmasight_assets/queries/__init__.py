"""Every read from the store, one module per concern, each a bulk query (no per-row reads).

Pure SQLAlchemy and pandas (no Dagster): the assets, the CLI, the tests and the benchmarks
read through these functions, then hand the frames to the domain packages.
"""

"""The demo book: CSVs in the formats of docs/operating.md §10, written by ``generate.py``."""

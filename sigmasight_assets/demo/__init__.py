"""The demo book: CSVs in the formats of DESIGN §9, written by ``generate.py``."""

"""Pure accounting: valuation, daily P&L, the equity rollforward and snapshots (docs/accounting.md §2).

No Dagster and no database here: functions take and return pandas DataFrames.
"""

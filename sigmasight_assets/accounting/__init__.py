"""Pure accounting: valuation, daily P&L, the equity rollforward and snapshots (DESIGN §5).

No Dagster and no database here: functions take and return pandas DataFrames.
"""

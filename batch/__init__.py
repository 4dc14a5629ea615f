"""The batch side: loading history into PostgreSQL and the lake.

Never packaged into a Lambda. It reads through the same readers the services
use (``shared.postgres``, the backtest app's lake reader) and owns the writes.
"""

"""The backtest service's own code: the history service, its output formats and the lake reader."""

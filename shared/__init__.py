"""Code shared by the quote, backtest and alerts services.

Nothing here imports Chalice except ``shared.web``; every other module takes its
clients as arguments so it can be used from a CLI, a test or another service.
"""

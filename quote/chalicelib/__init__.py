"""The quote service's own code: its API contract (the quote path itself is shared with alerts)."""

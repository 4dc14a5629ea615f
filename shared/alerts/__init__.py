"""Per-user alert rules, their condition language and the scheduled check."""

"""The alerts service's own code: per-user rules, their condition language, the
rule store, the scheduled check and the alerts command line."""

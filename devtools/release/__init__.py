"""Release tooling: the locks, packaging and its checks, the IAM scan, stage configuration,
deployment, the cost model, the type check and the documentation site's hooks."""

"""How a check fans out over Lambda, in numbers (the model is in the README's "Alerts
at a million rules"): the work queue the ``alerts-worker`` function reads, and its
event source's settings.
"""

# The work queue's name as the app declares it; make package gives each stage its own
# (market-alerts-<stage>-work, in the stateful stack).
WORK_QUEUE = "market-alerts-work"
# Units of work an invocation takes at most: a shard is a few seconds of work, so small
# batches keep the shards spread over as many workers as the event source runs.
WORKER_BATCH = 2
# Workers at once, at most (the event source's ScalingConfig): each holds one PostgreSQL
# connection, and db.t4g.micro takes ~80, shared with the APIs and the daily update.
MAX_WORKERS = 50

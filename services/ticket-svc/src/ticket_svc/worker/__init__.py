"""The background loops the app starts: the SLA breach escalation (scheduler.py) and the fold of
the metric deltas (folding.py). Each opens its own transactions, so neither is a service function."""

"""campaign-svc's events: what it publishes (publish.py) and how it reacts to others' (handlers.py)."""

"""pipeline-svc's events: what it publishes (publish.py) and what it does with what it hears (handlers.py)."""

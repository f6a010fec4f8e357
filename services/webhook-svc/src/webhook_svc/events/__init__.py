"""webhook-svc's events: what it publishes (publish.py) and how it takes in everyone's (handlers.py)."""

"""Events: what ticket-svc publishes (publish.py) and the handlers of what it consumes (handlers.py)."""

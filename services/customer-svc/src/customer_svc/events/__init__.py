"""What customer-svc publishes (publish.py) and how it reacts to what others publish (handlers.py)."""

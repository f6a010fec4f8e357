"""Events published by activity-svc (payload models; add each with the change that first publishes it)."""

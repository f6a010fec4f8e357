"""Events published by ticket-svc (payload models; add each with the change that first publishes it)."""

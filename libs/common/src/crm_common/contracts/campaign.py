"""Events published by campaign-svc (payload models; add each with the change that first publishes it)."""

"""Events published by pipeline-svc (payload models; add each with the change that first publishes it)."""

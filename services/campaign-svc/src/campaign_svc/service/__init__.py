"""Domain logic of campaign-svc."""

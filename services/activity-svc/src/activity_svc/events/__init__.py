"""activity-svc and the event bus: `publish` builds what it publishes, `handlers` maps what it
consumes to its reactions in service/."""

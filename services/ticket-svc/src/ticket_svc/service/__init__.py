"""Ticket domain logic: plain async functions that take a session, one module per topic."""

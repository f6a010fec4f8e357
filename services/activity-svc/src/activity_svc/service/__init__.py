"""Activity domain logic: plain async functions that take a session.

- `activities`: create, read, update, delete, status transitions, completion and follow-ups;
- `notes`: the system notes recorded from domain events, and the local customer read model
  (names, merges);
- `views`: presenting activities with names, timelines, the caller's agenda and the feed;
- `reactions`: what the events of other contexts do here (events/handlers.py maps them).
"""

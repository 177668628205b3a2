"""The Kudos domain: events, scoring rules (pure), ranking, and the one module that owns Redis."""

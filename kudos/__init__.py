"""Kudos command line and the embedded stack (broker, Redis, worker, web as real processes)."""

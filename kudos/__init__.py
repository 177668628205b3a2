"""The ``kudos`` command line, the embedded stack (broker, Redis, worker, web, deliverer as real
processes), and what every process shares: JSON logs and the HTTP answers of ``kudos.http``."""

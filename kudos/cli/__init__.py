"""The ``kudos`` command line. Every command reads the same settings (``KUDOS_*`` variables).

``main`` and ``parser`` are in :mod:`kudos.cli.main`; the commands, one module per group:

- :mod:`kudos.cli.stack`: ``up``, ``down``, ``worker``, ``web``, ``deliver``, ``topics``
- :mod:`kudos.cli.boards`: ``board``, ``export``, ``member``, ``stats``, ``watch``
- :mod:`kudos.cli.replay`: ``replay``, ``rebuild``
- :mod:`kudos.cli.perks`: ``perks``, ``webhooks log``, ``webhooks replay``, ``alerts``
- :mod:`kudos.cli.bait`: ``bait-eval``

with :mod:`kudos.cli.common` (the Store session every Redis command runs in) and
:mod:`kudos.cli.output` (text forms several commands share).
"""

from kudos.cli.main import main, parser

__all__ = ["main", "parser"]

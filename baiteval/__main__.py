"""``python -m baiteval [options]``: ``kudos bait-eval`` on its own (the same options)."""

from kudos.cli.bait import main

raise SystemExit(main())

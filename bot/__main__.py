"""``python -m bot`` is the ``siaga112`` console script."""

from bot.cli import main

raise SystemExit(main())

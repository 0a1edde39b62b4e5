"""``python -m kjenv``: the same as the ``kjenv`` command."""

from kjenv.cli import main

raise SystemExit(main())

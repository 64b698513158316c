"""``python -m skuad``: the ``skuad`` command line."""

from skuad.cli import main

raise SystemExit(main())

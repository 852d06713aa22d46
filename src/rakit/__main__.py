"""``python -m rakit`` is the ``rakit`` command."""

from rakit.cli import main

main()

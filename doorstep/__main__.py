"""``python -m doorstep`` is the ``doorstep`` command."""

from doorstep.cli import main

main()

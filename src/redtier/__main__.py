"""Allow `python -m redtier`."""

from redtier.cli import main

main()

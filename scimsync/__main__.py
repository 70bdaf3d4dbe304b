"""Run the CLI with ``python -m scimsync``."""

from scimsync.cli import main

main()

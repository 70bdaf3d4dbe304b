"""The command line: a thin shell over ``scimsync.api`` (see ``app`` for the frame)."""

from scimsync.cli import admin, apply, explain, plan, revert  # noqa: F401  (each registers its commands on ``cli``)
from scimsync.cli.app import cli


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="scimsync")


__all__ = ["cli", "main"]

"""`python -m sftconv` runs the command line."""

from .cli import main

main()

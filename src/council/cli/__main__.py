"""`python -m council.cli`: the same as the `council` command."""

from council.cli import main

main()

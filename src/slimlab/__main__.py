"""`python -m slimlab` is the `slimlab` command."""

from slimlab.cli import main

main()

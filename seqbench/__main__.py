"""``python -m seqbench`` = the ``seqbench`` command."""

from seqbench.cli.main import main

main()

"""The ``seqbench`` command line: thin Typer layers over the library, one module per group."""

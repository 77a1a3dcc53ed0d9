"""The ``glotbench`` command line: one module per verb, each parsing its flags and delegating."""

"""The ``fcinv`` command line: one module per subcommand, each with ``get_parser()`` and ``main(argv)``."""

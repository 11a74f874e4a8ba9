"""One module per ``cnnmft`` subcommand; each defines ``configure(parser)`` and ``run(args)``.

Command modules must not import torch, matplotlib or dask at module level (``cnnmft <command>
--help`` imports the command's module); import heavy things inside ``run``.
"""

"""One module per ``cnnmft`` subcommand; each defines ``configure(parser)`` and ``run(args)``.

Command modules must not import torch or matplotlib at module level (``cnnmft --help`` imports
all of them); import heavy things inside ``run``.
"""

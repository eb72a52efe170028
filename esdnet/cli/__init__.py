"""ESDNet's commands: ``derain``, ``evaluate``, ``data`` and ``train``, each a module exposing
``add_parser(subparsers)`` that registers the command and sets ``func`` to a callable ``run(args) -> int``.

They never import ``snn_energy``; the one ``snn-energy`` command (``snn_energy.cli``) composes them with the
profiling commands. Errors a user can fix are raised as ``UserError`` (``esdnet.cli.errors``) or as
``ValueError``/``OSError`` subclasses, which the command line prints in one line with exit status 2.
"""

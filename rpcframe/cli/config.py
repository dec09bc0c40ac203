"""The configuration a subcommand reads: the oslo.config files given with ``--config-file``.

Every subcommand that talks to a broker takes ``--url``, and without it the
transport URL of these files (``[DEFAULT] transport_url``, and for
notifications ``[oslo_messaging_notifications] transport_url`` first), as a
service reading the same files would.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from oslo_config import cfg

from rpcframe.cli import failures

__all__ = ["add_config_file", "load"]


def add_config_file(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` a repeatable ``--config-file``."""
    parser.add_argument(
        "--config-file",
        action="append",
        metavar="PATH",
        help="an oslo.config file to read options from (repeatable)",
    )


def load(config_files: Sequence[str] | None) -> cfg.ConfigOpts:
    """A private ConfigOpts that has read ``config_files``; CommandFailed (status 2) if not."""
    conf = cfg.ConfigOpts()
    try:
        conf([], default_config_files=list(config_files or []), default_config_dirs=[])
    except cfg.Error as exc:  # a file missing or not in oslo.config's format
        raise failures.CommandFailed(str(exc), failures.USAGE) from None
    return conf

"""(filled in below)"""

from __future__ import annotations

import typer

routing_app = typer.Typer(help="(filled in below)", no_args_is_help=True)

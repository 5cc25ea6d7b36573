"""Tile IR: types, ops, printer/parser, passes."""

from tiledsl.ir import ops  # noqa: F401  (registers the tile IR ops)

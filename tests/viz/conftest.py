"""Shared pieces of the picture tests: small programs, traces and the ``tiles`` parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.viz.cli_tiles import add_tiles_parser
from tiledsl.viz.trace import AccessTrace, record_block_level

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Blocks overlap by half a tile: rows 8-15 are written twice and rows 24-31 never.
OVERLAP = """\
kernel overlap(X: f32[M, 8], out Y: f32[M, 8])
  param BM = 16
  grid (cdiv(M, BM)) as (bm)
  block 1 waves
{
  Y[bm*8 : +BM, :] <- X[bm*8 : +BM, :]
}
"""


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def gemm_trace() -> AccessTrace:
    """gemm with a 2 x 2 grid of 64 x 64 tiles, K walked in two steps."""
    prog = tiledsl.load(EXAMPLES / "gemm.tdsl")
    rng = np.random.default_rng(0)
    args = {"A": rng.standard_normal((128, 64)).astype(np.float16),
            "B": rng.standard_normal((64, 128)).astype(np.float16),
            "C": np.zeros((128, 128), dtype=np.float32)}
    return record_block_level(prog, args)


@pytest.fixture(scope="session")
def overlap_trace() -> AccessTrace:
    prog = tiledsl.load(OVERLAP)
    return record_block_level(prog, {"X": np.ones((32, 8), np.float32), "Y": np.zeros((32, 8), np.float32)})


@pytest.fixture()
def tiles_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdslc")
    add_tiles_parser(parser.add_subparsers(dest="command"))
    return parser

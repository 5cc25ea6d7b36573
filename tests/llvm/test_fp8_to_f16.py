"""fp8 operands widened to f16 for an f16 matrix instruction (``lower_matrix.fp8_to_f16``): every
one of the 256 bit patterns of each format, JIT-compiled for the CPU, against ml_dtypes."""

from __future__ import annotations

import ctypes

import ml_dtypes
import numpy as np
import pytest

from tiledsl.llvm import binding, initialize, ir
from tiledsl.llvm.irgen import F16, I8, I32
from tiledsl.llvm.lower_matrix import fp8_to_f16

FORMATS = {"f8e4m3": ml_dtypes.float8_e4m3fn, "f8e5m2": ml_dtypes.float8_e5m2}


def _widen_all(dtype: str) -> np.ndarray:
    """f16 bits of fp8_to_f16 of the bytes 0..255, run on the host."""
    initialize()
    binding.initialize_native_target()
    binding.initialize_native_asmprinter()
    module = ir.Module(dtype)
    module.triple = binding.get_default_triple()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.PointerType(), ir.PointerType()]), "run")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    for i in range(256):
        x = b.load(b.gep(fn.args[0], [ir.Constant(I32, i)], source_etype=I8), typ=I8)
        b.store(fp8_to_f16(b, x, dtype), b.gep(fn.args[1], [ir.Constant(I32, i)], source_etype=F16))
    b.ret_void()
    mod = binding.parse_assembly(str(module))
    mod.verify()
    tm = binding.Target.from_default_triple().create_target_machine(
        cpu=binding.get_host_cpu_name(), features=binding.get_host_cpu_features().flatten(), opt=2)
    engine = binding.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(engine.get_function_address("run"))
    src = np.arange(256, dtype=np.uint8)
    out = np.zeros(256, dtype=np.float16)
    run(src.ctypes.data, out.ctypes.data)
    return out


@pytest.mark.parametrize("dtype", sorted(FORMATS))
def test_every_fp8_value_widens_exactly(dtype: str) -> None:
    got = _widen_all(dtype)
    want = np.arange(256, dtype=np.uint8).view(FORMATS[dtype]).astype(np.float32)
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all()
    np.testing.assert_array_equal(got[~nan].astype(np.float32), want[~nan])
    # Signed zeros and the sign of every value survive.
    assert (np.signbit(got[~nan]) == np.signbit(want[~nan])).all()

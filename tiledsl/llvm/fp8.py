"""OCP FP8 (e4m3 = E4M3FN, e5m2) ↔ f32 as bit-exact LLVM IR, for targets without a matching
hardware conversion (every AMDGPU target here, sm_80, the host).

An fp8 value is carried as its ``i8`` bit pattern. The conversions compute exactly what
``interp.numerics`` defines (``round_fp8``): f32 → fp8 rounds to nearest even and saturates to the
largest finite value (±inf included), NaN becomes the NaN ``0x7F``; fp8 → f32 is exact.

Why not the hardware where there is some: gfx942's ``v_cvt_pk_fp8_f32`` / ``v_cvt_f32_fp8``
(``llvm.amdgcn.cvt.pk.fp8.f32``, ``llvm.amdgcn.cvt.f32.fp8``) convert to and from the FNUZ formats
(exponent bias 8 and 16, one NaN at 0x80, no -0), not OCP's: a different value for every bit
pattern (docs/targets/amdgpu.md §7.1). NVIDIA sm_89+ has OCP conversions, which
``NvptxTarget`` uses instead (docs/targets/nvptx.md §15).
"""

from __future__ import annotations

from dataclasses import dataclass

from tiledsl.llvm.irgen import F16, F32, I8, I16, I32, call_intrinsic
from tiledsl.llvm.llvm_init import ir


@dataclass(frozen=True)
class Fp8Format:
    """One fp8 format: sign, ``exp_bits`` of exponent with ``bias``, ``man_bits`` of mantissa;
    ``max_bits`` is the pattern (without the sign) of the largest finite value."""

    exp_bits: int
    man_bits: int
    bias: int
    max_bits: int


FORMATS = {
    "f8e4m3": Fp8Format(exp_bits=4, man_bits=3, bias=7, max_bits=0x7E),     # 448; 0x7F is NaN
    "f8e5m2": Fp8Format(exp_bits=5, man_bits=2, bias=15, max_bits=0x7B),    # 57344; 0x7C inf
}
#: The NaN that conversions to fp8 produce (a NaN in both formats).
NAN_BITS = 0x7F


def _c(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def fp8_to_f32(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """The f32 value of the fp8 bit pattern ``v`` (``i8``), exactly.

    The byte is placed in the high byte of an f16 (sign, then e4m3's 4 or e5m2's 5 exponent bits,
    then the mantissa). e5m2 *is* the high byte of an f16 (same exponent width and bias), so that
    is its value, infinities, NaNs and subnormals included. An e4m3 pattern read so has the value
    ``2^-8`` times its own (bias 15 instead of 7; subnormals become f16 subnormals alike), so
    ``× 2^8`` in f32 (exact) gives it, except for its NaN pattern, chosen apart.
    """
    fmt = FORMATS[dtype]
    byte = b.zext(v, I16)
    if fmt.exp_bits == 5:
        return b.fpext(b.bitcast(b.shl(byte, ir.Constant(I16, 8)), F16), F32)
    sign = b.shl(b.and_(byte, ir.Constant(I16, 0x80)), ir.Constant(I16, 8))
    mag = b.and_(byte, ir.Constant(I16, 0x7F))
    half = b.bitcast(b.or_(sign, b.shl(mag, ir.Constant(I16, 7))), F16)
    value = b.fmul(b.fpext(half, F32), ir.Constant(F32, 2.0 ** (15 - fmt.bias)))
    is_nan = b.icmp_unsigned("==", mag, ir.Constant(I16, 0x7F))
    nan = call_intrinsic(b, "llvm.copysign.f32", F32, [ir.Constant(F32, float("nan")), value])
    return b.select(is_nan, nan, value)


def f32_to_fp8(b: ir.IRBuilder, x: ir.Value, dtype: str) -> ir.Value:
    """``x`` (f32) rounded to the fp8 ``dtype``: its ``i8`` bit pattern (see the module docstring).

    Normal results: round the f32 bits to ``man_bits`` of mantissa (add half an ulp less one, plus
    the lowest kept bit: ties go to even), shift, re-bias the exponent, then saturate with an
    unsigned min against the largest finite pattern (a carry into the next exponent, or ±inf, goes
    past it). Below the smallest normal (2^(1-bias)) the result is a subnormal count of
    2^(1-bias-man_bits): ``roundeven(|x|·2^(bias-1+man_bits))``, exact in f32, and a count of
    2^man_bits is the smallest normal's pattern, as it should be.
    """
    fmt = FORMATS[dtype]
    m = fmt.man_bits
    bits = b.bitcast(x, I32)
    sign = b.and_(b.lshr(bits, _c(24)), _c(0x80))
    mag = b.and_(bits, _c(0x7FFFFFFF))
    shift = 23 - m
    half_ulp = b.add(_c((1 << (shift - 1)) - 1), b.and_(b.lshr(mag, _c(shift)), _c(1)))
    normal = b.sub(b.lshr(b.add(mag, half_ulp), _c(shift)), _c((127 - fmt.bias) << m))
    normal = call_intrinsic(b, "llvm.umin.i32", I32, [normal, _c(fmt.max_bits)])
    scaled = b.fmul(b.bitcast(mag, F32), ir.Constant(F32, 2.0 ** (fmt.bias - 1 + m)))
    subnormal = b.fptoui(call_intrinsic(b, "llvm.roundeven.f32", F32, [scaled]), I32)
    min_normal = (127 + 1 - fmt.bias) << 23          # the f32 bits of 2^(1-bias)
    value = b.select(b.icmp_unsigned("<", mag, _c(min_normal)), subnormal, normal)
    is_nan = b.icmp_unsigned(">", mag, _c(0x7F800000))
    return b.trunc(b.select(is_nan, _c(NAN_BITS), b.or_(value, sign)), I8)

"""f32 math functions as LLVM instruction sequences, for targets that have no libm.

Each function takes an ``ir.IRBuilder`` and the ``GpuTarget`` (whose ``exp2`` is the one hardware
primitive used: ``v_exp_f32`` on AMDGPU, ``ex2.approx.ftz.f32`` on NVPTX) and f32 values, and
returns an f32 value, with the special values of ``tiledsl.interp.numerics.MATH64`` (NaN in, NaN
out; ``log(0) = -inf``; C99 ``pow``). The rest is FMAs, selects and integer bit operations, so
the same code runs on every target, and on the CPU in ``tests/llvm/host_simt.py``, where the
sequences are checked against the interpreters' float64 definition.

The polynomials are weighted minimax fits computed by ``tools/fit_math.py`` (coefficients rounded
to f32, as printed there). The reductions are the classical ones (Cody and Waite, *Software
Manual for the Elementary Functions*, 1980; the log kernel is the one of 4.4BSD/fdlibm:
``log(1+f) = f - (f²/2 - s·(f²/2 + R(s²)))`` with ``s = f/(2+f)``), written here from their
descriptions. Error bounds, measured over millions of inputs on the CPU (where ``exp2`` is exact
to 0.5 ulp), are in docs/targets/math.md; on a GPU the ``exp2`` primitive adds its own error to
the functions built on it, and results below 2^-126 may flush to zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from tiledsl.llvm.irgen import F32, I32, call_intrinsic
from tiledsl.llvm.llvm_init import ir

if TYPE_CHECKING:
    from tiledsl.llvm.target_base import GpuTarget


def _f32(v: float) -> float:
    return float(np.float32(v))


def _split(v: float, zero_bits: int = 0) -> tuple[float, float]:
    """``v`` as hi + lo in f32, hi with its ``zero_bits`` lowest mantissa bits clear (so that hi
    times a small integer is exact)."""
    hi = np.float32(v).view(np.uint32) & np.uint32((0xFFFFFFFF << zero_bits) & 0xFFFFFFFF)
    hi_f = float(hi.view(np.float32))
    return hi_f, _f32(v - hi_f)


# Coefficients from tools/fit_math.py, lowest degree first.
TANH_P = (-0.3333333134651184, 0.1333320587873459, -0.05394676327705383, 0.021700702607631683,
          -0.008177398703992367, 0.0021429620683193207)
ERF_SMALL_P = (-0.3761262893676758, 0.11283617466688156, -0.02685491554439068, 0.00519016245380044,
               -0.0008024818962439895, 7.898695184849203e-05)
ERF_LARGE_R = (-2.668416738510132, -3.807225227355957, -1.2163463830947876, -0.05996342748403549,
               0.014493966475129128, -0.0029026539996266365, 0.0004177004739176482, -3.1287374440580606e-05)
LOG_G = (0.666668176651001, 0.39973488450050354, 0.2996433675289154)
SIN_S = (-0.1666666716337204, 0.008333329111337662, -0.00019839162996504456, 2.716712060646387e-06)
COS_C = (0.04166664183139801, -0.0013887194218114018, 2.4419196051894687e-05)

TANH_SMALL = 0.625          # below it the polynomial, above it (1 - e^-2a) / (1 + e^-2a)
ERF_SMALL = 1.0             # below it x (2/sqrt(pi) + x² P(x²)), above it 1 - 2^R(x - 1)
ERF_ONE = 4.0               # erf(x) rounds to 1 in f32 beyond 3.92: R is fitted up to 4
EXP_FLOOR = -104.0          # e^-104 < 2^-149: every smaller exponent gives 0 too
LOG2E_HI, LOG2E_LO = _split(math.log2(math.e))
LN2_HI, LN2_LO = _split(math.log(2.0), zero_bits=12)     # k * LN2_HI exact for |k| < 2^12
LN2 = _f32(math.log(2.0))
TWO_OVER_SQRT_PI_HI, TWO_OVER_SQRT_PI_LO = _split(2.0 / math.sqrt(math.pi))
SQRT_HALF_BITS = 0x3F3504F3     # f32 sqrt(1/2): log's mantissa is reduced to [sqrt(1/2), sqrt(2))
TWO_OVER_PI = _f32(2.0 / math.pi)


class Seq:
    """The builder operations the sequences are written in (f32 unless named otherwise)."""

    def __init__(self, b: ir.IRBuilder, target: GpuTarget) -> None:
        self.b = b
        self.target = target

    @staticmethod
    def c(v: float) -> ir.Constant:
        return ir.Constant(F32, _f32(v))

    @staticmethod
    def i(v: int) -> ir.Constant:
        return ir.Constant(I32, v)

    def add(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fadd(x, y)

    def sub(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fsub(x, y)

    def mul(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fmul(x, y)

    def div(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fdiv(x, y)

    def neg(self, x: ir.Value) -> ir.Value:
        return self.b.fneg(x)

    def fma(self, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
        return call_intrinsic(self.b, "llvm.fma.f32", F32, [x, y, z])

    def unary(self, name: str, x: ir.Value) -> ir.Value:
        return call_intrinsic(self.b, f"llvm.{name}.f32", F32, [x])

    def abs(self, x: ir.Value) -> ir.Value:
        return self.unary("fabs", x)

    def copysign(self, mag: ir.Value, sign: ir.Value) -> ir.Value:
        return call_intrinsic(self.b, "llvm.copysign.f32", F32, [mag, sign])

    def horner(self, t: ir.Value, coeffs: tuple[float, ...]) -> ir.Value:
        acc = self.c(coeffs[-1])
        for ci in coeffs[-2::-1]:
            acc = self.fma(acc, t, self.c(ci))
        return acc

    def cmp(self, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
        """An ordered comparison: false when either side is NaN."""
        return self.b.fcmp_ordered(op, x, y)

    def isnan(self, x: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", x, x)

    def select(self, cond: ir.Value, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.select(cond, x, y)

    def bits(self, x: ir.Value) -> ir.Value:
        return self.b.bitcast(x, I32)

    def from_bits(self, x: ir.Value) -> ir.Value:
        return self.b.bitcast(x, F32)

    def exp2(self, x: ir.Value) -> ir.Value:
        return self.target.exp2(self.b, x)

    def branch(self, cond: ir.Value, then: Callable[[], tuple[ir.Value, ...]],
               otherwise: Callable[[], tuple[ir.Value, ...]]) -> tuple[ir.Value, ...]:
        """The values of ``then()`` where ``cond`` holds, else of ``otherwise()``, with a branch
        around each (a rare slow path costs nothing where no lane takes it)."""
        b = self.b
        with b.if_else(cond, likely=False) as (on_true, on_false):
            with on_true:
                a = then()
                a_end = b.block
            with on_false:
                c = otherwise()
                c_end = b.block
        out = []
        for x, y in zip(a, c):
            phi = b.phi(x.type)
            phi.add_incoming(x, a_end)
            phi.add_incoming(y, c_end)
            out.append(phi)
        return tuple(out)


# ---------------------------------------------------------------- exponentials

def exp_nonpositive(s: Seq, y: ir.Value) -> ir.Value:
    """e^y for y <= 0 (NaN stays NaN): 2^(y log2 e) with the product's rounding error carried
    into a first-order correction, so that the result is as accurate as the exp2 primitive even
    where y·log2 e has lost bits (|y| up to 104)."""
    y = s.select(s.cmp("<", y, s.c(EXP_FLOOR)), s.c(EXP_FLOOR), y)
    hi = s.mul(y, s.c(LOG2E_HI))
    lo = s.fma(y, s.c(LOG2E_LO), s.fma(y, s.c(LOG2E_HI), s.neg(hi)))
    e = s.exp2(hi)                                  # <= 1: the FMA below cannot meet an inf
    return s.fma(e, s.mul(lo, s.c(LN2)), e)


def tanh(s: Seq, x: ir.Value) -> ir.Value:
    a = s.abs(x)
    t = s.mul(x, x)
    small = s.fma(s.mul(x, t), s.horner(t, TANH_P), x)
    z = exp_nonpositive(s, s.mul(a, s.c(-2.0)))
    large = s.div(s.sub(s.c(1.0), z), s.add(s.c(1.0), z))
    # NaN: the polynomial's NaN; the sign of x also for ±0 (the FMA would give +0 for -0)
    return s.copysign(s.select(s.cmp(">=", a, s.c(TANH_SMALL)), large, small), x)


def sigmoid(s: Seq, x: ir.Value) -> ir.Value:
    z = exp_nonpositive(s, s.neg(s.abs(x)))         # e^-|x|, in (0, 1]: neither form overflows
    return s.div(s.select(s.cmp(">=", x, s.c(0.0)), s.c(1.0), z), s.add(s.c(1.0), z))   # 1/(1+z), z/(1+z)


def erf(s: Seq, x: ir.Value) -> ir.Value:
    a = s.abs(x)
    t = s.mul(x, x)
    tail = s.mul(x, s.fma(t, s.horner(t, ERF_SMALL_P), s.c(TWO_OVER_SQRT_PI_LO)))
    small = s.fma(x, s.c(TWO_OVER_SQRT_PI_HI), tail)
    u = s.sub(s.select(s.cmp("<", a, s.c(ERF_ONE)), a, s.c(ERF_ONE)), s.c(1.0))
    large = s.sub(s.c(1.0), s.exp2(s.horner(u, ERF_LARGE_R)))
    return s.copysign(s.select(s.cmp(">=", a, s.c(ERF_SMALL)), large, small), x)     # -0 too


# ---------------------------------------------------------------- logarithms

def _log_reduce(s: Seq, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(k, f) with x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), for a positive finite x
    (subnormals scaled up first); k as an f32."""
    b = s.b
    tiny = s.cmp("<", x, s.c(2.0 ** -126))
    x = s.select(tiny, s.mul(x, s.c(2.0 ** 23)), x)
    ix = b.sub(s.bits(x), s.i(SQRT_HALF_BITS))
    k = b.add(b.ashr(ix, s.i(23)), b.select(tiny, s.i(-23), s.i(0)))
    m = s.from_bits(b.add(b.and_(ix, s.i(0x7FFFFF)), s.i(SQRT_HALF_BITS)))
    return b.sitofp(k, F32), s.sub(m, s.c(1.0))


def _log1p_terms(s: Seq, f: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(hfsq, s·(hfsq + R)) of the log kernel: log(1 + f) = f - (hfsq - that) for f in
    [sqrt(1/2) - 1, sqrt(2) - 1]."""
    q = s.div(f, s.add(s.c(2.0), f))
    z = s.mul(q, q)
    r = s.mul(z, s.horner(z, LOG_G))
    hfsq = s.mul(s.c(0.5), s.mul(f, f))
    return hfsq, s.mul(q, s.add(hfsq, r))


def _log_specials(s: Seq, x: ir.Value, out: ir.Value, zero: float) -> ir.Value:
    """log's value at the edges: ``zero`` (where the result is -inf), below it NaN, +inf at +inf,
    NaN for NaN."""
    out = s.select(s.cmp("==", x, s.c(math.inf)), s.c(math.inf), out)
    out = s.select(s.cmp("==", x, s.c(zero)), s.c(-math.inf), out)
    out = s.select(s.cmp("<", x, s.c(zero)), s.c(math.nan), out)
    return s.select(s.isnan(x), x, out)


def log(s: Seq, x: ir.Value) -> ir.Value:
    k, f = _log_reduce(s, x)
    hfsq, term = _log1p_terms(s, f)
    inner = s.fma(k, s.c(LN2_LO), term)
    out = s.fma(k, s.c(LN2_HI), s.sub(f, s.sub(hfsq, inner)))
    return _log_specials(s, x, out, 0.0)


def log1p(s: Seq, x: ir.Value) -> ir.Value:
    """log(1 + x): x itself is the kernel's f where 1 + x is in [sqrt(1/2), sqrt(2)); elsewhere
    u = 1 + x is reduced and c = (x - (u - 1)) / u corrects for the rounding of u."""
    near = s.b.and_(s.cmp(">", x, s.c(math.sqrt(0.5) - 1.0)), s.cmp("<", x, s.c(math.sqrt(2.0) - 1.0)))
    u = s.add(s.c(1.0), x)
    c = s.div(s.sub(x, s.sub(u, s.c(1.0))), u)
    k, f = _log_reduce(s, u)
    k, f, c = (s.select(near, a, b) for a, b in ((s.c(0.0), k), (x, f), (s.c(0.0), c)))
    hfsq, term = _log1p_terms(s, f)
    inner = s.fma(k, s.c(LN2_LO), s.add(term, c))
    out = s.fma(k, s.c(LN2_HI), s.sub(f, s.sub(hfsq, inner)))
    out = s.select(s.cmp("==", x, s.c(0.0)), x, out)          # log1p(-0) = -0: the sums give +0
    return _log_specials(s, x, out, -1.0)


# ---------------------------------------------------------------- pow

def _log2_extended(s: Seq, a: ir.Value) -> tuple[ir.Value, ir.Value]:
    """log2(a) as hi + lo for a positive finite a, to about 2^-30 absolute: k + log2(1 + f) with the
    kernel's f²/2 split exactly by an FMA, so that only its small correction term is rounded, and
    each product and sum carried in two f32."""
    k, f = _log_reduce(s, a)
    q = s.div(f, s.add(s.c(2.0), f))
    z = s.mul(q, q)
    sq = s.mul(f, f)
    hh, hl = s.mul(sq, s.c(0.5)), s.mul(s.fma(f, f, s.neg(sq)), s.c(0.5))    # f²/2 = hh + hl exactly
    term = s.mul(q, s.add(hh, s.mul(z, s.horner(z, LOG_G))))
    head = s.sub(f, hh)                                  # |f| > f²/2: Fast2Sum
    tail = s.add(s.sub(s.sub(f, head), hh), s.sub(term, hl))     # log(1 + f) = head + tail
    head, tail = s.add(head, tail), s.add(s.sub(head, s.add(head, tail)), tail)     # tail now < 1 ulp
    p = s.mul(head, s.c(LOG2E_HI))
    p_lo = s.add(s.fma(head, s.c(LOG2E_HI), s.neg(p)), s.fma(head, s.c(LOG2E_LO), s.mul(tail, s.c(LOG2E_HI))))
    hi = s.add(k, p)                                     # |k| >= |p| or k = 0: Fast2Sum again
    lo = s.add(s.add(s.sub(k, hi), p), p_lo)
    return hi, lo


def _exp2_extended(s: Seq, t: ir.Value, t_lo: ir.Value) -> ir.Value:
    """2^(t + t_lo) as 2^f · 2^n1 · 2^n2 with n = rint(t) = n1 + n2 and f = (t - n) + t_lo in
    [-0.5, 0.5]: the primitive only sees a small argument, the scaling by powers of two is exact
    (and underflows gradually), and t_lo survives where t alone would round to an overflow."""
    b = s.b
    clamped = s.select(s.cmp(">", t, s.c(130.0)), s.c(130.0), s.select(s.cmp("<", t, s.c(-160.0)), s.c(-160.0), t))
    t_lo = s.select(s.cmp("==", clamped, t), t_lo, s.c(0.0))         # beyond: 0 or inf whatever t_lo is
    n = s.unary("roundeven", clamped)
    f = s.add(s.sub(clamped, n), t_lo)
    k = call_intrinsic(b, "llvm.fptosi.sat.i32.f32", I32, [n])
    k1 = b.ashr(k, s.i(1))

    def scale(e: ir.Value) -> ir.Value:                               # 2^e for e in [-80, 65]
        return s.from_bits(b.shl(b.add(e, s.i(127)), s.i(23)))
    return s.mul(s.mul(s.exp2(f), scale(k1)), scale(b.sub(k, k1)))


def pow(s: Seq, x: ir.Value, y: ir.Value) -> ir.Value:
    """C99 ``pow``: 2^(y·log2|x|) with log2|x| and the product carried in two f32 (``hi + lo``),
    then the sign for an odd integer y and the special cases."""
    b = s.b
    a = s.abs(x)
    hi, lo = _log2_extended(s, a)
    zero_or_inf = b.or_(s.cmp("==", a, s.c(0.0)), s.cmp("==", a, s.c(math.inf)))
    hi = s.select(s.cmp("==", a, s.c(0.0)), s.c(-math.inf), s.select(s.cmp("==", a, s.c(math.inf)), a, hi))
    lo = s.select(zero_or_inf, s.c(0.0), lo)
    t = s.mul(y, hi)
    t_lo = s.add(s.fma(y, hi, s.neg(t)), s.mul(y, lo))
    out = _exp2_extended(s, t, t_lo)
    half = s.mul(y, s.c(0.5))
    y_int = s.cmp("==", s.unary("floor", y), y)
    y_odd = b.and_(y_int, s.cmp("!=", s.unary("floor", half), half))    # |y| >= 2^24: even
    negative = b.icmp_signed("<", s.bits(x), s.i(0))                      # -0 too
    out = s.select(b.and_(negative, y_odd), s.neg(out), out)
    finite_negative = b.and_(s.cmp("<", x, s.c(0.0)), s.cmp(">", x, s.c(-math.inf)))
    out = s.select(b.and_(finite_negative, b.not_(y_int)), s.c(math.nan), out)
    out = s.select(b.or_(s.isnan(x), s.isnan(y)), s.c(math.nan), out)
    one = b.or_(b.or_(s.cmp("==", y, s.c(0.0)), s.cmp("==", x, s.c(1.0))),
                b.and_(s.cmp("==", x, s.c(-1.0)), s.cmp("==", s.abs(y), s.c(math.inf))))
    return s.select(one, s.c(1.0), out)


# ---------------------------------------------------------------- sin and cos

def _machin_pi(bits: int) -> int:
    """π·2^bits (rounded down), by Machin's formula π = 16 atan(1/5) - 4 atan(1/239) in integers."""
    def atan_inv(n: int) -> int:          # atan(1/n) * 2^bits
        total, term, k = 0, (1 << bits) // n, 0
        while term:
            total += term // (2 * k + 1) if k % 2 == 0 else -(term // (2 * k + 1))
            term //= n * n
            k += 1
        return total
    return 16 * atan_inv(5) - 4 * atan_inv(239)


def _two_over_pi_words(words: int) -> tuple[int, ...]:
    """The bits of 2/π after the binary point, 32 to a word (``words`` words)."""
    guard = 64
    bits = 32 * words + guard
    frac = (2 << (2 * bits)) // _machin_pi(bits) >> guard       # 2/π * 2^(32 words); 2/π < 1
    return tuple((frac >> (32 * (words - 1 - i))) & 0xFFFFFFFF for i in range(words))


def _half_pi_parts(n: int) -> tuple[float, ...]:
    """π/2 as ``n`` f32 whose sum is π/2 to about 24n bits (each the f32 nearest to what the earlier
    ones leave), from π in integers: float64's π would limit the sum to 53 bits."""
    rest = Fraction(_machin_pi(200), 1 << 201)
    parts = []
    for _ in range(n):
        parts.append(_f32(float(rest)))
        rest -= Fraction(parts[-1])
    return tuple(parts)


# A zero word first: the window of 96 bits that a reduction needs starts at bit e - 1 of 2/π for x
# = m 2^e, and e is -10 or more where it is used.
TWO_OVER_PI_WORDS = (0, *_two_over_pi_words(7))
LARGE_ARGUMENT = 2.0 ** 12      # from here on sin/cos reduce by Payne–Hanek
PIO2_1, PIO2_2, PIO2_3 = _half_pi_parts(3)     # Cody–Waite: π/2 to about 72 bits
PIO2_HI, PIO2_LO = PIO2_1, PIO2_2


def _cody_waite(s: Seq, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, quadrant) with x = quadrant·π/2 + r, |r| <= π/4 (a little more where x·2/π rounds): π/2
    in three f32 parts, each step one FMA; accurate to a few ulp for |x| < LARGE_ARGUMENT."""
    j = s.unary("roundeven", s.mul(x, s.c(TWO_OVER_PI)))
    r = s.fma(s.neg(j), s.c(PIO2_1), x)
    r = s.fma(s.neg(j), s.c(PIO2_2), r)
    r = s.fma(s.neg(j), s.c(PIO2_3), r)
    return r, call_intrinsic(s.b, "llvm.fptosi.sat.i32.f32", I32, [j])


def _payne_hanek(s: Seq, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, quadrant) for any finite x, |x| >= 2^-6: |x| = m 2^e (m the 24-bit significand) times
    the 96 bits of 2/π that can change x·2/π mod 4 (from bit e - 1 on), in 32-bit limbs: the product's
    bits 94-95 are the quadrant, the next 64 its fraction, rounded to the nearer quadrant and turned
    into r = fraction·π/2 with two f32 (hi + lo). The sign of x is applied last (-x: -r, -quadrant)."""
    b = s.b
    i64 = ir.IntType(64)
    xb = s.bits(x)
    e = b.sub(b.and_(b.lshr(xb, s.i(23)), s.i(0xFF)), s.i(150))               # |x| = m 2^e
    m = b.or_(b.and_(xb, s.i(0x7FFFFF)), s.i(0x800000))
    start = b.add(e, s.i(30))                                                   # bit e - 1 after the zero word
    word, shift = b.lshr(start, s.i(5)), b.and_(start, s.i(31))
    table = [ir.Constant(I32, w) for w in TWO_OVER_PI_WORDS]

    def word_at(k: int) -> ir.Value:                                           # table[word + k]
        out = table[k]
        for i in range(1, len(table) - 3):
            out = b.select(b.icmp_unsigned("==", word, s.i(i)), table[i + k], out)
        return out

    t = [word_at(k) for k in range(4)]
    limbs = [call_intrinsic(b, "llvm.fshl.i32", I32, [t[k], t[k + 1], shift]) for k in range(3)]   # high first
    m64 = b.zext(m, i64)
    p2, p1, p0 = (b.mul(m64, b.zext(w, i64)) for w in limbs)
    c32 = ir.Constant(i64, 32)
    lo = b.add(p0, b.shl(p1, c32))
    hi = b.add(b.add(p2, b.lshr(p1, c32)), b.zext(b.icmp_unsigned("<", lo, p0), i64))
    frac = b.or_(b.lshr(lo, ir.Constant(i64, 30)), b.shl(hi, ir.Constant(i64, 34)))       # bits 30..93
    up = b.lshr(frac, ir.Constant(i64, 63))                                      # fraction >= 1/2
    quadrant = b.trunc(b.add(b.lshr(hi, ir.Constant(i64, 30)), up), I32)
    # |fraction| in [0, 1/2] as hi + lo f32, built from its leading 48 bits.
    negative = b.icmp_signed("<", frac, ir.Constant(i64, 0))
    mag = b.select(negative, b.sub(ir.Constant(i64, 0), frac), frac)
    lz = b.trunc(call_intrinsic(b, "llvm.ctlz.i64", i64, [mag, ir.Constant(ir.IntType(1), 0)]), I32)
    norm = b.shl(mag, b.zext(lz, i64))

    def scaled(bits: ir.Value, exponent: int) -> ir.Value:                      # bits * 2^(exponent - lz)
        scale = s.from_bits(b.shl(b.sub(s.i(127 + exponent), lz), s.i(23)))
        return s.mul(b.uitofp(b.trunc(bits, I32), F32), scale)

    f_hi = scaled(b.lshr(norm, ir.Constant(i64, 40)), -24)
    f_lo = scaled(b.and_(b.lshr(norm, ir.Constant(i64, 16)), ir.Constant(i64, 0xFFFFFF)), -48)
    r_hi = s.mul(f_hi, s.c(PIO2_HI))
    r_lo = s.add(s.fma(f_hi, s.c(PIO2_HI), s.neg(r_hi)), s.fma(f_hi, s.c(PIO2_LO), s.mul(f_lo, s.c(PIO2_HI))))
    r = s.add(r_hi, r_lo)
    r = s.select(negative, s.neg(r), r)
    sign = b.icmp_signed("<", xb, s.i(0))
    return s.select(sign, s.neg(r), r), b.select(sign, b.sub(s.i(0), quadrant), quadrant)


def _sin_cos_reduced(s: Seq, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(sin r, cos r, quadrant) with x = quadrant·π/2 + r: Cody–Waite, or Payne–Hanek (a branch)
    where some |x| is LARGE_ARGUMENT or more (±inf and NaN stay on the fast path and give NaN)."""
    large = s.b.and_(s.cmp(">=", s.abs(x), s.c(LARGE_ARGUMENT)), s.cmp("<", s.abs(x), s.c(math.inf)))
    r, quadrant = s.branch(large, lambda: _payne_hanek(s, x), lambda: _cody_waite(s, x))
    t = s.mul(r, r)
    sin_r = s.fma(s.mul(r, t), s.horner(t, SIN_S), r)
    h = s.mul(s.c(0.5), t)
    w = s.sub(s.c(1.0), h)
    cos_r = s.add(w, s.fma(s.mul(t, t), s.horner(t, COS_C), s.sub(s.sub(s.c(1.0), w), h)))
    return sin_r, cos_r, quadrant


def _by_quadrant(s: Seq, q: ir.Value, sin_r: ir.Value, cos_r: ir.Value) -> ir.Value:
    """sin(qπ/2 + r): sin r, cos r, -sin r, -cos r for q = 0..3."""
    b = s.b
    odd = b.icmp_unsigned("!=", b.and_(q, s.i(1)), s.i(0))
    upper = b.icmp_unsigned("!=", b.and_(q, s.i(2)), s.i(0))
    v = s.select(odd, cos_r, sin_r)
    return s.select(upper, s.neg(v), v)


def sin(s: Seq, x: ir.Value) -> ir.Value:
    sin_r, cos_r, q = _sin_cos_reduced(s, x)       # x = ±inf: r = inf - inf, NaN
    return s.select(s.cmp("==", x, s.c(0.0)), x, _by_quadrant(s, q, sin_r, cos_r))     # sin(-0) = -0


def cos(s: Seq, x: ir.Value) -> ir.Value:
    sin_r, cos_r, q = _sin_cos_reduced(s, x)
    return _by_quadrant(s, s.b.add(q, s.i(1)), sin_r, cos_r)


SEQUENCES = {"tanh": tanh, "sigmoid": sigmoid, "erf": erf, "log": log, "log1p": log1p, "sin": sin, "cos": cos,
             "pow": pow}

"""Small llvmlite.ir building blocks that every target module uses.

These are the places where llvmlite.ir cannot say something directly (string function
attributes, metadata on a ``fence``), plus intrinsic declaration and the packing of flat
scalar lists into the vector operands of matrix intrinsics.
"""

from __future__ import annotations

from collections.abc import Sequence

from tiledsl.llvm.llvm_init import ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
VOID = ir.VoidType()


def byte_array(nbytes: int) -> ir.ArrayType:
    """``[nbytes x i8]``: the type of an LDS arena addressed by byte offsets."""
    return ir.ArrayType(I8, nbytes)


def intrinsic(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    """Return the declaration of ``name`` in ``module``, declaring it on first use.

    LLVM attaches the intrinsic's own attributes (``convergent``, ``nounwind`` ...) when it parses
    the declaration, so none are added here.
    """
    fnty = ir.FunctionType(ret, list(args))
    existing = module.globals.get(name)
    if existing is not None:
        if not isinstance(existing, ir.Function) or existing.function_type != fnty:
            raise TypeError(f"{name} is already declared as {existing.type}, not {fnty}")
        return existing
    return ir.Function(module, fnty, name)


def call_intrinsic(
    b: ir.IRBuilder, name: str, ret: ir.Type, args: Sequence[ir.Value], name_hint: str = ""
) -> ir.CallInstr:
    """Declare (if needed) and call intrinsic ``name`` with the types of ``args``."""
    fn = intrinsic(b.module, name, ret, [a.type for a in args])
    return b.call(fn, list(args), name=name_hint)


def set_string_attribute(fn: ir.Function, key: str, value: str) -> None:
    """Add the string attribute ``"key"="value"`` to ``fn``.

    ``FunctionAttributes.add`` only accepts LLVM enum attributes, so go around its check; the
    attribute is then printed inline in the ``define`` line, which LLVM accepts
    (docs/targets/llvm-pipeline.md §2.2).
    """
    for old in [a for a in fn.attributes if a.startswith(f'"{key}"=')]:
        set.discard(fn.attributes, old)
    set.add(fn.attributes, f'"{key}"="{value}"')


def add_arg_attribute(arg: ir.Argument, attr: str) -> None:
    """Add a parameter attribute, including ones llvmlite's whitelist lacks (``readonly``)."""
    set.add(arg.attributes, attr)


def add_module_flag(module: ir.Module, behaviour: int, key: str, value: int) -> None:
    """Append ``!{i32 behaviour, !"key", i32 value}`` to ``!llvm.module.flags``."""
    module.add_named_metadata(
        "llvm.module.flags", [ir.Constant(I32, behaviour), ir.MetaDataString(module, key), ir.Constant(I32, value)]
    )


class FenceWithMetadata(ir.Fence):
    """A ``fence`` that prints its metadata attachments.

    llvmlite's ``Fence.descr`` drops ``self.metadata``, so ``!mmra`` set on a plain fence would be
    lost. Printing it here (one overridden method) keeps the module an ``ir.Module`` that the
    lowering can keep building, instead of patching the text after ``str(module)``.
    """

    def descr(self, buf: list[str]) -> None:
        super().descr(buf)
        buf[-1] = buf[-1].rstrip("\n") + self._stringify_metadata(leading_comma=True) + "\n"


def fence(
    b: ir.IRBuilder, ordering: str, scope: str | None, metadata: dict[str, ir.MDValue] | None = None
) -> FenceWithMetadata:
    """Insert ``fence syncscope(scope) ordering`` with optional metadata (e.g. ``mmra``)."""
    instr = FenceWithMetadata(b.block, ordering, scope)
    for kind, node in (metadata or {}).items():
        instr.set_metadata(kind, node)
    b._insert(instr)
    return instr


class BFloatType(ir.Type):
    """LLVM's ``bfloat``, which llvmlite.ir lacks. bf16 values are carried as ``i16`` bits everywhere
    else; atomics bitcast them to this type so that ``atomicrmw fadd`` is a bf16 add (LLVM selects
    the packed bf16 atomic add for ``<2 x bfloat>`` on gfx942, docs/targets/amdgpu.md §14)."""

    def _to_string(self) -> str:
        return "bfloat"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BFloatType)

    def __hash__(self) -> int:
        return hash(BFloatType)


BF16 = BFloatType()


class AtomicRMWInScope(ir.instructions.AtomicRMW):
    """An ``atomicrmw`` that prints a ``syncscope``, its alignment and its metadata attachments,
    which llvmlite's ``AtomicRMW.descr`` leaves out."""

    def __init__(self, parent: ir.Block, op: str, ptr: ir.Value, val: ir.Value, ordering: str,
                 scope: str | None, align: int) -> None:
        super().__init__(parent, op, ptr, val, ordering, "")
        self.scope = scope
        self.align = align

    def descr(self, buf: list[str]) -> None:
        ptr, val = self.operands
        scope = f' syncscope("{self.scope}")' if self.scope else ""
        buf.append(f"atomicrmw {self.operation} {ptr.type} {ptr.get_reference()}, {val.type} "
                   f"{val.get_reference()}{scope} {self.ordering}, align {self.align}"
                   f"{self._stringify_metadata(leading_comma=True)}\n")


def atomic_rmw(b: ir.IRBuilder, op: str, ptr: ir.Value, val: ir.Value, ordering: str, scope: str | None,
               align: int, metadata: dict[str, ir.MDValue] | None = None) -> AtomicRMWInScope:
    """Insert ``atomicrmw op ptr, val syncscope(scope) ordering, align N, !md...``; returns the old
    value."""
    instr = AtomicRMWInScope(b.block, op, ptr, val, ordering, scope, align)
    for kind, node in (metadata or {}).items():
        instr.set_metadata(kind, node)
    b._insert(instr)
    return instr


def inline_asm(b: ir.IRBuilder, text: str, constraints: str, ret: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
    """A call of inline assembly with side effects (never moved across other such calls)."""
    fnty = ir.FunctionType(ret, [a.type for a in args])
    return b.call(ir.InlineAsm(fnty, text, constraints, side_effect=True), list(args))


def pack(b: ir.IRBuilder, elems: Sequence[ir.Value], elem_type: ir.Type) -> ir.Value:
    """Build a ``<len(elems) x elem_type>`` vector from scalars (element i = elems[i])."""
    vec: ir.Value = ir.Constant(ir.VectorType(elem_type, len(elems)), ir.Undefined)
    for i, e in enumerate(elems):
        vec = b.insert_element(vec, e, ir.Constant(I32, i))
    return vec


def unpack(b: ir.IRBuilder, vec: ir.Value) -> list[ir.Value]:
    """The scalars of a vector value, element 0 first."""
    return [b.extract_element(vec, ir.Constant(I32, i)) for i in range(vec.type.count)]


def to_lane_words(b: ir.IRBuilder, v: ir.Value) -> list[ir.Value]:
    """Split a scalar into the i32 words that cross-lane instructions move (low word first).

    Cross-lane hardware moves 32 bits per lane: 8- and 16-bit values are zero-extended, 64-bit ones
    are split in two.
    """
    ty = v.type
    if ty == I32:
        return [v]
    if ty == I8:
        return [b.zext(v, I32)]
    if isinstance(ty, ir.FloatType):
        return [b.bitcast(v, I32)]
    if isinstance(ty, ir.HalfType):
        return [b.zext(b.bitcast(v, I16), I32)]
    if ty == I16:
        return [b.zext(v, I32)]
    if isinstance(ty, ir.DoubleType) or ty == I64:
        wide = v if ty == I64 else b.bitcast(v, I64)
        return [b.trunc(wide, I32), b.trunc(b.lshr(wide, ir.Constant(I64, 32)), I32)]
    raise TypeError(f"cross-lane move of {ty} is not supported (8/16/32/64-bit scalars only)")


def from_lane_words(b: ir.IRBuilder, words: Sequence[ir.Value], ty: ir.Type) -> ir.Value:
    """Inverse of :func:`to_lane_words`."""
    if ty == I32:
        return words[0]
    if isinstance(ty, ir.FloatType):
        return b.bitcast(words[0], ty)
    if isinstance(ty, ir.HalfType):
        return b.bitcast(b.trunc(words[0], I16), ty)
    if ty in (I8, I16):
        return b.trunc(words[0], ty)
    lo, hi = (b.zext(w, I64) for w in words)
    wide = b.or_(lo, b.shl(hi, ir.Constant(I64, 32)))
    return wide if ty == I64 else b.bitcast(wide, ty)


def as_i32(value: ir.Value | int) -> ir.Value:
    """An i32 operand from a Python int or an existing i32 value."""
    if isinstance(value, int):
        return ir.Constant(I32, value)
    if value.type != I32:
        raise TypeError(f"expected an i32 value, got {value.type}")
    return value

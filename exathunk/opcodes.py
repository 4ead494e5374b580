"""The bytecode instruction set: defined here once, mirrored as a ``cdef enum`` in
exathunk/_opcodes.pxi (a test checks that the two agree).

Code is a flat list of int32: an opcode followed by its operands.  ``OPERANDS`` gives
each opcode's operand kinds (what the verifier range-checks and what the disassembler
prints); ``STACK`` gives its effect on the operand stack as (pops, pushes), where the
string "n" stands for the value of the instruction's ``count`` operand.
"""

from __future__ import annotations

from enum import IntEnum


class Op(IntEnum):
    LOCAL = 0        # push local slot (no forcing)
    LOCAL_EVAL = 1   # push local slot forced to WHNF (written back in place)
    STORE = 2        # pop into local slot
    INT = 3          # push ints[k]
    DBL = 4          # push doubles[k]
    STR = 5          # push strings[k]
    BOOL = 6         # push true/false
    NIL = 7          # push the empty list
    FUN = 8          # push supercombinator f (arity >= 1) as a value
    CAF = 9          # push the shared per-run thunk of arity-0 function f
    MKTHUNK = 10     # pop n free variables into a new thunk running f (arity n)
    MKPAP = 11       # pop n arguments into a partial application of f (n < arity)
    ALLOC_THUNK = 12  # push a thunk for f with n unfilled fields (recursive let)
    ALLOC_PAP = 13   # push a partial application of f with n unfilled fields
    SETFIELD = 14    # pop a value into field j of the object held in a local slot
    CALL = 15        # call known supercombinator f with exactly its arity n
    TAILCALL = 16    # the same, replacing the current frame
    APPLY = 17       # apply the function value below n arguments
    TAILAPPLY = 18   # the same, replacing the current frame
    HOST = 19        # call host function h with its n arguments
    EVAL = 20        # force the top of the stack to WHNF
    RET = 21         # return the top of the stack (forced to WHNF) to the caller
    JUMP = 22        # jump forward to target
    JUMPF = 23       # pop a Bool; jump forward to target if false
    POP = 24
    CONS = 25        # pop head (top) then tail; push the cell
    ADD = 26
    SUB = 27
    MUL = 28
    DIV = 29
    MOD = 30
    NEG = 31
    ABS = 32
    EQ = 33
    NEQ = 34
    LT = 35
    LE = 36
    GT = 37
    GE = 38
    NOT = 39
    XOR = 40
    LEN = 41
    CONCAT = 42
    SHOW = 43
    TODOUBLE = 44
    TRUNCATE = 45
    ERROR = 46       # pop a String and fail with it
    BOTTOM = 47      # fail
    HEAD = 48        # the head field (possibly unevaluated)
    TAIL = 49        # the tail field (possibly unevaluated)
    NULLP = 50
    # superinstructions: local (already in WHNF) op constant
    ADD_LI = 51      # push local + ints[k]
    SUB_LI = 52      # push local - ints[k]
    LT_LI = 53       # push local < ints[k]
    LE_LI = 54
    GT_LI = 55
    GE_LI = 56
    EQ_LI = 57
    # compare-and-branch: jump forward to target unless (local op ints[k])
    BR_LT_LI = 58
    BR_LE_LI = 59
    BR_GT_LI = 60
    BR_GE_LI = 61
    BR_EQ_LI = 62
    RET_LOCAL = 63   # return local slot (forced to WHNF)
    # compare two locals (already in WHNF; Int, Double or String) and branch
    BR_LT_LL = 64
    BR_LE_LL = 65
    BR_GT_LL = 66
    BR_GE_LL = 67
    # data types (constructor operands index Program.constructors(), the flattened
    # constructors of Program.datatypes)
    MKCON = 68       # pop n fields (field 0 deepest) into a value of constructor c
    BR_NCON = 69     # jump forward to target unless local slot (in WHNF) is constructor c
    FIELD = 70       # pop a data value (WHNF); push its field k (possibly unevaluated)
    # string built-ins
    SUBSTRING = 71   # pop end, start, string: the code points [start, end), clamped
    SPLIT = 72       # pop string, separator: the list of pieces
    JOIN = 73        # pop list (forced to normal form here), separator: one string
    CHARS = 74       # pop string: the list of its one-code-point strings
    INTP = 75        # pop string: whether it is an Int literal (-?[0-9]+ within 64 bits)
    PARSEINT = 76    # pop string: its Int value (an EvaluationError unless INTP)


# operand kinds: slot (local index), int/dbl/str (constant pool index), imm (0 or 1),
# fn (function index), count, host (host reference index), target (code index),
# field (index into an allocated object), con (constructor index).
OPERANDS: dict[Op, tuple[str, ...]] = {
    Op.LOCAL: ("slot",), Op.LOCAL_EVAL: ("slot",), Op.STORE: ("slot",),
    Op.INT: ("int",), Op.DBL: ("dbl",), Op.STR: ("str",), Op.BOOL: ("imm",),
    Op.FUN: ("fn",), Op.CAF: ("fn",),
    Op.MKTHUNK: ("fn", "count"), Op.MKPAP: ("fn", "count"),
    Op.ALLOC_THUNK: ("fn", "count"), Op.ALLOC_PAP: ("fn", "count"),
    Op.SETFIELD: ("slot", "field"),
    Op.CALL: ("fn", "count"), Op.TAILCALL: ("fn", "count"),
    Op.APPLY: ("count",), Op.TAILAPPLY: ("count",),
    Op.HOST: ("host", "count"),
    Op.JUMP: ("target",), Op.JUMPF: ("target",),
    Op.ADD_LI: ("slot", "int"), Op.SUB_LI: ("slot", "int"), Op.LT_LI: ("slot", "int"),
    Op.LE_LI: ("slot", "int"), Op.GT_LI: ("slot", "int"), Op.GE_LI: ("slot", "int"),
    Op.EQ_LI: ("slot", "int"),
    Op.BR_LT_LI: ("slot", "int", "target"), Op.BR_LE_LI: ("slot", "int", "target"),
    Op.BR_GT_LI: ("slot", "int", "target"), Op.BR_GE_LI: ("slot", "int", "target"),
    Op.BR_EQ_LI: ("slot", "int", "target"),
    Op.RET_LOCAL: ("slot",),
    Op.BR_LT_LL: ("slot", "slot", "target"), Op.BR_LE_LL: ("slot", "slot", "target"),
    Op.BR_GT_LL: ("slot", "slot", "target"), Op.BR_GE_LL: ("slot", "slot", "target"),
    Op.MKCON: ("con", "count"), Op.BR_NCON: ("slot", "con", "target"), Op.FIELD: ("field",),
}
for _op in Op:
    OPERANDS.setdefault(_op, ())

_BINARY = (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MOD, Op.EQ, Op.NEQ, Op.LT, Op.LE, Op.GT,
           Op.GE, Op.XOR, Op.CONCAT, Op.SPLIT, Op.JOIN)
_UNARY = (Op.NEG, Op.ABS, Op.NOT, Op.LEN, Op.SHOW, Op.TODOUBLE, Op.TRUNCATE, Op.HEAD,
          Op.TAIL, Op.NULLP, Op.EVAL, Op.ERROR, Op.FIELD, Op.CHARS, Op.INTP, Op.PARSEINT)

STACK: dict[Op, tuple[object, object]] = {
    Op.LOCAL: (0, 1), Op.LOCAL_EVAL: (0, 1), Op.STORE: (1, 0),
    Op.INT: (0, 1), Op.DBL: (0, 1), Op.STR: (0, 1), Op.BOOL: (0, 1), Op.NIL: (0, 1),
    Op.FUN: (0, 1), Op.CAF: (0, 1),
    Op.MKTHUNK: ("n", 1), Op.MKPAP: ("n", 1), Op.ALLOC_THUNK: (0, 1), Op.ALLOC_PAP: (0, 1),
    Op.SETFIELD: (1, 0),
    Op.CALL: ("n", 1), Op.TAILCALL: ("n", 0), Op.APPLY: ("n+1", 1), Op.TAILAPPLY: ("n+1", 0),
    Op.HOST: ("n", 1), Op.RET: (1, 0), Op.JUMP: (0, 0), Op.JUMPF: (1, 0), Op.POP: (1, 0),
    Op.CONS: (2, 1), Op.BOTTOM: (0, 1),
    Op.MKCON: ("n", 1), Op.BR_NCON: (0, 0), Op.SUBSTRING: (3, 1),
}
for _op in _BINARY:
    STACK[_op] = (2, 1)
for _op in _UNARY:
    STACK[_op] = (1, 1)
for _op in (Op.ADD_LI, Op.SUB_LI, Op.LT_LI, Op.LE_LI, Op.GT_LI, Op.GE_LI, Op.EQ_LI):
    STACK[_op] = (0, 1)
for _op in (Op.BR_LT_LI, Op.BR_LE_LI, Op.BR_GT_LI, Op.BR_GE_LI, Op.BR_EQ_LI,
            Op.BR_LT_LL, Op.BR_LE_LL, Op.BR_GT_LL, Op.BR_GE_LL):
    STACK[_op] = (0, 0)
STACK[Op.RET_LOCAL] = (0, 0)

# Instructions after which control never falls through to the next one.
TERMINATORS = frozenset({Op.RET, Op.TAILCALL, Op.TAILAPPLY, Op.JUMP, Op.RET_LOCAL})

# Conditional jumps: the last operand is the target.
BRANCHES = frozenset({Op.JUMP, Op.JUMPF, Op.BR_LT_LI, Op.BR_LE_LI, Op.BR_GT_LI,
                      Op.BR_GE_LI, Op.BR_EQ_LI, Op.BR_LT_LL, Op.BR_LE_LL, Op.BR_GT_LL,
                      Op.BR_GE_LL, Op.BR_NCON})

# Built-ins compiled to a single instruction when fully applied (strict in every argument).
PRIMITIVES: dict[str, Op] = {
    "+": Op.ADD, "-": Op.SUB, "*": Op.MUL, "/": Op.DIV, "mod": Op.MOD, "%": Op.MOD,
    "negate": Op.NEG, "abs": Op.ABS, "eq": Op.EQ, "=": Op.EQ, "neq": Op.NEQ, "/=": Op.NEQ,
    "<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE, "not": Op.NOT, "xor": Op.XOR,
    "len": Op.LEN, "concat": Op.CONCAT, "++": Op.CONCAT, "show": Op.SHOW,
    "to-double": Op.TODOUBLE, "truncate": Op.TRUNCATE, "error": Op.ERROR,
    "head": Op.HEAD, "tail": Op.TAIL, "null?": Op.NULLP,
    "substring": Op.SUBSTRING, "split": Op.SPLIT, "join": Op.JOIN, "chars": Op.CHARS,
    "%int?": Op.INTP, "%parse-int": Op.PARSEINT,
}

# Compare-and-branch forms of the fused comparisons.
BRANCH_FUSED: dict[Op, Op] = {
    Op.LT: Op.BR_LT_LI, Op.LE: Op.BR_LE_LI, Op.GT: Op.BR_GT_LI, Op.GE: Op.BR_GE_LI,
    Op.EQ: Op.BR_EQ_LI,
}

# Compare-and-branch forms for two locals (ordering only: Eq on lists needs a frame).
# The compiler emits them only where the compared type is Int, Double, String or Bool
# (known from the operator's instantiated type): lists and data compare in a frame.
BRANCH_LOCALS: dict[Op, Op] = {
    Op.LT: Op.BR_LT_LL, Op.LE: Op.BR_LE_LL, Op.GT: Op.BR_GT_LL, Op.GE: Op.BR_GE_LL,
}

# Fused "local op constant" forms of some primitives.
FUSED: dict[Op, Op] = {
    Op.ADD: Op.ADD_LI, Op.SUB: Op.SUB_LI, Op.LT: Op.LT_LI, Op.LE: Op.LE_LI,
    Op.GT: Op.GT_LI, Op.GE: Op.GE_LI, Op.EQ: Op.EQ_LI,
}


def pxi_text() -> str:
    """The text of exathunk/_opcodes.pxi, generated from this module."""
    lines = ["# Generated from exathunk/opcodes.py (tests check that they agree).",
             "cdef enum:"]
    for op in Op:
        lines.append(f"    OP_{op.name} = {int(op)}")
    lines.append("")
    lines.append("# The engine's view of the numbering, for the agreement test.")
    lines.append("OPCODE_VALUES = {")
    for op in Op:
        lines.append(f"    {op.name!r}: OP_{op.name},")
    lines.append("}")
    return "\n".join(lines) + "\n"

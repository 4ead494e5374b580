"""The disassembler: a Program as readable text, one helper per operand shape (clox style).

Each function prints as a header (name, arity, frame size) and one line per
instruction: code offset, source line ("|" when unchanged), opcode and operands, with
constants, function names, constructor names (``MKCON Yes/1``: constructor/fields) and
jump targets spelled out.  The header lists the program's data types, each constructor
with its index.
"""

from __future__ import annotations

from .program import PRELUDE_LINE
from .opcodes import OPERANDS, Op
from .values import show_double, show_string


def _simple(prog, op, ops):
    return op.name


def _slot(prog, op, ops):
    return f"{op.name:<12} {ops[0]}"


def _constant(prog, op, ops):
    k = ops[0]
    if op == Op.INT:
        text = str(prog.ints[k])
    elif op == Op.DBL:
        text = show_double(prog.doubles[k])
    else:
        text = show_string(prog.strings[k])
        if len(text) > 40:
            text = text[:37] + '..."'
    return f"{op.name:<12} {k:<4} {text}"


def _imm(prog, op, ops):
    return f"{op.name:<12} {'true' if ops[0] else 'false'}"


def _function(prog, op, ops):
    return f"{op.name:<12} {ops[0]:<4} {prog.functions[ops[0]].name}"


def _function_count(prog, op, ops):
    return f"{op.name:<12} {ops[0]:<4} {prog.functions[ops[0]].name} ({ops[1]})"


def _count(prog, op, ops):
    return f"{op.name:<12} {ops[0]}"


def _host(prog, op, ops):
    return f"{op.name:<12} {ops[0]:<4} {prog.hosts[ops[0]].name} ({ops[1]})"


def _jump(prog, op, ops):
    return f"{op.name:<12} -> {ops[0]:04d}"


def _setfield(prog, op, ops):
    return f"{op.name:<12} slot {ops[0]} field {ops[1]}"


def _slot_int(prog, op, ops):
    return f"{op.name:<12} {ops[0]} {prog.ints[ops[1]]}"


def _slot_int_jump(prog, op, ops):
    return f"{op.name:<12} {ops[0]} {prog.ints[ops[1]]} -> {ops[2]:04d}"


def _slot_slot_jump(prog, op, ops):
    return f"{op.name:<12} {ops[0]} {ops[1]} -> {ops[2]:04d}"


def _con_name(prog, k):
    cons = prog.constructors()
    return cons[k][2].name if 0 <= k < len(cons) else f"?{k}"


def _con_count(prog, op, ops):
    return f"{op.name:<12} {_con_name(prog, ops[0])}/{ops[1]}"


def _slot_con_jump(prog, op, ops):
    return f"{op.name:<12} {ops[0]} {_con_name(prog, ops[1])} -> {ops[2]:04d}"


def _field(prog, op, ops):
    return f"{op.name:<12} {ops[0]}"


_SHAPES = {
    ("con", "count"): _con_count,
    ("slot", "con", "target"): _slot_con_jump,
    ("field",): _field,
    ("slot", "slot", "target"): _slot_slot_jump,
    ("slot", "int", "target"): _slot_int_jump,
    (): _simple,
    ("slot",): _slot,
    ("int",): _constant, ("dbl",): _constant, ("str",): _constant,
    ("imm",): _imm,
    ("fn",): _function,
    ("fn", "count"): _function_count,
    ("count",): _count,
    ("host", "count"): _host,
    ("target",): _jump,
    ("slot", "field"): _setfield,
    ("slot", "int"): _slot_int,
}


def disassemble_function(prog, index: int) -> str:
    f = prog.functions[index]
    mark = "  (entry)" if index == prog.entry else ""
    out = [f"== {index}: {f.name}  arity {f.arity}  frame {f.frame_size}{mark} =="]
    pc, last_line = 0, None
    while pc < len(f.code):
        op = Op(f.code[pc])
        n = len(OPERANDS[op])
        ops = f.code[pc + 1:pc + 1 + n]
        line = f.lines[pc]
        if line == last_line:
            where = "   |"
        elif line & PRELUDE_LINE:             # a line of prelude.xt
            where = ("p" + str(line & ~PRELUDE_LINE)).rjust(4)
        else:
            where = f"{line:4d}"
        last_line = line
        out.append(f"{pc:04d} {where} {_SHAPES[OPERANDS[op]](prog, op, ops)}")
        pc += 1 + n
    return "\n".join(out)


def disassemble(prog) -> str:
    """The whole program: result type, host references, then every function."""
    head = [f"; result type {prog.type}", f"; digest {prog.digest}"]
    for i, h in enumerate(prog.hosts):
        flags = "".join("S" if s else "L" for s in h.strictness)
        head.append(f"; host {i}: {h.name} {h.signature} [{flags}]")
    index = 0
    for d in prog.datatypes:
        name = f"({d.name} {' '.join(d.params)})" if d.params else d.name
        alts = []
        for c in d.constructors:
            fields = [f"({n} {t})" if n else t for t, n in zip(c.field_types, c.field_names)]
            alts.append(f"{index}:" + (f"({c.name} {' '.join(fields)})" if fields else c.name))
            index += 1
        head.append(f"; data {name} = {' | '.join(alts)}")
    body = [disassemble_function(prog, i) for i in range(len(prog.functions))]
    return "\n".join(head) + "\n\n" + "\n\n".join(body) + "\n"

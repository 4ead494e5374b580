"""Hypothesis strategies that generate well-typed exathunk programs (as source text).

``programs()`` draws ``(source, result_type)``: optional non-recursive top-level
defines, then an expression of type Int, Bool, String or (List Int) built from
literals, arithmetic (overflow and division by zero included), comparisons, strings,
lets (some binding ``error`` or ``bottom`` and never using it), lambdas applied at once,
``if``, lists with map/filter/take/drop/foldr/foldl/zip-with/append/reverse, and
``error``/``bottom`` placed both where laziness never forces them and where they are
forced.  Every generated program terminates quickly (ranges and ``iterate`` prefixes
are bounded by small literals), so two correct evaluators must agree on its value or
on its error class.
"""

from __future__ import annotations

from hypothesis import strategies as st

INT, BOOL, STRING, LIST = "Int", "Bool", "String", "(List Int)"
TYPES = (INT, BOOL, STRING, LIST)
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1

EDGE_INTS = (0, 1, -1, 2, -2, 3, 7, -7, 3037000499, -3037000499, 4611686018427387904,
             INT_MAX, INT_MIN, INT_MAX - 1, INT_MIN + 1)

small_ints = st.integers(-20, 20)
edge_ints = st.sampled_from(EDGE_INTS)
any_ints = st.one_of(small_ints, small_ints, edge_ints, st.integers(INT_MIN, INT_MAX))

_STRING_CHARS = st.sampled_from(list("abcXYZ 09") + ['\\"', "\\\\", "\\n", "\\t", "\\u{e9}",
                                                    "\\u{1F600}", "\\u{1}"])
string_literals = st.lists(_STRING_CHARS, max_size=5).map(lambda cs: '"' + "".join(cs) + '"')


class _Names:
    """Fresh variable names for one program."""

    def __init__(self):
        self.count = 0

    def fresh(self, prefix="v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"


def _vars_of(env, ty):
    return [name for name, t in env if t == ty]


def _leaf(draw, ty, env):
    names = _vars_of(env, ty)
    if names and draw(st.booleans()):
        return draw(st.sampled_from(names))
    if ty == INT:
        return str(draw(any_ints))
    if ty == BOOL:
        return draw(st.sampled_from(["true", "false"]))
    if ty == STRING:
        return draw(string_literals)
    items = draw(st.lists(small_ints, max_size=4))
    return "(list " + " ".join(map(str, items)) + ")" if items else "(the (List Int) nil)"


BOTTOMS = ['(error "boom")', "bottom"]


def gen(draw, ty, env, depth, names, defines):
    """An expression of type ``ty`` whose free variables are typed in ``env``."""
    if depth <= 0 or draw(st.integers(0, 9)) == 0:
        return _leaf(draw, ty, env)
    sub = depth - 1

    def g(t, extra=()):
        return gen(draw, t, list(env) + list(extra), sub, names, defines)

    kind = draw(st.sampled_from(_KINDS[ty] + _COMMON))
    if kind == "let":
        name = names.fresh()
        t = draw(st.sampled_from(TYPES))
        return f"(let (({name} {g(t)})) {g(ty, [(name, t)])})"
    if kind == "let-unused-bottom":
        name = names.fresh("u")
        return f"(let (({name} {draw(st.sampled_from(BOTTOMS))})) {g(ty)})"
    if kind == "lambda":
        name = names.fresh()
        t = draw(st.sampled_from(TYPES))
        return f"((lambda ({name}) {g(ty, [(name, t)])}) {g(t)})"
    if kind == "if":
        return f"(if {g(BOOL)} {g(ty)} {g(ty)})"
    if kind == "if-lazy":
        return f"(if true {g(ty)} {draw(st.sampled_from(BOTTOMS))})"
    if kind == "forced-bottom":
        return f"(the {ty} {draw(st.sampled_from(BOTTOMS))})"
    if kind == "poly-id":
        name = names.fresh("id")
        return f"(let (({name} (lambda (z) z))) ({name} {g(ty)}))"
    if kind == "call-define":
        usable = [d for d in defines if d[1] == ty]
        if not usable:
            return _leaf(draw, ty, env)
        fname, _, arg_t = draw(st.sampled_from(usable))
        return f"({fname} {g(arg_t)})"
    # ---- Int
    if kind == "arith":
        op = draw(st.sampled_from(["+", "-", "*", "/", "mod", "%"]))
        return f"({op} {g(INT)} {g(INT)})"
    if kind == "unary":
        return f"({draw(st.sampled_from(['negate', 'abs']))} {g(INT)})"
    if kind == "length":
        return f"(length {g(LIST)})"
    if kind == "head":
        return f"(head {g(LIST)})"
    if kind == "head-lazy":
        return f"(head (cons {g(INT)} {draw(st.sampled_from(BOTTOMS))}))"
    if kind == "sum":
        return f"({draw(st.sampled_from(['sum', 'product']))} {g(LIST)})"
    if kind == "nth":
        return f"(nth {g(LIST)} {draw(st.integers(-1, 5))})"
    if kind == "len":
        return f"(len {g(STRING)})"
    if kind == "fold":
        op = draw(st.sampled_from(["+", "-", "*"]))
        fold = draw(st.sampled_from(["foldr", "foldl"]))
        return f"({fold} {op} {g(INT)} {g(LIST)})"
    if kind == "truncate":
        return f"(truncate (/ (to-double {g(INT)}) {draw(st.sampled_from(['2.0', '0.5', '0.0', '-3.0']))}))"
    # ---- Bool
    if kind == "compare":
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "=", "/=", "eq", "neq"]))
        t = draw(st.sampled_from([INT, STRING]))
        return f"({op} {g(t)} {g(t)})"
    if kind == "list-eq":
        return f"({draw(st.sampled_from(['=', 'neq']))} {g(LIST)} {g(LIST)})"
    if kind == "logic":
        return f"({draw(st.sampled_from(['and', 'or', 'xor']))} {g(BOOL)} {g(BOOL)})"
    if kind == "logic-lazy":
        return draw(st.sampled_from(["(or true {b})", "(and false {b})"])).format(
            b=draw(st.sampled_from(BOTTOMS)))
    if kind == "not":
        return f"(not {g(BOOL)})"
    if kind == "null":
        return f"(null? {g(LIST)})"
    # ---- String
    if kind == "show":
        return f"(show {g(draw(st.sampled_from(TYPES)))})"
    if kind == "concat":
        return f"({draw(st.sampled_from(['++', 'concat']))} {g(STRING)} {g(STRING)})"
    if kind == "show-double":
        return f"(show (/ (to-double {g(INT)}) {draw(st.sampled_from(['3.0', '0.0', '-0.0', '1e300']))}))"
    # ---- (List Int)
    if kind == "list":
        n = draw(st.integers(0, 4))
        return "(list " + " ".join(g(INT) for _ in range(n)) + ")" if n else "(the (List Int) (list))"
    if kind == "list-with-bottom":
        return f"(list {g(INT)} {draw(st.sampled_from(BOTTOMS))})"
    if kind == "cons":
        return f"(cons {g(INT)} {g(LIST)})"
    if kind == "map":
        x = names.fresh("x")
        return f"(map (lambda ({x}) {g(INT, [(x, INT)])}) {g(LIST)})"
    if kind == "filter":
        x = names.fresh("x")
        return f"(filter (lambda ({x}) {g(BOOL, [(x, INT)])}) {g(LIST)})"
    if kind == "take-drop":
        return f"({draw(st.sampled_from(['take', 'drop']))} {g(INT)} {g(LIST)})"
    if kind == "take-iterate":
        x = names.fresh("x")
        return (f"(take {draw(st.integers(0, 6))} "
                f"(iterate (lambda ({x}) {g(INT, [(x, INT)])}) {g(INT)}))")
    if kind == "range":
        return f"(range {draw(small_ints)} {draw(small_ints)})"
    if kind == "list-ops":
        op = draw(st.sampled_from(["reverse", "tail"]))
        return f"({op} {g(LIST)})"
    if kind == "append":
        return f"(append {g(LIST)} {g(LIST)})"
    if kind == "zip-with":
        return f"(zip-with {draw(st.sampled_from(['+', '-', '*']))} {g(LIST)} {g(LIST)})"
    raise AssertionError(kind)


_COMMON = ["let", "let-unused-bottom", "lambda", "if", "if-lazy", "poly-id", "call-define",
           "forced-bottom"]
_KINDS = {
    INT: ["arith", "arith", "arith", "unary", "length", "head", "head-lazy", "sum", "nth",
          "len", "fold", "truncate"],
    BOOL: ["compare", "compare", "list-eq", "logic", "logic-lazy", "not", "null"],
    STRING: ["show", "show", "concat", "show-double"],
    LIST: ["list", "list", "list-with-bottom", "cons", "map", "filter", "take-drop",
           "take-iterate", "range", "list-ops", "append", "zip-with"],
}


@st.composite
def programs(draw, max_depth: int = 4):
    """A well-typed program: ``(source, result type text)``."""
    names = _Names()
    defines: list[tuple[str, str, str]] = []     # (name, result type, parameter type)
    lines = []
    for _ in range(draw(st.integers(0, 2))):
        fname = names.fresh("f")
        param = names.fresh("p")
        arg_t, res_t = draw(st.sampled_from(TYPES)), draw(st.sampled_from(TYPES))
        body = gen(draw, res_t, [(param, arg_t)], max_depth - 1, names, list(defines))
        lines.append(f"(define ({fname} {param}) {body})")
        defines.append((fname, res_t, arg_t))
    ty = draw(st.sampled_from(TYPES))
    lines.append(gen(draw, ty, [], max_depth, names, defines))
    return "\n".join(lines), ty


ARITH_OPS = ("+", "-", "*", "/", "mod", "%")


def int_model(op: str, a: int, b: int):
    """The language's Int semantics: the result, or None for an EvaluationError."""
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op == "/":
        if b == 0:
            return None
        q = abs(a) // abs(b)
        r = -q if (a < 0) != (b < 0) else q
    else:   # mod and %: the sign of the dividend
        if b == 0:
            return None
        r = abs(a) % abs(b)
        r = -r if a < 0 else r
    return r if INT_MIN <= r <= INT_MAX else None


def near_edges():
    """Ints at and around the 64-bit boundaries and the square root of INT_MAX."""
    base = st.sampled_from(EDGE_INTS)
    return st.one_of(base, st.tuples(base, st.integers(-3, 3)).map(
        lambda p: min(INT_MAX, max(INT_MIN, p[0] + p[1]))), st.integers(INT_MIN, INT_MAX))

"""Hypothesis strategies that generate well-typed exathunk programs (as source text).

``programs()`` draws ``(source, result_type)``: a program that may start with data
declarations, class and instance declarations (unless ``classes=False``) and helper
defines drawn from a fixed menu (below), then optional non-recursive generated defines,
then an expression of one of the types in play.

The menu of declarations:

* data types: an option type ``(Opt a)``, a binary tree of Int, a record type with two
  constructors (so an accessor can fail at run time), a record of two Doubles (NaN and
  -0.0 in derived Eq/Ord, Double literal patterns), a parameterised pair-like type
  ``(Two a b)``, an enumeration, and the mutually recursive ``Rose``/``Forest``; each
  with a few structurally recursive helper defines (tree insertion, sums, ...);
* classes: ``Size`` (a method and a defaulted method, instances for Int, String, Bool,
  the tree, ``(Opt a)`` and ``(Two a b)`` with contexts, ``(List a)`` with a context),
  ``Default`` (a method polymorphic in its result only) and ``Pretty`` (a Show
  superclass, a default method that uses ``show``, an instance for the prelude's
  ``Maybe``);
* polymorphic helpers ``cmp3``/``pmax`` (Ord a) and ``psum`` (Num a), called at several
  types (Double with NaN among them).

Result and intermediate types: Int, Bool, String, (List Int), (List String), the
prelude's (Maybe Int), (Pair Int String), (Either String Int), (List (Pair Int String)),
Double, and, when declared, (Opt Int), (List (Opt Int)), Tree, Shape, Point,
(Two Int Bool), Color, Rose and Forest.

Expressions: literals, arithmetic (overflow and division by zero included),
comparisons (``=``/``<``/... on every type: data values, lists, Bools), strings and the
string operations (substring with indices in and out of range, split with an empty
separator now and then, join, chars, string-of, string->int on good and bad text,
int->string), lets (some binding a failing value and never using it), lambdas applied
at once, ``if``, ``cond`` (with and without ``else``, with conditions that are never
reached), lists with map/filter/take/drop/foldr/foldl/zip-with/append/reverse/zip/
lookup, constructor applications (also partially applied and passed to map and
zip-with), record accessors, ``case`` with nested constructor patterns, literal
patterns, ``_``, variables and list patterns (``nil``, ``(cons p q)``, ``(list p ...)``),
``show`` of data values, min/max, the Pair/Maybe/Either functions, ``seq`` (WHNF only),
folds with an accumulator of any type and local recursive functions (a let-bound lambda
recursing by case over a list; neither is nested in another, to bound the run time),
class methods at several instance types (and a let-bound overloaded lambda used at two
of them), and
``error``/``bottom`` placed both where laziness never forces them (unused lets, untaken
branches, constructor fields a case never looks into, never-reached cond conditions,
a non-exhaustive case whose value is unused) and where they are forced (including
cases that match no alternative).  Every generated program terminates quickly (ranges
and ``iterate`` prefixes are bounded by small literals, helper recursion is structural
over finite values), so two correct evaluators must agree on its value or on its
error class.
"""

from __future__ import annotations

from hypothesis import strategies as st

INT, BOOL, STRING, LIST = "Int", "Bool", "String", "(List Int)"
LSTR = "(List String)"
MAYBE, PAIR, EITHER = "(Maybe Int)", "(Pair Int String)", "(Either String Int)"
LPAIR = "(List (Pair Int String))"
OPT, LOPT = "(Opt Int)", "(List (Opt Int))"
TREE, SHAPE, TWO, COLOR, ROSE, FOREST = "Tree", "Shape", "(Two Int Bool)", "Color", "Rose", "Forest"
DOUBLE, POINT = "Double", "Point"

TYPES = (INT, BOOL, STRING, LIST)      # the original four (always available)
BASE_TYPES = TYPES + (LSTR, MAYBE, PAIR, EITHER, LPAIR, DOUBLE)
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1

EDGE_INTS = (0, 1, -1, 2, -2, 3, 7, -7, 3037000499, -3037000499, 4611686018427387904,
             INT_MAX, INT_MIN, INT_MAX - 1, INT_MIN + 1)

small_ints = st.integers(-20, 20)
edge_ints = st.sampled_from(EDGE_INTS)
any_ints = st.one_of(small_ints, small_ints, edge_ints, st.integers(INT_MIN, INT_MAX))

_STRING_CHARS = st.sampled_from(list("abcXYZ 09,") + ['\\"', "\\\\", "\\n", "\\t", "\\u{e9}",
                                                     "\\u{1F600}", "\\u{1}"])
string_literals = st.lists(_STRING_CHARS, max_size=5).map(lambda cs: '"' + "".join(cs) + '"')
DOUBLE_LITERALS = ("0.0", "-0.0", "1.5", "-2.5", "3.0", "0.1", "1e300", "-1e-300", "nan", "inf",
                   "-inf")

# ---- the menu of declarations --------------------------------------------------------

# key -> (declaration text, helper defines)
DATA_DECLS = {
    "opt": ("(data (Opt a) (No) (Yes a))",
            ["(define (opt-map f o) (case o (No No) ((Yes x) (Yes (f x)))))",
             "(define (get-or d o) (case o ((Yes x) x) (_ d)))"]),
    "tree": ("(data Tree (Leaf) (Node Tree Int Tree))",
             ["(define (tree-insert x t) (case t ((Leaf) (Node Leaf x Leaf)) ((Node l v r) "
              "(if (< x v) (Node (tree-insert x l) v r) (Node l v (tree-insert x r))))))",
              "(define (tree-list t) (case t (Leaf nil) ((Node l v r) "
              "(append (tree-list l) (cons v (tree-list r))))))",
              "(define (tree-sum t) (case t (Leaf 0) ((Node l v r) "
              "(+ (tree-sum l) (+ v (tree-sum r))))))"]),
    "shape": ("(data Shape (Circle (radius Int)) (Rect (width Int) (height Int)))", []),
    "point": ("(data Point (Pt (px Double) (py Double)))",
              ["(define (norm1 p) (+ (abs (px p)) (abs (py p))))"]),
    "two": ("(data (Two a b) (P a b))", []),
    "color": ("(data Color Red Green Blue)", []),
    "rose": ("(data Rose (Rose Int Forest))\n(data Forest (FNil) (FCons Rose Forest))",
             ["(define (rose-sum r) (case r ((Rose v f) (+ v (forest-sum f)))))",
              "(define (forest-sum f) (case f (FNil 0) ((FCons r rest) "
              "(+ (rose-sum r) (forest-sum rest)))))",
              "(define (forest-of xs) (foldr (lambda (x f) (FCons (Rose x FNil) f)) FNil xs))"]),
}
DATA_ORDER = ("opt", "tree", "shape", "point", "two", "color", "rose")

# polymorphic helpers (Ord a, Num a) used at several types: the engine compiles
# comparisons and sums at a type variable differently from those at a known type
POLY_HELPERS = ["(define (cmp3 x y) (cond ((< x y) -1) ((= x y) 0) ((> x y) 1) (else 2)))",
                "(define (pmax x y) (if (>= x y) x y))",
                "(define (psum xs) (sum xs))"]

SIZE_CLASS = ('(class (Size a) (size (-> a Int)) (label (-> a String))\n'
              '  (define (label x) (++ "#" (show (size x)))))')
# key -> (needed data declaration or None, instance text)
SIZE_INSTANCES = {
    "int": (None, "(instance (Size Int) (define (size n) (abs n)))"),
    "string": (None, '(instance (Size String) (define (size s) (len s)) '
                     '(define (label s) (++ "s:" s)))'),
    "bool": (None, "(instance (Size Bool) (define (size b) (if b 1 0)))"),
    "tree": ("tree", "(instance (Size Tree) (define (size t) (case t (Leaf 0) "
                     "((Node l _ r) (+ 1 (+ (size l) (size r)))))))"),
    "opt": ("opt", "(instance (=> (Size a) (Size (Opt a))) (define (size o) (case o (No 0) "
                   '((Yes x) (+ 1 (size x))))) (define (label o) (case o (No "none") '
                   "((Yes x) (label x)))))"),
    "two": ("two", "(instance (=> (Size a) (Size b) (Size (Two a b))) "
                   "(define (size p) (case p ((P a b) (* (size a) (size b))))))"),
    "list": (None, "(instance (=> (Size a) (Size (List a))) "
                   "(define (size xs) (foldr + 0 (map size xs))))"),
}
SIZE_HELPERS = ["(define (size2 x) (+ (size x) (size x)))"]

DEFAULT_CLASS = "(class (Default a) (def a))"
DEFAULT_INSTANCES = {
    "int": (None, "(instance (Default Int) (define def 7))"),
    "string": (None, '(instance (Default String) (define def "d"))'),
    "list": (None, "(instance (Default (List a)) (define def nil))"),
    "opt": ("opt", "(instance (=> (Default a) (Default (Opt a))) (define def (Yes def)))"),
}

PRETTY_CLASS = ('(class (=> (Show a) (Pretty a)) (pretty (-> a String))\n'
                '  (define (pretty x) (++ "<" (++ (show x) ">"))))')
PRETTY_INSTANCES = {
    "int": (None, "(instance (Pretty Int))"),
    "bool": (None, '(instance (Pretty Bool) (define (pretty b) (if b "yes" "no")))'),
    "color": ("color", "(instance (Pretty Color))"),
    "shape": ("shape", "(instance (Pretty Shape))"),
    "point": ("point", '(instance (Pretty Point) (define (pretty p) (show (norm1 p))))'),
    "list": (None, '(instance (=> (Pretty a) (Pretty (List a))) '
                   '(define (pretty xs) (join "," (map pretty xs))))'),
    "maybe": (None, '(instance (=> (Pretty a) (Pretty (Maybe a))) '
                    '(define (pretty m) (maybe "?" pretty m)))'),
}

# ---- the types in play ---------------------------------------------------------------

# data type -> (declaration key or None for the prelude's, parameterised?, constructors)
DATA = {
    MAYBE: (None, True, (("Nothing", ()), ("Just", (INT,)))),
    PAIR: (None, True, (("Pair", (INT, STRING)),)),
    EITHER: (None, True, (("Left", (STRING,)), ("Right", (INT,)))),
    OPT: ("opt", True, (("No", ()), ("Yes", (INT,)))),
    TREE: ("tree", False, (("Leaf", ()), ("Node", (TREE, INT, TREE)))),
    SHAPE: ("shape", False, (("Circle", (INT,)), ("Rect", (INT, INT)))),
    POINT: ("point", False, (("Pt", (DOUBLE, DOUBLE)),)),
    TWO: ("two", True, (("P", (INT, BOOL)),)),
    COLOR: ("color", False, (("Red", ()), ("Green", ()), ("Blue", ()))),
    ROSE: ("rose", False, (("Rose", (INT, FOREST)),)),
    FOREST: ("rose", False, (("FNil", ()), ("FCons", (ROSE, FOREST)))),
}
# list type -> element type
LISTS = {LIST: INT, LSTR: STRING, LPAIR: PAIR, LOPT: OPT}
LIST_REQUIRES = {LOPT: "opt"}
ACCESSORS = {"radius": "Circle", "width": "Rect", "height": "Rect"}     # Shape -> Int


def list_of(ty):
    return f"(List {ty})"


def _ctors(ty):
    """A type's constructors as (name, field types); lists as nil and cons."""
    if ty in LISTS:
        return (("nil", ()), ("cons", (LISTS[ty], ty)))
    return DATA[ty][2] if ty in DATA else ()


def _poly(ty):
    return ty in LISTS or (ty in DATA and DATA[ty][1])


class _Names:
    """Fresh variable names for one program."""

    def __init__(self):
        self.count = 0

    def fresh(self, prefix="v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"


class _Ctx:
    """What one program has declared: its types, defines, classes and instances."""

    def __init__(self, decls, size_insts, default_insts, pretty_insts):
        self.names = _Names()
        self.decls = set(decls)
        self.defines: list[tuple[str, str, str]] = []   # (name, result type, param type)
        self.types = [t for t in BASE_TYPES]
        for t, (key, _, _) in DATA.items():
            if key is not None and key in self.decls:
                self.types.append(t)
        for t, key in LIST_REQUIRES.items():
            if key in self.decls:
                self.types.append(t)
        self.size_insts = size_insts            # None when the class is not declared
        self.default_insts = default_insts
        self.pretty_insts = pretty_insts
        self.size_types = [t for t in self.types if self._has("size", t)]
        self.default_types = [t for t in self.types if self._has("default", t)]
        self.pretty_types = [t for t in self.types if self._has("pretty", t)]
        self._kinds: dict[str, list[str]] = {}
        self.loop_nesting = 0        # folds inside folds are kept out (run time)

    def _has(self, cls, ty):
        insts = {"size": self.size_insts, "default": self.default_insts,
                 "pretty": self.pretty_insts}[cls]
        if insts is None:
            return False
        if cls == "default":
            if ty in LISTS:
                return "list" in insts
            return {INT: "int", STRING: "string", OPT: "opt"}.get(ty) in insts and (
                ty != OPT or self._has(cls, INT))
        if ty in LISTS:
            return "list" in insts and self._has(cls, LISTS[ty])
        if cls == "size":
            simple = {INT: "int", STRING: "string", BOOL: "bool", TREE: "tree"}
            if ty in simple:
                return simple[ty] in insts
            if ty == OPT:
                return "opt" in insts and self._has(cls, INT)
            if ty == TWO:
                return "two" in insts and self._has(cls, INT) and self._has(cls, BOOL)
            return False
        simple = {INT: "int", BOOL: "bool", COLOR: "color", SHAPE: "shape", POINT: "point"}
        if ty in simple:
            return simple[ty] in insts
        if ty == MAYBE:
            return "maybe" in insts and self._has(cls, INT)
        return False

    def kinds(self, ty):
        if ty not in self._kinds:
            self._kinds[ty] = _kinds_for(self, ty)
        return self._kinds[ty]


# ---- leaves and failing values -------------------------------------------------------

def _vars_of(env, ty):
    return [name for name, t in env if t == ty]


def _annotate(ty, text):
    return f"(the {ty} {text})"


def _value_leaf(draw, ty, fuel=2):
    """A small closed value of type ``ty`` (no variables)."""
    if ty == INT:
        return str(draw(any_ints))
    if ty == BOOL:
        return draw(st.sampled_from(["true", "false"]))
    if ty == STRING:
        return draw(string_literals)
    if ty == DOUBLE:
        return draw(st.sampled_from(DOUBLE_LITERALS))
    if ty == LIST:
        items = draw(st.lists(small_ints, max_size=4))
        return "(list " + " ".join(map(str, items)) + ")" if items else "(the (List Int) nil)"
    if ty in LISTS:
        n = draw(st.integers(0, 2 if fuel > 0 else 0))
        if n == 0:
            return _annotate(ty, draw(st.sampled_from(["nil", "(list)"])))
        return "(list " + " ".join(_value_leaf(draw, LISTS[ty], fuel - 1) for _ in range(n)) + ")"
    ctors = [c for c in _ctors(ty) if ty not in c[1]]       # the non-recursive ones
    name, fields = draw(st.sampled_from(ctors))
    if not fields:
        return _annotate(ty, name) if _poly(ty) else name
    text = f"({name} " + " ".join(_value_leaf(draw, f, fuel - 1) for f in fields) + ")"
    return _annotate(ty, text) if ty == EITHER else text


def _leaf(draw, ty, env):
    names = _vars_of(env, ty)
    if names and draw(st.booleans()):
        return draw(st.sampled_from(names))
    return _value_leaf(draw, ty)


def _bottom(draw, ty, ctx):
    """An expression of type ``ty`` (or of any type) that fails when forced."""
    options = ['(error "boom")', "bottom", "cond-false", "case-miss"]
    if ty == INT and "shape" in ctx.decls:
        options.append("accessor")
    if ty in LISTS:
        options.append("tail-nil")
    kind = draw(st.sampled_from(options))
    if kind == "cond-false":
        return f"(cond ((= 1 2) {_value_leaf(draw, ty, 0)}))"
    if kind == "case-miss":
        n = draw(st.integers(0, 3))
        if "opt" in ctx.decls and draw(st.booleans()):
            return f"(case (the (Opt Int) No) ((Yes x) {_value_leaf(draw, ty, 0)}))"
        return f"(case {n} ({n + 1} {_value_leaf(draw, ty, 0)}))"
    if kind == "accessor":
        return draw(st.sampled_from(["(radius (Rect 1 2))", "(width (Circle 3))"]))
    if kind == "tail-nil":
        return f"(tail (the {ty} nil))"
    return kind


BOTTOMS = ['(error "boom")', "bottom"]

# ---- patterns ------------------------------------------------------------------------

_INT_PATTERNS = st.one_of(st.integers(-3, 3), st.sampled_from(EDGE_INTS)).map(str)
_STRING_PATTERNS = st.sampled_from(['""', '"a"', '"ab"', '"abc"', '" "', '"\\u{e9}"', '","'])
_DOUBLE_PATTERNS = st.sampled_from(["0.0", "-0.0", "1.5", "nan", "inf", "3.0"])


def _pattern(draw, ty, ctx, depth, binds):
    """A pattern for a value of type ``ty``; its variables are appended to ``binds``."""
    choices = ["_", "var"]
    if ty in (INT, STRING, BOOL, DOUBLE):
        choices += ["lit", "lit"]
    if depth > 0 and (ty in LISTS or ty in DATA):
        choices += ["con", "con", "con"]
        if ty in LISTS:
            choices.append("list")
    kind = draw(st.sampled_from(choices))
    if kind == "_":
        return "_"
    if kind == "var":
        name = ctx.names.fresh("p")
        binds.append((name, ty))
        return name
    if kind == "lit":
        if ty == INT:
            return draw(_INT_PATTERNS)
        if ty == STRING:
            return draw(_STRING_PATTERNS)
        if ty == DOUBLE:
            return draw(_DOUBLE_PATTERNS)
        return draw(st.sampled_from(["true", "false"]))
    if kind == "list":
        n = draw(st.integers(0, 3))
        return "(list" + "".join(" " + _pattern(draw, LISTS[ty], ctx, depth - 1, binds)
                                 for _ in range(n)) + ")"
    name, fields = draw(st.sampled_from(_ctors(ty)))
    return _con_pattern(draw, name, fields, ctx, depth, binds)


def _con_pattern(draw, name, fields, ctx, depth, binds):
    if not fields:
        return draw(st.sampled_from([name, f"({name})"]))
    subs = [_pattern(draw, f, ctx, depth - 1, binds) for f in fields]
    return f"({name} " + " ".join(subs) + ")"


def _flat_pattern(draw, name, fields, ctx, binds, unused=()):
    """``(C x _ y)``: variables and wildcards only; fields in ``unused`` are never bound
    into ``binds`` (they may hold a failing value)."""
    if not fields:
        return draw(st.sampled_from([name, f"({name})"]))
    subs = []
    for i, f in enumerate(fields):
        if draw(st.booleans()):
            subs.append("_")
        else:
            v = ctx.names.fresh("p")
            subs.append(v)
            if i not in unused:
                binds.append((v, f))
    return f"({name} " + " ".join(subs) + ")"


# ---- expressions ---------------------------------------------------------------------

def gen(draw, ty, env, depth, ctx):
    """An expression of type ``ty`` whose free variables are typed in ``env``."""
    if depth <= 0 or draw(st.integers(0, 9)) == 0:
        return _leaf(draw, ty, env)
    sub = depth - 1
    names = ctx.names

    def g(t, extra=()):
        return gen(draw, t, list(env) + list(extra), sub, ctx)

    def bot(t):
        return _bottom(draw, t, ctx)

    def pick(xs):
        return draw(st.sampled_from(list(xs)))

    def any_type():
        return pick(ctx.types)

    kind = pick(ctx.kinds(ty))
    if kind in _GROUPS:
        kind = pick(_GROUPS[kind])
    if kind in ("fold-any", "let-rec") and ctx.loop_nesting:
        kind = "if"
    # ---- any type
    if kind == "let":
        name = names.fresh()
        t = any_type()
        return f"(let (({name} {g(t)})) {g(ty, [(name, t)])})"
    if kind == "let-unused-bottom":
        name = names.fresh("u")
        return f"(let (({name} {bot(any_type())})) {g(ty)})"
    if kind == "lambda":
        name = names.fresh()
        t = any_type()
        return f"((lambda ({name}) {g(ty, [(name, t)])}) {g(t)})"
    if kind == "if":
        return f"(if {g(BOOL)} {g(ty)} {g(ty)})"
    if kind == "if-lazy":
        return pick([f"(if true {g(ty)} {bot(ty)})", f"(if false {bot(ty)} {g(ty)})"])
    if kind == "forced-bottom":
        return f"(the {ty} {bot(ty)})"
    if kind == "poly-id":
        name = names.fresh("id")
        return f"(let (({name} (lambda (z) z))) ({name} {g(ty)}))"
    if kind == "call-define":
        usable = [d for d in ctx.defines if d[1] == ty]
        if not usable:
            return _leaf(draw, ty, env)
        fname, _, arg_t = pick(usable)
        return f"({fname} {g(arg_t)})"
    if kind == "case":
        return _gen_case(draw, ty, ctx, g)
    if kind == "case-known":
        return _gen_case_known(draw, ty, ctx, g)
    if kind == "case-lazy":
        return _gen_case_lazy(draw, ty, ctx, g)
    if kind == "cond":
        clauses = [f"({g(BOOL)} {g(ty)})" for _ in range(draw(st.integers(1, 3)))]
        if draw(st.integers(0, 4)) > 0:
            clauses.append(f"(else {g(ty)})")
        return "(cond " + " ".join(clauses) + ")"
    if kind == "cond-lazy":
        first = pick(["true", "(= 1 1)", "(not false)"])
        later = [f"({pick([bot(BOOL), g(BOOL)])} {pick([bot(ty), g(ty)])})"
                 for _ in range(draw(st.integers(0, 2)))]
        tail = [f"(else {pick([bot(ty), g(ty)])})"] if draw(st.booleans()) else []
        lead = [f"(false {bot(ty)})"] if draw(st.booleans()) else []
        return "(cond " + " ".join(lead + [f"({first} {g(ty)})"] + later + tail) + ")"
    if kind == "min-max":
        return f"({pick(['min', 'max'])} {g(ty)} {g(ty)})"
    if kind == "fst-snd":
        other = pick([g(any_type()), bot(any_type())])
        if draw(st.booleans()):
            return f"(fst (pair {g(ty)} {other}))"
        return f"(snd ({pick(['pair', 'Pair'])} {other} {g(ty)}))"
    if kind == "from-maybe":
        m = pick([f"(Just {g(ty)})", f"(the (Maybe {ty}) Nothing)",
                  f"(the (Maybe {ty}) (Just {bot(ty)}))"])
        return f"(from-maybe {g(ty)} {m})"
    if kind == "maybe":
        x = names.fresh("x")
        return f"(maybe {g(ty)} (lambda ({x}) {g(ty, [(x, INT)])}) {g(MAYBE)})"
    if kind == "either":
        a, b = names.fresh("a"), names.fresh("b")
        return (f"(either (lambda ({a}) {g(ty, [(a, STRING)])}) "
                f"(lambda ({b}) {g(ty, [(b, INT)])}) {g(EITHER)})")
    if kind == "list-elem":
        lt = list_of(ty)
        if draw(st.booleans()):
            return f"(head {g(lt)})"
        return f"(nth {g(lt)} {draw(st.integers(-1, 3))})"
    if kind == "default":
        return f"(the {ty} def)"
    if kind == "seq":
        return f"(seq {pick([g(any_type()), bot(any_type())])} {g(ty)})"
    if kind == "fold-any":
        src = pick([t for t in ctx.types if t in LISTS])
        x, acc = names.fresh("x"), names.fresh("acc")
        ctx.loop_nesting += 1
        try:
            z, xs = g(ty), g(src)
            body = g(ty, [(x, LISTS[src]), (acc, ty)])
        finally:
            ctx.loop_nesting -= 1
        if draw(st.booleans()):
            return f"(foldr (lambda ({x} {acc}) {body}) {z} {xs})"
        return f"({pick(['foldl', 'foldl-strict'])} (lambda ({acc} {x}) {body}) {z} {xs})"
    if kind == "let-rec":
        # a local recursive function over a list, by case: structural, so it terminates
        src = pick([t for t in ctx.types if t in LISTS])
        go, xs, h, t, r = (names.fresh(p) for p in ("go", "xs", "h", "t", "r"))
        ctx.loop_nesting += 1
        try:
            z, arg = g(ty), g(src)
            body = g(ty, [(h, LISTS[src]), (r, ty), (t, src)])
        finally:
            ctx.loop_nesting -= 1
        nil_pat = pick(["nil", "(list)", "_"])
        alts = [f"((cons {h} {t}) (let (({r} ({go} {t}))) {body}))", f"({nil_pat} {z})"]
        return f"(let (({go} (lambda ({xs}) (case {xs} {alts[0]} {alts[1]})))) ({go} {arg}))"
    if kind == "construct":
        return _gen_construct(draw, ty, ctx, g, bot)
    if kind == "construct-partial":
        multi = [c for c in _ctors(ty) if len(c[1]) >= 2 and c[0] != "cons"]
        name, fields = pick(multi)
        k = draw(st.integers(1, len(fields) - 1))
        args = [g(f) for f in fields]
        head = f"({name} " + " ".join(args[:k]) + ")"
        if draw(st.booleans()):
            return f"({head} " + " ".join(args[k:]) + ")"
        fn = names.fresh("k")
        return f"(let (({fn} {head})) ({fn} " + " ".join(args[k:]) + "))"
    # ---- Int
    if kind == "arith":
        op = pick(["+", "-", "*", "/", "mod", "%"])
        return f"({op} {g(INT)} {g(INT)})"
    if kind == "unary":
        return f"({pick(['negate', 'abs'])} {g(INT)})"
    if kind == "length":
        return f"(length {g(pick([t for t in ctx.types if t in LISTS]))})"
    if kind == "head":
        return f"(head {g(LIST)})"
    if kind == "head-lazy":
        return f"(head (cons {g(INT)} {bot(LIST)}))"
    if kind == "sum":
        return f"({pick(['sum', 'product'])} {g(LIST)})"
    if kind == "nth":
        return f"(nth {g(LIST)} {draw(st.integers(-1, 5))})"
    if kind == "len":
        return f"(len {g(STRING)})"
    if kind == "fold":
        op = pick(["+", "-", "*"])
        fold = pick(["foldr", "foldl"])
        return f"({fold} {op} {g(INT)} {g(LIST)})"
    if kind == "truncate":
        if draw(st.booleans()):
            return f"(truncate {g(DOUBLE)})"
        return f"(truncate (/ (to-double {g(INT)}) {pick(['2.0', '0.5', '0.0', '-3.0'])}))"
    # ---- Double
    if kind == "darith":
        return f"({pick(['+', '-', '*', '/'])} {g(DOUBLE)} {g(DOUBLE)})"
    if kind == "dunary":
        return f"({pick(['negate', 'abs'])} {g(DOUBLE)})"
    if kind == "to-double":
        return f"(to-double {g(INT)})"
    if kind == "point-field":
        return f"({pick(['px', 'py', 'norm1'])} {g(POINT)})"
    if kind == "accessor":
        return f"({pick(ACCESSORS)} {g(SHAPE)})"
    if kind == "tree-sum":
        return f"(tree-sum {g(TREE)})"
    if kind == "rose-sum":
        return pick([f"(rose-sum {g(ROSE)})", f"(forest-sum {g(FOREST)})"])
    if kind == "get-or":
        return f"(get-or {g(INT)} {g(OPT)})"
    if kind == "size":
        return f"({pick(['size', 'size2'])} {g(pick(ctx.size_types))})"
    if kind == "size-let-poly":
        fn, x = names.fresh("s"), names.fresh("x")
        t1, t2 = pick(ctx.size_types), pick(ctx.size_types)
        return f"(let (({fn} (lambda ({x}) (+ 1 (size {x}))))) (+ ({fn} {g(t1)}) ({fn} {g(t2)})))"
    if kind == "string->int":
        return f"(from-maybe {g(INT)} (string->int {_int_text(draw, g)}))"
    if kind == "parse-int":
        return f"(%parse-int {_int_text(draw, g)})"
    if kind == "fst":
        return f"(fst {g(PAIR)})"
    if kind == "cmp3":
        t = pick([DOUBLE] + list(ctx.types))
        return f"(cmp3 {g(t)} {g(t)})"
    if kind == "psum":
        return f"(psum {g(LIST)})"
    if kind == "pmax":
        return f"(pmax {g(ty)} {g(ty)})"
    # ---- Bool
    if kind == "compare":
        op = pick(["<", "<=", ">", ">=", "=", "/=", "eq", "neq"])
        t = pick([INT, STRING, BOOL, DOUBLE] + list(ctx.types))
        return f"({op} {g(t)} {g(t)})"
    if kind == "list-eq":
        return f"({pick(['=', 'neq'])} {g(LIST)} {g(LIST)})"
    if kind == "logic":
        return f"({pick(['and', 'or', 'xor'])} {g(BOOL)} {g(BOOL)})"
    if kind == "logic-lazy":
        return pick(["(or true {b})", "(and false {b})"]).format(b=bot(BOOL))
    if kind == "not":
        return f"(not {g(BOOL)})"
    if kind == "null":
        return f"(null? {g(pick([t for t in ctx.types if t in LISTS]))})"
    if kind == "int?":
        return f"(%int? {_int_text(draw, g)})"
    # ---- String
    if kind == "show":
        return f"(show {g(any_type())})"
    if kind == "concat":
        return f"({pick(['++', 'concat'])} {g(STRING)} {g(STRING)})"
    if kind == "show-double":
        return f"(show (/ (to-double {g(INT)}) {pick(['3.0', '0.0', '-0.0', '1e300'])}))"
    if kind == "substring":
        idx = st.one_of(st.integers(-2, 6), st.sampled_from([INT_MIN, INT_MAX]))
        i = draw(idx) if draw(st.integers(0, 3)) else g(INT)
        return f"(substring {g(STRING)} {i} {draw(idx)})"
    if kind == "join":
        if draw(st.booleans()):
            return f"(join {_sep(draw, g)} {g(LSTR)})"
        return f"(string-of {g(LSTR)})"
    if kind == "int->string":
        return f"(int->string {g(INT)})"
    if kind == "snd":
        return f"(snd {g(PAIR)})"
    if kind == "lookup-str":
        return f"(from-maybe {g(STRING)} (lookup {g(INT)} {g(LPAIR)}))"
    if kind == "nth-chars":
        return f"(nth (chars {g(STRING)}) {draw(st.integers(-1, 3))})"
    if kind == "label":
        return f"(label {g(pick(ctx.size_types))})"
    if kind == "pretty":
        return f"(pretty {g(pick(ctx.pretty_types))})"
    # ---- lists (List Int) and the other list types
    if kind == "list":
        n = draw(st.integers(0, 4))
        if not n:
            return _annotate(ty, pick(["(list)", "nil"]))
        return "(list " + " ".join(g(LISTS[ty]) for _ in range(n)) + ")"
    if kind == "list-with-bottom":
        return f"(list {g(LISTS[ty])} {bot(LISTS[ty])})"
    if kind == "cons":
        return f"(cons {g(LISTS[ty])} {g(ty)})"
    if kind == "map":
        x = names.fresh("x")
        return f"(map (lambda ({x}) {g(INT, [(x, INT)])}) {g(LIST)})"
    if kind == "map-from":
        src = pick([t for t in ctx.types if t in LISTS])
        x = names.fresh("x")
        return f"(map (lambda ({x}) {g(LISTS[ty], [(x, LISTS[src])])}) {g(src)})"
    if kind == "map-ctor":
        options = [(c, f) for c, f in _ctors(LISTS[ty]) if f and list_of(f[-1]) in ctx.types]
        name, fields = pick(options)
        head = name if len(fields) == 1 else f"({name} " + " ".join(g(f) for f in fields[:-1]) + ")"
        return f"(map {head} {g(list_of(fields[-1]))})"
    if kind == "zip-ctor":
        options = [(c, f) for c, f in _ctors(LISTS[ty])
                   if len(f) == 2 and all(list_of(t) in ctx.types for t in f)]
        name, fields = pick(options)
        return f"(zip-with {name} {g(list_of(fields[0]))} {g(list_of(fields[1]))})"
    if kind == "filter":
        x = names.fresh("x")
        return f"(filter (lambda ({x}) {g(BOOL, [(x, LISTS[ty])])}) {g(ty)})"
    if kind == "take-drop":
        return f"({pick(['take', 'drop'])} {g(INT)} {g(ty)})"
    if kind == "take-iterate":
        x = names.fresh("x")
        return (f"(take {draw(st.integers(0, 6))} "
                f"(iterate (lambda ({x}) {g(INT, [(x, INT)])}) {g(INT)}))")
    if kind == "range":
        return f"(range {draw(small_ints)} {draw(small_ints)})"
    if kind == "list-ops":
        return f"({pick(['reverse', 'tail'])} {g(ty)})"
    if kind == "append":
        return f"(append {g(ty)} {g(ty)})"
    if kind == "zip-with":
        return f"(zip-with {pick(['+', '-', '*'])} {g(LIST)} {g(LIST)})"
    if kind == "tree-list":
        return f"(tree-list {g(TREE)})"
    if kind == "map-size":
        src = pick([t for t in ctx.size_types if list_of(t) in ctx.types])
        return f"(map {pick(['size', 'size2'])} {g(list_of(src))})"
    if kind == "map-accessor":
        n = draw(st.integers(0, 3))
        items = " ".join(g(SHAPE) for _ in range(n))
        return f"(map {pick(ACCESSORS)} (list {items}))" if n else "(the (List Int) nil)"
    if kind == "map-fn":
        return pick([f"(map len {g(LSTR)})", f"(map fst {g(LPAIR)})"])
    if kind == "split":
        return f"(split {_sep(draw, g)} {g(STRING)})"
    if kind == "chars":
        return f"(chars {g(STRING)})"
    if kind == "map-show":
        src = pick([t for t in ctx.types if t in LISTS])
        return pick([f"(map show {g(src)})", f"(map int->string {g(LIST)})",
                     f"(map snd {g(LPAIR)})"])
    if kind == "zip":
        return f"(zip {g(LIST)} {g(LSTR)})"
    if kind == "opt-map":
        x = names.fresh("x")
        return f"(opt-map (lambda ({x}) {g(INT, [(x, INT)])}) {g(OPT)})"
    if kind == "map-opt-map":
        x = names.fresh("x")
        return f"(map (opt-map (lambda ({x}) {g(INT, [(x, INT)])})) {g(LOPT)})"
    # ---- other data types
    if kind == "string->maybe":
        return f"(string->int {_int_text(draw, g)})"
    if kind == "lookup":
        return f"(lookup {g(INT)} (zip {g(LIST)} {g(LIST)}))"
    if kind == "pair":
        return f"(pair {g(INT)} {g(STRING)})"
    if kind == "tree-insert":
        return pick([f"(tree-insert {g(INT)} {g(TREE)})", f"(foldr tree-insert Leaf {g(LIST)})"])
    if kind == "forest-of":
        return f"(forest-of {g(LIST)})"
    raise AssertionError(kind)


_INT_TEXTS = ['"42"', '"-7"', '"007"', '"0"', '"4x2"', '""', '"+1"', '" 1"', '"-"', '"1.5"',
              '"9223372036854775807"', '"9223372036854775808"', '"-9223372036854775808"',
              '"-9223372036854775809"', '"\\u{1F600}"']


def _int_text(draw, g):
    """A String that may or may not spell an Int."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return f"(int->string {g(INT)})"
    if choice == 1:
        return g(STRING)
    return draw(st.sampled_from(_INT_TEXTS))


def _sep(draw, g):
    if draw(st.integers(0, 5)) == 0:
        return g(STRING)
    return draw(st.sampled_from(['","', '" "', '"a"', '"ab"', '""', '"\\u{e9}"']))


def _gen_construct(draw, ty, ctx, g, bot):
    """A constructor applied to its fields (some failing: fields are lazy)."""
    name, fields = draw(st.sampled_from(_ctors(ty)))
    if not fields:
        if ty in LISTS:
            return _annotate(ty, "nil")
        return _annotate(ty, name) if _poly(ty) else name
    args, raw_bottom = [], False
    for f in fields:
        if draw(st.integers(0, 7)) == 0:
            b = bot(f)
            raw_bottom = raw_bottom or b in BOTTOMS
            args.append(b)
        else:
            args.append(g(f))
    text = f"({name} " + " ".join(args) + ")"
    if _poly(ty) and (raw_bottom or ty == EITHER or draw(st.integers(0, 3)) == 0):
        return _annotate(ty, text)
    return text


def _scrutinee_type(draw, ctx):
    data_like = [t for t in ctx.types if t in DATA or t in LISTS]
    return draw(st.sampled_from(data_like + data_like + [INT, STRING, BOOL]))


def _gen_case(draw, ty, ctx, g):
    """A case with generated patterns; maybe without a catch-all (so it may fail)."""
    s = _scrutinee_type(draw, ctx)
    scrut = g(s)
    alts = []
    for _ in range(draw(st.integers(1, 3))):
        binds: list = []
        pat = _pattern(draw, s, ctx, draw(st.integers(1, 3)), binds)
        alts.append(f"({pat} {g(ty, binds)})")
    ending = draw(st.integers(0, 5))
    if ending <= 2:
        alts.append(f"(_ {g(ty)})")
    elif ending == 3:
        v = ctx.names.fresh("p")
        alts.append(f"({v} {g(ty, [(v, s)])})")
    elif ending == 4 and (s in DATA or s in LISTS):          # one flat alternative each
        for name, fields in _ctors(s):
            binds = []
            alts.append(f"({_flat_pattern(draw, name, fields, ctx, binds)} {g(ty, binds)})")
    return f"(case {scrut} " + " ".join(alts) + ")"


def _gen_case_known(draw, ty, ctx, g):
    """A case on a value built with a known constructor, whose alternatives include
    that constructor's (a missing one is never reached) and may omit others."""
    s = draw(st.sampled_from([t for t in ctx.types if t in DATA or t in LISTS]))
    ctors = list(_ctors(s))
    name, fields = draw(st.sampled_from(ctors))
    if not fields:
        scrut = _annotate(s, name) if _poly(s) else name
    else:
        scrut = f"({name} " + " ".join(g(f) for f in fields) + ")"
        scrut = _annotate(s, scrut) if _poly(s) else scrut
    chosen = [c for c in ctors if c[0] != name and draw(st.booleans())]
    chosen.insert(draw(st.integers(0, len(chosen))), (name, fields))
    alts = []
    for cname, cfields in chosen:
        binds: list = []
        pat = _flat_pattern(draw, cname, cfields, ctx, binds)
        alts.append(f"({pat} {g(ty, binds)})")
    return f"(case {scrut} " + " ".join(alts) + ")"


def _gen_case_lazy(draw, ty, ctx, g):
    """A case that never forces the failing parts of its value: a wildcard or variable
    pattern on a failing scrutinee, or fields holding failures matched by _ or unused
    variables (a case forces only what its patterns need)."""
    if draw(st.integers(0, 3)) == 0:
        s = draw(st.sampled_from(ctx.types))
        v = ctx.names.fresh("p")
        return f"(case {_bottom(draw, s, ctx)} ({draw(st.sampled_from(['_', v]))} {g(ty)}))"
    with_fields = [t for t in ctx.types
                   if (t in DATA or t in LISTS) and any(f for _, f in _ctors(t))]
    s = draw(st.sampled_from(with_fields))
    name, fields = draw(st.sampled_from([c for c in _ctors(s) if c[1]]))
    lazy = {i for i in range(len(fields)) if draw(st.booleans())} or {0}
    args = [_bottom(draw, f, ctx) if i in lazy else g(f) for i, f in enumerate(fields)]
    scrut = f"({name} " + " ".join(args) + ")"
    if _poly(s):
        scrut = _annotate(s, scrut)
    binds: list = []
    pat = _flat_pattern(draw, name, fields, ctx, binds, unused=lazy)
    alts = [f"({pat} {g(ty, binds)})"]
    for cname, cfields in _ctors(s):
        if cname != name and draw(st.booleans()):
            b2: list = []
            alts.append(f"({_flat_pattern(draw, cname, cfields, ctx, b2)} {g(ty, b2)})")
    if draw(st.booleans()):
        alts.append(f"(_ {g(ty)})")
    draw_order = draw(st.permutations(range(len(alts))))
    return f"(case {scrut} " + " ".join(alts[i] for i in draw_order) + ")"


_COMMON = ["let", "let-unused-bottom", "lambda", "if", "if-lazy", "poly-id", "call-define",
           "forced-bottom", "case", "case", "case-known", "case-lazy", "cond-any",
           "prelude-any"]
# a kind drawn as one of these stands for one of its members (to keep their weight down)
_GROUPS = {"cond-any": ["cond", "cond-lazy"],
           "prelude-any": ["min-max", "fst-snd", "from-maybe", "maybe", "either"],
           "loop-any": ["fold-any", "let-rec"]}
_SPECIFIC = {
    INT: ["arith", "arith", "arith", "unary", "length", "head", "head-lazy", "sum", "nth",
          "len", "fold", "truncate", "string->int", "parse-int", "fst"],
    BOOL: ["compare", "compare", "compare", "list-eq", "logic", "logic-lazy", "not", "null",
           "int?"],
    STRING: ["show", "show", "concat", "show-double", "substring", "join", "int->string",
             "snd", "lookup-str", "nth-chars"],
    LIST: ["list", "list", "list-with-bottom", "cons", "map", "filter", "take-drop",
           "take-iterate", "range", "list-ops", "append", "zip-with", "map-from",
           "map-accessor", "map-fn"],
    LSTR: ["split", "split", "chars", "map-show"],
    LPAIR: ["zip", "zip"],
    LOPT: ["map-opt-map"],
    MAYBE: ["string->maybe", "lookup"],
    PAIR: ["pair"],
    OPT: ["opt-map"],
    TREE: ["tree-insert", "tree-insert"],
    FOREST: ["forest-of"],
    DOUBLE: ["darith", "darith", "dunary", "to-double", "point-field"],
}
_GENERIC_LIST = ["list", "list", "list-with-bottom", "cons", "filter", "take-drop",
                 "list-ops", "append", "map-from"]
# kind -> a declaration (or class) it needs
_NEEDS = {"accessor": "shape", "map-accessor": "shape", "tree-sum": "tree",
          "tree-list": "tree", "tree-insert": "tree", "rose-sum": "rose", "forest-of": "rose",
          "get-or": "opt", "opt-map": "opt", "map-opt-map": "opt", "point-field": "point",
          "cmp3": "poly", "psum": "poly", "pmax": "poly"}


def _kinds_for(ctx, ty):
    kinds = list(_COMMON) + list(_SPECIFIC.get(ty, [])) + ["seq", "loop-any", "pmax"]
    if ty in LISTS and ty != LIST:
        kinds += _GENERIC_LIST
    if ty in DATA or ty in LISTS:
        kinds += ["construct", "construct"]
        if any(len(f) >= 2 for c, f in _ctors(ty) if c != "cons"):
            kinds.append("construct-partial")
    if ty in LISTS:
        elem = LISTS[ty]
        if any(f and list_of(f[-1]) in ctx.types for _, f in _ctors(elem)):
            kinds += ["map-ctor", "map-ctor"]
        if any(len(f) == 2 and all(list_of(t) in ctx.types for t in f) for _, f in _ctors(elem)):
            kinds.append("zip-ctor")
    if list_of(ty) in ctx.types:
        kinds.append("list-elem")
    if ty == INT:
        kinds += ["accessor", "tree-sum", "rose-sum", "get-or", "cmp3", "cmp3", "psum"]
    if ty == LIST:
        kinds += ["tree-list"]
    if ty == INT and ctx.size_types:
        kinds += ["size", "size", "size-let-poly"]
    if ty == LIST and any(list_of(t) in ctx.types for t in ctx.size_types):
        kinds.append("map-size")
    if ty == STRING and ctx.size_types:
        kinds.append("label")
    if ty == STRING and ctx.pretty_types:
        kinds.append("pretty")
    if ty in ctx.default_types:
        kinds.append("default")
    return [k for k in kinds if _NEEDS.get(k) is None or _NEEDS[k] in ctx.decls]


def _draw_instances(draw, menu, decls):
    if not draw(st.booleans()):
        return None
    return {key for key, (need, _) in menu.items()
            if (need is None or need in decls) and draw(st.booleans())}


@st.composite
def programs(draw, max_depth: int = 4, classes: bool = True):
    """A well-typed program: ``(source, result type text)``.

    ``classes`` lets the program declare the menu's classes and instances too.  (The
    typechecker's elaboration of classes leaves the Vars it makes -- dictionaries,
    method implementations such as ``size@Size Int`` -- without an ``inst_type``; a
    consumer that requires one on every Var must skip those names, which contain
    ``@``, or ask for ``classes=False``.)
    """
    decls = {key for key in DATA_ORDER + ("poly",) if draw(st.booleans())}
    size_insts = default_insts = pretty_insts = None
    if classes:
        size_insts = _draw_instances(draw, SIZE_INSTANCES, decls)
        default_insts = _draw_instances(draw, DEFAULT_INSTANCES, decls)
        pretty_insts = _draw_instances(draw, PRETTY_INSTANCES, decls)
    ctx = _Ctx(decls, size_insts, default_insts, pretty_insts)
    lines = []
    for key in DATA_ORDER:
        if key in decls:
            lines.append(DATA_DECLS[key][0])
    for cls, menu, insts, helpers in ((SIZE_CLASS, SIZE_INSTANCES, size_insts, SIZE_HELPERS),
                                      (DEFAULT_CLASS, DEFAULT_INSTANCES, default_insts, []),
                                      (PRETTY_CLASS, PRETTY_INSTANCES, pretty_insts, [])):
        if insts is not None:
            lines.append(cls)
            lines.extend(menu[key][1] for key in menu if key in insts)
            lines.extend(helpers)
    for key in DATA_ORDER:
        if key in decls:
            lines.extend(DATA_DECLS[key][1])
    if "poly" in decls:
        lines.extend(POLY_HELPERS)
    for _ in range(draw(st.integers(0, 2))):
        fname = ctx.names.fresh("f")
        param = ctx.names.fresh("p")
        arg_t, res_t = draw(st.sampled_from(ctx.types)), draw(st.sampled_from(ctx.types))
        body = gen(draw, res_t, [(param, arg_t)], max_depth - 1, ctx)
        lines.append(f"(define ({fname} {param}) {body})")
        ctx.defines.append((fname, res_t, arg_t))
    ty = draw(st.sampled_from(list(TYPES) + ctx.types))
    lines.append(gen(draw, ty, [], max_depth, ctx))
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


# ---- fusion-shaped programs ---------------------------------------------------------
# consumer(transformer*(producer)) chains of the prelude's list functions, with known
# lambdas, named (unknown) functions, elements and functions that raise, shared and
# self-referential lists: the shapes the compiler's fusion stage rewrites, so that a
# wrong rewrite (an element forced too early, a list not shared, a take that asks for
# one element too many) gives another outcome than the reference interpreter's.

_FUSION_MAPS = ["(lambda (x) (+ x {k}))", "(lambda (x) (* x {k}))", "(lambda (x) (- {k} x))",
                '(lambda (x) (if (= x {k}) (error "boom") x))', "(lambda (x) bottom)",
                "(lambda (x) (let ((y (* x x))) (+ y {k})))", "(lambda (head) (+ head {k}))",
                "(lambda (x) (+ x k0))"]
_FUSION_PREDS = ["(lambda (x) (= (mod x {k}) 0))", "(lambda (x) (> x {k}))",
                 "(lambda (x) (if (= x {k}) bottom true))", "(lambda (x) (/= x {k}))",
                 "(lambda (x) (< x k0))"]
_FUSION_STEPS = ["(lambda (x) (+ x 1))", "(lambda (x) (+ x {k}))",
                 '(lambda (x) (if (> x {k}) (error "too far") (+ x 1)))']
_FUSION_LISTS = ["(list 1 2 3 4 5 6)", "(list 1 bottom 3 (error \"e\") 5)",
                 "(cons 1 (cons 2 (cons 3 bottom)))", "(range 0 {k})", "xs0"]


def _pos_int(draw):
    return str(draw(st.integers(1, 6)))


@st.composite
def _fusion_fn(draw, menu):
    text = draw(st.sampled_from(menu)).replace("{k}", _pos_int(draw))
    return draw(st.sampled_from([text, text, "g0"])) if menu is _FUSION_MAPS else text


@st.composite
def _fusion_list(draw, depth, infinite_ok=False):
    """An Int list expression: a producer under zero or more transformers; an infinite
    producer only under a take (the chain is then finite, or the sum would not end)."""
    kind = draw(st.sampled_from(["range", "iterate", "list", "zip-with"]
                                if infinite_ok else ["range", "list", "zip-with"]))
    if kind == "range":
        base = f"(range {draw(st.integers(-3, 3))} {draw(st.integers(-1, 12))})"
    elif kind == "iterate":
        base = f"(iterate {draw(_fusion_fn(_FUSION_STEPS))} {draw(st.integers(0, 3))})"
    elif kind == "zip-with":
        f = draw(st.sampled_from(["(lambda (a b) (+ a b))", "(lambda (a b) (* a 2))",
                                  "(lambda (a b) b)", "h0"]))
        base = (f"(zip-with {f} {draw(_fusion_list(max(0, depth - 1)))} "
                f"{draw(st.sampled_from(_FUSION_LISTS)).replace('{k}', _pos_int(draw))})")
    else:
        base = draw(st.sampled_from(_FUSION_LISTS)).replace("{k}", _pos_int(draw))
    bounded = kind != "iterate"
    for _ in range(draw(st.integers(0, depth))):
        t = draw(st.sampled_from(["map", "filter", "take"]))
        if t == "map":
            base = f"(map {draw(_fusion_fn(_FUSION_MAPS))} {base})"
        elif t == "filter" and bounded:
            base = f"(filter {draw(_fusion_fn(_FUSION_PREDS))} {base})"
        else:
            base = f"(take {draw(st.integers(-1, 6))} {base})"
            bounded = True
    if not bounded:
        base = f"(take {draw(st.integers(0, 6))} {base})"
    return base


_FUSION_CONSUMERS = ["(sum {l})", "(product {l})", "(length {l})",
                     "(foldl-strict (lambda (a x) (+ a x)) 0 {l})",
                     "(foldl (lambda (a x) x) -1 {l})", "(foldl (lambda (a x) a) k0 {l})",
                     "(sum (take 3 {l}))", "(length (take 2 {l}))", "(show {l})",
                     "(let ((ys {l})) (+ (sum ys) (length ys)))",
                     "(let ((ys {l})) (+ (length ys) (sum (take 2 ys))))",
                     "(nth (map (lambda (x) (* x 2)) {l}) 1)"]


@st.composite
def fusion_programs(draw, max_depth: int = 3):
    """``(source, result type)``: a program of fusion-shaped list chains (Int or String
    result), with the locals ``k0`` (an Int), ``g0`` (a function), ``h0`` (a two-argument
    function) and ``xs0`` (a shared list) in scope."""
    consumer = draw(st.sampled_from(_FUSION_CONSUMERS))
    body = consumer.replace("{l}", draw(_fusion_list(max_depth, infinite_ok=True)))
    g0 = draw(st.sampled_from(["(lambda (x) (+ x 1))", "negate", "(lambda (x) (* x k0))"]))
    h0 = draw(st.sampled_from(["(lambda (a b) (- a b))", "+", "(lambda (a b) k0)"]))
    xs0 = draw(st.sampled_from(["(list 3 1 4 1 5)", "(map (lambda (x) (* x k0)) (range 0 5))",
                                "(cons 0 (cons 1 (zip-with + xs0 (tail xs0))))"]))
    if xs0.startswith("(cons 0"):
        body = body.replace("xs0", "(take 6 xs0)")
    source = (f"(let ((k0 {draw(st.integers(-2, 4))}) (g0 {g0}) (h0 {h0}) (xs0 {xs0}))\n"
              f"  {body})")
    return source, "String" if consumer.startswith("(show") else "Int"

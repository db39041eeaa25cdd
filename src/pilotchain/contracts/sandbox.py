"""The Python contract sandbox: a deploy-time checker, an instrumenting compiler and a meter.

Theory of operation
-------------------
A contract is the source text of one Python module written in a deterministic subset of Python.
Three layers keep it inside that subset:

1. **The checker** (:func:`check_source`) parses the source and walks every node against an
   allow-list. Anything not listed is refused at deploy with the line and a hint: ``class``,
   ``lambda``, generators (``yield``, generator expressions), ``async``, ``with``, ``global``,
   ``nonlocal``, ``match``, decorators, set literals, float and complex literals, true division
   ``/``, ``%``-formatting is caught at run time, star-assignment targets, slice assignment,
   attribute assignment, and every import except ``from pilotchain.contracts.api import ...``.
   Names may not start with ``__`` or ``_pc`` (the instrumentation's own names); attributes may
   not start with ``_`` at all and may not be one of :data:`DENIED_ATTRIBUTES` (frame, code and
   traceback links such as ``gi_frame`` / ``tb_frame``, ``format`` / ``format_map`` which reach
   attributes through format strings, and the size amplifiers ``ljust``, ``zfill``, ...). Every
   name a contract reads must be bound in the module, a sandbox builtin, or an API name, so
   ``eval``, ``open``, ``getattr``, ``type``, ``id``, ``hash``, ``print`` ... fail at deploy.
   API names that shadow a Python builtin (:data:`IMPORT_ONLY_NAMES`: the chain's ``hash``)
   resolve only where the contract imports them, so ``hash(x)`` alone still fails at deploy and
   a reader never mistakes one for the other.
   Top-level code may only import the API, define functions, assign and carry a docstring.

2. **The compiler** (:func:`compile_contract`) rewrites the checked tree before ``compile``:

   * metering: ``_pc_enter()`` / ``_pc_leave()`` around every function body (one step, and the
     call-depth bound), ``_pc_step()`` at the top of every loop body and as the first condition
     of every comprehension clause;
   * memory: ``+ * ** << %`` become guard calls that refuse results over the size bounds before
     allocating them and charge what they allocate to the transaction's allocation budget;
     ``in`` is charged by container length; f-strings may only format ``str/int/bool/None/
     bytes`` and are length-checked; ``join`` / ``replace`` / ``extend`` calls are pre-checked;
     starred expressions are materialised under the meter; augmented assignments are expanded
     so they go through the same guards;
   * builtins are the small table in :func:`sandbox_builtins`: consumers of iterables
     (``list``, ``sorted``, ``sum``, ...) charge steps by length and refuse oversized input.

3. **The meter** (:class:`Meter`) is one object per transaction (shared by nested contract
   calls): a step budget, an allocation budget and a call-depth bound. Exhaustion raises a
   :class:`SandboxAbort` — a ``BaseException``, which contract code cannot name or catch — and
   is *sticky*: every later step raises again, so ``finally`` blocks cannot keep running loops.

What is bounded and what is not: every loop iteration, function call and comprehension item
costs a step; every container / string a guarded operation produces is bounded
(:class:`SandboxLimits`); the cumulative bytes allocated by guarded operations are bounded. C
operations that are linear in an already-bounded object (``==`` on two lists, ``list.sort``,
``str.count``) are not charged per element; they are bounded by the size limits. Governance
approval of every contract is the outer line of defence.

Determinism: no clock, randomness, ``id``, ``hash`` or sets are reachable; dicts iterate in
insertion order; exception messages that reach receipts are scrubbed of memory addresses.

Pure: no I/O, clock or randomness.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pilotchain.errors import CoreError, InvariantBroken

__all__ = [
    "SandboxLimits",
    "CodeRejected",
    "CheckedContract",
    "ModuleCache",
    "module_is_definitional",
    "MethodSignature",
    "check_source",
    "compile_contract",
    "Meter",
    "SandboxAbort",
    "OutOfSteps",
    "OutOfMemory",
    "CallDepthExceeded",
    "Guards",
    "sandbox_builtins",
    "API_MODULE",
    "scrub_message",
    "DENIED_ATTRIBUTES",
    "IMPORT_ONLY_NAMES",
]

#: The one module contracts may import from (its names are injected by the runtime).
API_MODULE = "pilotchain.contracts.api"
#: Source text of a contract is at most this long.
SOURCE_BYTES_MAX = 128 * 1024
#: Syntax-tree nodes in one contract.
AST_NODES_MAX = 50_000
#: Literal ints in source are at most this many bits.
LITERAL_INT_BITS_MAX = 256
#: Receipt messages from contract failures are cut to this many characters.
MESSAGE_CHARS_MAX = 300

_PREFIX = "_pc_"

#: API names that are also Python builtins: available only to a contract that imports them
#: (``from pilotchain.contracts.api import hash``). Python's own ``hash`` differs between
#: processes, so the bare name must keep failing at deploy rather than silently mean ours.
IMPORT_ONLY_NAMES = frozenset({"hash"})


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Bounds on one transaction's execution (chain parameters may lower or raise the budgets)."""

    #: steps (loop iterations, calls, comprehension items, storage operations) per transaction
    steps_max: int = 1_000_000
    #: bytes allocated by guarded operations, cumulative, per transaction
    allocation_bytes_max: int = 32 * 1024 * 1024
    #: nested Python function calls (all contracts of the transaction together)
    call_depth_max: int = 100
    #: items in one list, tuple or dict a guarded operation produces
    items_max: int = 100_000
    #: characters of a str / bytes of a bytes a guarded operation produces
    string_chars_max: int = 1024 * 1024
    #: bits of an int a guarded operation produces
    int_bits_max: int = 65_536

    def __post_init__(self) -> None:
        if not (self.steps_max >= 1 and self.allocation_bytes_max >= 1):
            raise InvariantBroken('invariant broken: self.steps_max >= 1 and self.allocation_bytes_max >= 1')
        if not (1 <= self.call_depth_max <= 200):
            raise InvariantBroken("call depth must stay far below Python's own limit")
        if not (self.items_max >= 1 and self.string_chars_max >= 1 and self.int_bits_max >= 64):
            raise InvariantBroken('invariant broken: self.items_max >= 1 and self.string_chars_max >= 1 and self.int_bits_max >= 64')


class CodeRejected(CoreError, ValueError):
    """Contract source that is not in the deterministic subset (refused at deploy)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.reason = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


# ---------------------------------------------------------------------------------- the checker

_ALLOWED_NODES: frozenset[type[ast.AST]] = frozenset(
    {
        ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.FunctionDef,
        ast.Return, ast.If, ast.For, ast.While, ast.Break, ast.Continue, ast.Pass, ast.Raise,
        ast.Try, ast.ExceptHandler, ast.Assert, ast.Delete, ast.ImportFrom, ast.alias,
        ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Dict, ast.List, ast.Tuple,
        ast.ListComp, ast.DictComp, ast.comprehension, ast.Compare, ast.Call, ast.keyword,
        ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.Starred, ast.Name,
        ast.JoinedStr, ast.FormattedValue, ast.NamedExpr, ast.arguments, ast.arg,
        ast.Load, ast.Store, ast.Del,
        ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Invert,
        ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift,
        ast.BitAnd, ast.BitOr, ast.BitXor,
        ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
    }
)  # fmt: skip

_WHY_REFUSED: dict[type[ast.AST], str] = {
    ast.ClassDef: "classes are not available; use functions, dicts and tuples",
    ast.Lambda: "lambda is not available; define a function with def",
    ast.GeneratorExp: "generator expressions are not available; use a list comprehension",
    ast.Yield: "generators are not available",
    ast.YieldFrom: "generators are not available",
    ast.AsyncFunctionDef: "async code is not available",
    ast.Await: "async code is not available",
    ast.AsyncFor: "async code is not available",
    ast.AsyncWith: "async code is not available",
    ast.With: "with-statements are not available",
    ast.Global: "global is not available; keep state in Map / Variable",
    ast.Nonlocal: "nonlocal is not available; return values instead",
    ast.Import: f"only 'from {API_MODULE} import ...' is allowed",
    ast.Set: "sets are not available (their order is not deterministic); use a dict",
    ast.SetComp: "sets are not available (their order is not deterministic); use a dict",
    ast.Div: "true division makes floats; use // (and integers, e.g. cents)",
    ast.MatMult: "the @ operator is not available",
    ast.Match: "match is not available; use if / elif",
    ast.TryStar: "except* is not available",
}

#: Attribute names refused even though they do not start with "_".
DENIED_ATTRIBUTES = frozenset(
    {
        # frames, code and tracebacks (reflection that reaches outside the sandbox)
        "gi_frame", "gi_code", "gi_yieldfrom", "gi_running", "cr_frame", "cr_code", "cr_await",
        "ag_frame", "ag_code", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
        "tb_frame", "tb_next", "func_globals", "func_code", "mro", "with_traceback",
        # attribute access through format strings
        "format", "format_map",
        # size amplifiers with no use in contracts
        "ljust", "rjust", "center", "zfill", "expandtabs", "translate", "maketrans", "to_bytes",
        # C loops over an arbitrary (lazy) iterable, unmetered
        "fromkeys", "from_bytes",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MethodSignature:
    """A top-level function of a contract: its parameters as the runtime binds arguments."""

    name: str
    params: tuple[str, ...]
    required: tuple[str, ...]


class ModuleCache:
    """Where the runtime keeps the executed module bodies of one compiled contract for reuse
    (:mod:`pilotchain.contracts.runtime`, "Reused module bodies"). Only a contract whose module
    body is *definitional* (:func:`module_is_definitional`) gets one."""

    __slots__ = ("template", "free", "disabled")

    def __init__(self) -> None:
        #: what a fresh run of the module body produces, captured after its first run
        self.template: Any = None
        #: executed module bodies not in use (each call takes one; nested calls take another)
        self.free: list[Any] = []
        #: set when the first run produced something the runtime cannot reproduce exactly
        self.disabled = False


@dataclass(frozen=True, slots=True)
class CheckedContract:
    """A contract that passed the checker: its compiled module code and its functions."""

    code: Any  # types.CodeType
    functions: tuple[MethodSignature, ...]
    #: the module body only imports, defines functions and binds names to literals (or to Map /
    #: Variable handles): running it gives the same result on every call
    definitional: bool = False
    modules: ModuleCache = field(default_factory=ModuleCache, compare=False)

    def function(self, name: str) -> MethodSignature | None:
        for signature in self.functions:
            if signature.name == name:
                return signature
        return None


def _refuse(node: ast.AST, message: str) -> CodeRejected:
    return CodeRejected(message, getattr(node, "lineno", None))


class _Checker(ast.NodeVisitor):
    def __init__(self, allowed_globals: frozenset[str]) -> None:
        self.allowed_globals = allowed_globals
        self.bound: set[str] = set()
        self.loaded: list[ast.Name] = []
        self.nodes = 0

    def generic_visit(self, node: ast.AST) -> None:
        self.nodes += 1
        if self.nodes > AST_NODES_MAX:
            raise _refuse(node, f"contract has more than {AST_NODES_MAX} syntax nodes; split it")
        kind = type(node)
        if kind not in _ALLOWED_NODES:
            reason = _WHY_REFUSED.get(kind, f"{kind.__name__} is not available in contracts")
            raise _refuse(node, reason)
        super().generic_visit(node)

    # -- module shape

    def visit_Module(self, node: ast.Module) -> None:
        for index, statement in enumerate(node.body):
            if isinstance(statement, ast.Expr) and index == 0 and _is_str_constant(statement.value):
                continue
            if not isinstance(
                statement, ast.ImportFrom | ast.FunctionDef | ast.Assign | ast.AnnAssign
            ):
                raise _refuse(
                    statement,
                    "top-level code may only import the contract API, define functions and "
                    "assign names; put logic inside functions",
                )
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module != API_MODULE or node.level != 0:
            raise _refuse(node, f"only 'from {API_MODULE} import ...' is allowed")
        for alias in node.names:
            if alias.name == "*" or alias.name not in self.allowed_globals:
                raise _refuse(node, f"{API_MODULE} has no name {alias.name!r} to import")
            if alias.asname is not None:
                raise _refuse(node, "import the API names as they are (no 'as')")
            if alias.name in IMPORT_ONLY_NAMES:
                self.bound.add(alias.name)
        self.generic_visit(node)

    # -- names and attributes

    def _check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("__") or name.startswith(_PREFIX):
            raise _refuse(node, f"name {name!r} is reserved (no dunder or {_PREFIX} names)")

    def visit_Name(self, node: ast.Name) -> None:
        self._check_name(node, node.id)
        if isinstance(node.ctx, ast.Load):
            self.loaded.append(node)
        else:
            self.bound.add(node.id)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            raise _refuse(
                node, f"attribute {node.attr!r}: names starting with '_' are not reachable"
            )
        if node.attr in DENIED_ATTRIBUTES:
            raise _refuse(node, f"attribute {node.attr!r} is not available in contracts")
        if not isinstance(node.ctx, ast.Load):
            raise _refuse(node, "contracts cannot set or delete attributes; use a dict or a Map")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load) and isinstance(node.slice, ast.Slice):
            raise _refuse(node, "slice assignment and deletion are not available; build a new list")
        self.generic_visit(node)

    def visit_Starred(self, node: ast.Starred) -> None:
        if not isinstance(node.ctx, ast.Load):
            raise _refuse(node, "starred assignment targets are not available; index the sequence")
        self.generic_visit(node)

    # -- functions

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.decorator_list:
            raise _refuse(node, "decorators are not available")
        self._check_name(node, node.name)
        self.bound.add(node.name)
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            self._check_name(arg, arg.arg)
            self.bound.add(arg.arg)
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                raise _refuse(node, "*args and **kwargs are not available; name the parameters")
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            if not _is_immutable_literal(default):
                raise _refuse(
                    default,
                    "parameter defaults must be int, str, bytes, bool, None or tuples of them",
                )
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is None:
            raise _refuse(node, "name the exception types to catch (no bare except)")
        if node.name is not None:
            self._check_name(node, node.name)
            self.bound.add(node.name)
        self.generic_visit(node)

    # -- values

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, float):
            raise _refuse(node, "floats are not available; use integers (e.g. cents)")
        if isinstance(value, complex) or value is Ellipsis:
            raise _refuse(node, f"{type(value).__name__} literals are not available")
        if isinstance(value, int) and value.bit_length() > LITERAL_INT_BITS_MAX:
            raise _refuse(node, f"integer literals are at most {LITERAL_INT_BITS_MAX} bits")
        self.generic_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> None:
        if node.conversion != -1 or node.format_spec is not None:
            raise _refuse(
                node, "f-string conversions and format specs (!r, :>10) are not available"
            )
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        if len(node.ops) > 1 and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            raise _refuse(node, "split chained membership tests ('a in b in c') into two")
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        if node.cause is not None:
            raise _refuse(node, "'raise ... from ...' is not available")
        self.generic_visit(node)


def _is_str_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_immutable_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, bool | int | str | bytes)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _is_immutable_literal(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_is_immutable_literal(item) for item in node.elts)
    return False


def check_source(
    source: str, allowed_globals: Iterable[str]
) -> tuple[ast.Module, tuple[MethodSignature, ...]]:
    """Parse and check ``source``; its tree and top-level function signatures, or CodeRejected.

    ``allowed_globals`` are the names available without binding them (sandbox builtins and the
    contract API), except :data:`IMPORT_ONLY_NAMES`, which resolve only once imported."""
    if len(source.encode("utf-8", "surrogatepass")) > SOURCE_BYTES_MAX:
        raise CodeRejected(f"contract source is larger than {SOURCE_BYTES_MAX} bytes")
    if "\x00" in source:
        raise CodeRejected("contract source contains a NUL character")
    try:
        tree = ast.parse(source, filename="<contract>", mode="exec")
    except SyntaxError as exc:
        raise CodeRejected(f"syntax error: {exc.msg}", exc.lineno) from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CodeRejected(f"source cannot be parsed: {type(exc).__name__}") from exc
    importable = frozenset(allowed_globals)
    allowed = importable - IMPORT_ONLY_NAMES
    checker = _Checker(importable)
    try:
        checker.visit(tree)
    except RecursionError as exc:
        raise CodeRejected("source nests too deeply") from exc
    for name in checker.loaded:
        if name.id not in checker.bound and name.id not in allowed:
            if name.id in IMPORT_ONLY_NAMES and name.id in importable:
                raise _refuse(
                    name,
                    f"name {name.id!r} is not available in contracts (Python's builtin differs "
                    f"between processes); for the chain's, write "
                    f"'from {API_MODULE} import {name.id}'",
                )
            raise _refuse(name, f"name {name.id!r} is not available in contracts")
    signatures = []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef):
            args = statement.args
            positional = [a.arg for a in [*args.posonlyargs, *args.args]]
            required = positional[: len(positional) - len(args.defaults)]
            required += [
                a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None
            ]
            params = tuple(positional + [a.arg for a in args.kwonlyargs])
            signatures.append(MethodSignature(statement.name, params, tuple(required)))
    names = [s.name for s in signatures]
    if len(set(names)) != len(names):
        raise CodeRejected("a function is defined twice at top level")
    return tree, tuple(signatures)


# -------------------------------------------------------------------------------- the compiler


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=_PREFIX + name, ctx=ast.Load()), args=list(args), keywords=[])


def _step_statement() -> ast.Expr:
    return ast.Expr(_call("step"))


_GUARDED_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "add",
    ast.Mult: "mul",
    ast.Pow: "pow",
    ast.LShift: "lshift",
    ast.Mod: "mod",
}


class _Instrument(ast.NodeTransformer):
    def __init__(self) -> None:
        self.temporaries = 0

    def _temporary(self) -> str:
        self.temporaries += 1
        return f"{_PREFIX}t{self.temporaries}"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        return ast.Pass()  # the API names are already in the module's globals

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.returns = None
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            arg.annotation = None
        node.body = [
            _step_enter(),
            ast.Try(body=node.body, handlers=[], orelse=[], finalbody=[ast.Expr(_call("leave"))]),
        ]
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        self.generic_visit(node)
        if node.value is None:
            return ast.Pass()
        return ast.Assign(targets=[node.target], value=node.value)

    def visit_For(self, node: ast.For) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, _step_statement())
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, _step_statement())
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.ifs.insert(0, _call("step"))
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = _GUARDED_BINOPS.get(type(node.op))
        if guard is None:
            return node
        return _call(guard, node.left, node.right)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        self.generic_visit(node)
        guard = _GUARDED_BINOPS.get(type(node.op))
        if guard is None:
            return node
        target = node.target
        if isinstance(target, ast.Name):
            load = ast.Name(id=target.id, ctx=ast.Load())
            return ast.Assign(targets=[target], value=_call("i" + guard, load, node.value))
        if not (isinstance(target, ast.Subscript)):
            raise InvariantBroken("the checker refuses attribute targets")
        holder, key = self._temporary(), self._temporary()
        current = ast.Subscript(
            value=ast.Name(id=holder, ctx=ast.Load()),
            slice=ast.Name(id=key, ctx=ast.Load()),
            ctx=ast.Load(),
        )
        return [
            ast.Assign(targets=[ast.Name(id=holder, ctx=ast.Store())], value=target.value),
            ast.Assign(targets=[ast.Name(id=key, ctx=ast.Store())], value=target.slice),
            ast.Assign(
                targets=[
                    ast.Subscript(
                        value=ast.Name(id=holder, ctx=ast.Load()),
                        slice=ast.Name(id=key, ctx=ast.Load()),
                        ctx=ast.Store(),
                    )
                ],
                value=_call("i" + guard, current, node.value),
            ),
        ]

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn):
            test = _call("contains", node.comparators[0], node.left)
            if isinstance(node.ops[0], ast.NotIn):
                return ast.UnaryOp(op=ast.Not(), operand=test)
            return test
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        # f"a{x}b" -> _pc_fstr("a", _pc_fmt(x), "b"): the length is checked before joining
        parts: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                parts.append(_call("fmt", self.visit(value.value)))
            else:
                parts.append(value)
        return _call("fstr", *parts)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute):
            return ast.Call(
                func=ast.Name(id=_PREFIX + "method", ctx=ast.Load()),
                args=[func.value, ast.Constant(func.attr), *node.args],
                keywords=node.keywords,
            )
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and isinstance(node.slice, ast.Slice):
            bound = node.slice
            none = ast.Constant(None)
            return _call(
                "slice", node.value, bound.lower or none, bound.upper or none, bound.step or none
            )
        return node

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        self.generic_visit(node)
        node.value = _call("items", node.value)
        return node

    def _sized_display(self, node: ast.List | ast.Tuple) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and any(isinstance(e, ast.Starred) for e in node.elts):
            return _call("sized", node)
        return node

    def visit_List(self, node: ast.List) -> ast.AST:
        return self._sized_display(node)

    def visit_Tuple(self, node: ast.Tuple) -> ast.AST:
        return self._sized_display(node)


def _step_enter() -> ast.Expr:
    return ast.Expr(_call("enter"))


def _is_literal(node: ast.expr, literals: set[str]) -> bool:
    """``node`` evaluates to the same value on every call: constants, names bound to such
    values earlier in the module, and lists, tuples, dicts, unary and binary operations of them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in literals
    if isinstance(node, ast.List | ast.Tuple):
        return all(not isinstance(e, ast.Starred) and _is_literal(e, literals) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k, literals) for k in node.keys) and all(
            _is_literal(v, literals) for v in node.values
        )
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand, literals)
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left, literals) and _is_literal(node.right, literals)
    return False


_HANDLE_FACTORIES = frozenset({"Map", "Variable"})


def _is_handle(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _HANDLE_FACTORIES
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def module_is_definitional(tree: ast.Module) -> bool:
    """True when the (checked) module body does the same thing on every run: it imports the API,
    defines functions whose defaults are literals, and binds single names to literals or to
    ``Map("name")`` / ``Variable("name")`` — no call, no state read, no ``context``. Conservative:
    anything else (e.g. ``X = Variable("x").get()``, ``A = B = []``) is False, and the runtime then
    runs the module body afresh for every call, as it always may."""
    literals: set[str] = set()
    bound: set[str] = set()
    for index, statement in enumerate(tree.body):
        if index == 0 and isinstance(statement, ast.Expr) and _is_str_constant(statement.value):
            continue
        if isinstance(statement, ast.ImportFrom):
            continue
        if isinstance(statement, ast.FunctionDef):
            args = statement.args
            defaults = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
            if not all(_is_literal(d, literals) for d in defaults):
                return False
            literals.discard(statement.name)
            bound.add(statement.name)
            continue
        value: ast.expr | None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign):
            targets, value = [statement.target], statement.value
        else:
            return False
        if value is None:
            continue  # an annotation only
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            return False
        name = targets[0].id
        if _is_literal(value, literals):
            literals.add(name)
        elif _is_handle(value):
            literals.discard(name)
        else:
            return False
        bound.add(name)
    return not bound & _HANDLE_FACTORIES


def compile_contract(source: str, allowed_globals: Iterable[str]) -> CheckedContract:
    """Check and instrument ``source``; the compiled module code (CodeRejected otherwise)."""
    tree, functions = check_source(source, allowed_globals)
    definitional = module_is_definitional(tree)
    try:
        instrumented = ast.fix_missing_locations(_Instrument().visit(tree))
        code = compile(instrumented, "<contract>", "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError, RecursionError) as exc:
        raise CodeRejected(f"contract does not compile: {type(exc).__name__}: {exc}") from exc
    return CheckedContract(code=code, functions=functions, definitional=definitional)


# ----------------------------------------------------------------------------------- the meter


class SandboxAbort(BaseException):  # noqa: N818 - an abort, not an error contract code handles
    """A bound was hit. A BaseException, so contract code (which may catch only the builtin
    Exception subclasses it can name) cannot catch it."""


class OutOfSteps(SandboxAbort):  # noqa: N818
    pass


class OutOfMemory(SandboxAbort):  # noqa: N818
    pass


class CallDepthExceeded(SandboxAbort):  # noqa: N818
    pass


class Meter:
    """One transaction's budgets. Sticky: after the first abort every step raises it again."""

    __slots__ = ("limits", "steps_left", "allocation_left", "depth", "aborted")

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.steps_left = limits.steps_max
        self.allocation_left = limits.allocation_bytes_max
        self.depth = 0
        self.aborted: SandboxAbort | None = None

    @property
    def steps_used(self) -> int:
        return self.limits.steps_max - max(self.steps_left, 0)

    def abort(self, error: SandboxAbort) -> SandboxAbort:
        if self.aborted is None:
            self.aborted = error
        self.steps_left = -1
        return self.aborted

    def _exhausted(self) -> SandboxAbort:
        if self.aborted is not None:
            return self.aborted
        return self.abort(OutOfSteps(f"step budget of {self.limits.steps_max} exhausted"))

    def step(self) -> bool:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise self._exhausted()
        return True

    def charge(self, steps: int) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise self._exhausted()

    def enter(self) -> None:
        if self.depth >= self.limits.call_depth_max:
            raise self.abort(
                CallDepthExceeded(
                    f"call depth over {self.limits.call_depth_max} (runaway recursion?)"
                )
            )
        self.steps_left -= 1
        if self.steps_left < 0:
            raise self._exhausted()
        self.depth += 1

    def leave(self) -> None:
        self.depth -= 1

    def allocate(self, size_bytes: int) -> None:
        self.allocation_left -= size_bytes
        if self.allocation_left < 0:
            raise self.abort(
                OutOfMemory(
                    f"allocation bound of {self.limits.allocation_bytes_max} bytes exceeded"
                )
            )

    def too_big(self, what: str) -> SandboxAbort:
        return self.abort(OutOfMemory(f"memory bound: {what}"))


# ---------------------------------------------------------------------------------- the guards

_SEQUENCES = (str, bytes, list, tuple)
_SIZED_BUILTINS = (str, bytes, list, tuple, dict, range)
_REFERENCE_BYTES = 8
_FORMATTABLE = (str, int, bool, type(None), bytes)
#: Methods whose result is an existing object or a small view (not charged as an allocation).
_ACCESSORS = frozenset(
    {"get", "pop", "popitem", "setdefault", "index", "count", "keys", "values", "items",
     "contains", "startswith", "endswith", "find", "rfind", "append", "insert", "remove",
     "set", "delete", "clear", "reverse", "sort"}
)  # fmt: skip


class Guards:
    """The functions the instrumentation calls (bound to one meter)."""

    __slots__ = ("meter", "limits")

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.limits = meter.limits

    def names(self) -> builtins.dict[str, Callable[..., Any]]:
        m = self.meter
        return {
            "_pc_step": m.step,
            "_pc_enter": m.enter,
            "_pc_leave": m.leave,
            "_pc_add": self.add,
            "_pc_iadd": self.iadd,
            "_pc_mul": self.mul,
            "_pc_imul": self.imul,
            "_pc_pow": self.pow,
            "_pc_ipow": self.pow,
            "_pc_lshift": self.lshift,
            "_pc_ilshift": self.lshift,
            "_pc_mod": self.mod,
            "_pc_imod": self.mod,
            "_pc_contains": self.contains,
            "_pc_fstr": self.fstr,
            "_pc_fmt": self.fmt,
            "_pc_method": self.method,
            "_pc_items": self.items,
            "_pc_sized": self.sized,
            "_pc_slice": self.slice,
        }

    # -- sizes

    def _check_length(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is bytes:
            if len(value) > self.limits.string_chars_max:
                raise self.meter.too_big(
                    f"{kind.__name__} of {len(value)} over {self.limits.string_chars_max}"
                )
            self.meter.allocate(len(value))
        elif kind is list or kind is tuple or kind is dict:
            if len(value) > self.limits.items_max:
                raise self.meter.too_big(
                    f"{kind.__name__} of {len(value)} items over {self.limits.items_max}"
                )
            self.meter.allocate(len(value) * _REFERENCE_BYTES)
        elif kind is int and value.bit_length() > self.limits.int_bits_max:
            raise self.meter.too_big(
                f"int of {value.bit_length()} bits over {self.limits.int_bits_max}"
            )
        return value

    def _precheck(self, kind: type, length: int) -> None:
        if kind is str or kind is bytes:
            if length > self.limits.string_chars_max:
                raise self.meter.too_big(
                    f"{kind.__name__} of {length} over {self.limits.string_chars_max}"
                )
        elif length > self.limits.items_max:
            raise self.meter.too_big(
                f"{kind.__name__} of {length} items over {self.limits.items_max}"
            )

    # -- operators

    def add(self, a: Any, b: Any) -> Any:
        result = a + b
        if type(result) is int and -(1 << 62) < result < (1 << 62):
            return result
        return self._check_length(result)

    def iadd(self, a: Any, b: Any) -> Any:
        if type(a) is list:
            extra = self.items(b)
            self._precheck(list, len(a) + len(extra))
            self.meter.allocate(len(extra) * _REFERENCE_BYTES)
            a += extra
            return a
        return self.add(a, b)

    def mul(self, a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if ta is int and tb is int:
            if a.bit_length() + b.bit_length() > self.limits.int_bits_max:
                raise self.meter.too_big("int product too large")
            return a * b
        if isinstance(b, _SEQUENCES) and isinstance(a, int):
            a, b = b, a
            ta, tb = tb, ta
        if isinstance(a, _SEQUENCES) and isinstance(b, int):
            self._precheck(ta, len(a) * max(b, 0))
            return self._check_length(a * b)
        return a * b

    def imul(self, a: Any, b: Any) -> Any:
        return self.mul(a, b)

    def pow(self, a: Any, b: Any) -> Any:
        if type(a) is not int or type(b) is not int:
            if isinstance(a, int) and isinstance(b, int):
                a, b = int(a), int(b)
            else:
                raise TypeError("** takes two ints in contracts")
        if b < 0:
            raise ValueError("negative exponents make floats; contracts use integers")
        if a not in (0, 1, -1) and max(a.bit_length() - 1, 1) * b > self.limits.int_bits_max:
            raise self.meter.too_big("int power too large")
        return a**b

    def lshift(self, a: Any, b: Any) -> Any:
        if (
            isinstance(a, int)
            and isinstance(b, int)
            and b > 0
            and a.bit_length() + b > self.limits.int_bits_max
        ):
            raise self.meter.too_big("int shift too large")
        return a << b

    def mod(self, a: Any, b: Any) -> Any:
        if isinstance(a, str | bytes):
            raise TypeError("%-formatting is not available in contracts; use f-strings")
        return a % b

    def contains(self, container: Any, item: Any) -> bool:
        kind = type(container)
        if kind is dict:
            self.meter.step()
            return item in container
        if kind in (list, tuple, str, bytes, range):
            self.meter.charge(1 + len(container) // 16 if kind is not range else 1)
            return item in container
        return item in self.items(container)

    def fstr(self, *parts: str) -> builtins.str:
        self._precheck(str, sum(len(part) for part in parts))
        return self._check_length("".join(parts))  # type: ignore[no-any-return]

    def fmt(self, value: Any) -> builtins.str:
        kind = type(value)
        if kind is str:
            return value  # type: ignore[no-any-return]
        if kind not in _FORMATTABLE:
            raise TypeError(
                f"f-strings format str, int, bool, bytes and None only, not {kind.__name__}"
            )
        return str(value)

    def items(self, value: Any) -> Any:
        """``value`` as a bounded sized sequence (iterators are consumed under the meter)."""
        kind = type(value)
        if kind in _SIZED_BUILTINS:
            self.meter.charge(1 + len(value) // 8)
            if kind is not str and kind is not bytes and kind is not range:
                self._precheck(list, len(value))
            return value
        out: list[Any] = []
        step = self.meter.step
        limit = self.limits.items_max
        for item in value:
            step()
            out.append(item)
            if len(out) > limit:
                raise self.meter.too_big(f"more than {limit} items")
        self.meter.allocate(len(out) * _REFERENCE_BYTES)
        return out

    def sized(self, value: Any) -> Any:
        return self._check_length(value)

    def slice(self, value: Any, lower: Any, upper: Any, step: Any) -> Any:
        return self._check_length(value[lower:upper:step])

    def method(self, target: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """``target.name(*args, **kwargs)`` (``name`` passed the checker): amplifiers are
        pre-checked, every result is size-checked and charged to the allocation budget."""
        if name in _ACCESSORS:  # the common case first (none of the amplifiers below is one)
            return getattr(target, name)(*args, **kwargs)
        if name == "join" and isinstance(target, str | bytes) and len(args) == 1 and not kwargs:
            parts = self.items(args[0])
            total = len(target) * max(len(parts) - 1, 0)
            for part in parts:
                total += len(part) if isinstance(part, str | bytes) else 0
            self._precheck(type(target), total)
            return self._check_length(target.join(parts))
        if name == "replace" and isinstance(target, str | bytes) and len(args) >= 2:
            old, new = args[0], args[1]
            if (
                isinstance(old, str | bytes)
                and isinstance(new, str | bytes)
                and len(new) > len(old)
            ):
                occurrences = len(target) + 1 if not old else len(target) // len(old)
                self._precheck(type(target), len(target) + occurrences * (len(new) - len(old)))
            return self._check_length(target.replace(*args, **kwargs))
        if name == "extend" and type(target) is list and len(args) == 1 and not kwargs:
            extra = self.items(args[0])
            self._precheck(list, len(target) + len(extra))
            self.meter.allocate(len(extra) * _REFERENCE_BYTES)
            target.extend(extra)
            return None
        if name == "update" and type(target) is dict and not kwargs and len(args) == 1:
            other = args[0] if type(args[0]) is dict else self.items(args[0])
            self._precheck(dict, len(target) + len(other))
            self.meter.charge(1 + len(other) // 8)
            target.update(other)
            return None
        # an accessor hands back an existing object (or a small view): nothing allocated (above)
        return self._check_length(getattr(target, name)(*args, **kwargs))


# ---------------------------------------------------------------------------------- builtins


class _BuiltinWrappers:
    """Consumers of iterables that charge steps by length and refuse oversized input."""

    def __init__(self, guards: Guards) -> None:
        self.g = guards
        # isinstance(x, str) must see the real type behind a wrapped constructor
        self.types: dict[Any, Any] = {
            self.list: list, self.tuple: tuple, self.dict: dict, self.bytes: bytes, self.str: str,
        }  # fmt: skip

    def isinstance(self, value: Any, kinds: Any) -> bool:
        if type(kinds) is tuple:
            real: builtins.tuple[Any, ...] = tuple(self.types.get(kind, kind) for kind in kinds)
            return isinstance(value, real)
        return isinstance(value, self.types.get(kinds, kinds))

    def list(self, value: Any = ()) -> builtins.list[Any]:
        return self.g.sized(list(self.g.items(value)))  # type: ignore[no-any-return]

    def tuple(self, value: Any = ()) -> builtins.tuple[Any, ...]:
        return self.g.sized(tuple(self.g.items(value)))  # type: ignore[no-any-return]

    def dict(self, value: Any = (), **kwargs: Any) -> builtins.dict[Any, Any]:
        source = value if isinstance(value, dict) else self.g.items(value)
        if isinstance(value, dict):
            self.g.items(value)
        return self.g.sized(dict(source, **kwargs))  # type: ignore[no-any-return]

    def sorted(self, value: Any, *, key: Any = None, reverse: bool = False) -> builtins.list[Any]:
        items = self.g.items(value)
        self.g.meter.charge(len(items).bit_length() * (1 + len(items) // 8))
        return self.g.sized(sorted(items, key=key, reverse=reverse))  # type: ignore[no-any-return]

    def sum(self, value: Any, start: int = 0) -> Any:
        total = start
        for item in self.g.items(value):
            total = self.g.add(total, item)
        return total

    def min(self, *args: Any, **kwargs: Any) -> Any:
        return min(self.g.items(args[0]) if len(args) == 1 else args, **kwargs)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        return max(self.g.items(args[0]) if len(args) == 1 else args, **kwargs)

    def any(self, value: Any) -> bool:
        return any(self.g.items(value))

    def all(self, value: Any) -> bool:
        return all(self.g.items(value))

    def bytes(self, value: Any = b"", *args: Any) -> builtins.bytes:
        if isinstance(value, int):
            self.g._precheck(bytes, value)
            return bytes(value)
        if not isinstance(value, str):
            value = self.g.items(value)
        return self.g.sized(bytes(value, *args))  # type: ignore[no-any-return]

    def str(self, value: Any = "", *args: Any) -> builtins.str:
        if type(value) not in _FORMATTABLE:
            raise TypeError(
                f"str() takes str, int, bool, bytes or None in contracts, not {type(value).__name__}"
            )
        return self.g.sized(str(value, *args))  # type: ignore[no-any-return]

    def pow(self, base: Any, exponent: Any) -> Any:
        return self.g.pow(base, exponent)


#: Builtins available unwrapped (they do bounded work on bounded input, or are lazy).
_PLAIN_BUILTINS: dict[str, Any] = {
    "abs": abs, "bool": bool, "int": int, "len": len,
    "divmod": divmod, "enumerate": enumerate, "zip": zip, "reversed": reversed, "range": range,
    "map": map, "filter": filter, "chr": chr, "ord": ord, "hex": hex, "bin": bin, "oct": oct,
    "Exception": Exception, "ValueError": ValueError, "KeyError": KeyError,
    "IndexError": IndexError, "TypeError": TypeError, "ZeroDivisionError": ZeroDivisionError,
    "ArithmeticError": ArithmeticError, "LookupError": LookupError, "AssertionError": AssertionError,
}  # fmt: skip
_WRAPPED_BUILTINS = (
    "isinstance",
    "list",
    "tuple",
    "dict",
    "sorted",
    "sum",
    "min",
    "max",
    "any",
    "all",
    "bytes",
    "str",
    "pow",
)
#: Every builtin name a contract may use.
BUILTIN_NAMES = (
    frozenset(_PLAIN_BUILTINS) | frozenset(_WRAPPED_BUILTINS) | {"True", "False", "None"}
)


def sandbox_builtins(guards: Guards) -> dict[str, Any]:
    """The ``__builtins__`` of one execution (wrappers bound to its meter)."""
    wrappers = _BuiltinWrappers(guards)
    table = dict(_PLAIN_BUILTINS)
    for name in _WRAPPED_BUILTINS:
        table[name] = getattr(wrappers, name)
    return table


_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def scrub_message(error: BaseException) -> str:
    """A deterministic, bounded message for ``error`` (it goes into a replicated receipt)."""
    if all(isinstance(arg, str | int | bytes | bool | type(None)) for arg in error.args):
        try:
            text = str(error)
        except Exception:  # noqa: BLE001 - a broken __str__ is contract code's problem
            text = ""
    else:
        text = ""
    text = _ADDRESS.sub("0x?", text)
    if len(text) > MESSAGE_CHARS_MAX:
        text = text[:MESSAGE_CHARS_MAX] + "…"
    name = type(error).__name__
    return f"{name}: {text}" if text else name

"""The escape suite: everything a contract might try to get out of the sandbox, grab more than
its budget, or behave differently on two nodes. Each attempt is refused at deploy
(CodeRejected) or fails at run time with a ContractError the ledger commits as a failed
transaction — never an exception that reaches the node. The chain-level test at the end checks
that failed transactions change no state and the next block still commits."""

from __future__ import annotations

from typing import Any

import pytest

from pilotchain.contracts.api import API_NAMES
from pilotchain.contracts.sandbox import BUILTIN_NAMES, CodeRejected, compile_contract
from pilotchain.ledger.execution import ContractError
from pilotchain.ledger.tx import RejectCode

from .harness import run
from .helpers import deploy, governed_chain

ALLOWED = BUILTIN_NAMES | frozenset(API_NAMES)

REFUSED_AT_DEPLOY = {
    # imports and the import machinery
    "import os": "import os\n",
    "from os": "from os import path\n",
    "from api module star": "from pilotchain.contracts.api import *\n",
    "import api module": "from pilotchain.contracts import api\n",
    "import sandbox": "from pilotchain.contracts.sandbox import Meter\n",
    "__import__": "def attack():\n    return __import__('os')\n",
    "import inside function": "def attack():\n    import time\n    return time.time()\n",
    # builtins that reach outside
    "eval": "def attack():\n    return eval('1')\n",
    "exec": "def attack():\n    exec('x = 1')\n",
    "compile": "def attack():\n    return compile('1', 'f', 'eval')\n",
    "open": "def attack():\n    return open('/etc/passwd').read()\n",
    "getattr": "def attack():\n    return getattr(1, 'real')\n",
    "setattr": "def attack():\n    setattr(attack, 'x', 1)\n",
    "globals": "def attack():\n    return globals()\n",
    "locals": "def attack():\n    return locals()\n",
    "vars": "def attack():\n    return vars()\n",
    "dir": "def attack():\n    return dir()\n",
    "type": "def attack():\n    return type(1)\n",
    "object": "def attack():\n    return object\n",
    "super": "def attack():\n    return super()\n",
    "print": "def attack():\n    print('hello')\n",
    "input": "def attack():\n    return input()\n",
    "breakpoint": "def attack():\n    breakpoint()\n",
    "memoryview": "def attack():\n    return memoryview(b'x')\n",
    "bytearray": "def attack():\n    return bytearray(10)\n",
    "iter/next": "def attack():\n    return next(iter([1]))\n",
    # dunder and attribute tricks
    "subclasses walk": "def attack():\n    return ().__class__.__bases__[0].__subclasses__()\n",
    "function globals": "def attack():\n    return attack.__globals__\n",
    "builtins name": "def attack():\n    return __builtins__\n",
    "dunder name": "def attack():\n    return __name__\n",
    "private attribute": "def attack():\n    return context._state\n",
    "bound method self": "def attack():\n    return emit.__self__\n",
    "int subclasses": "def attack():\n    return int.__subclasses__()\n",
    "mro": "def attack():\n    return str.mro()\n",
    "format attribute access": "def attack(x):\n    return '{0.__class__}'.format(x)\n",
    "format_map": "def attack(x):\n    return '{x.__class__}'.format_map({'x': x})\n",
    "attribute assignment": "def attack():\n    context.caller = 1\n",
    "attribute deletion": "def attack():\n    del context.caller\n",
    "instrumentation name": "def attack():\n    _pc_step = None\n",
    "meter reach": "def attack():\n    return _pc_enter\n",
    # frames, generators and tracebacks
    "generator": "def attack():\n    yield 1\n",
    "generator expression": "def attack():\n    return (x for x in [1])\n",
    "gi_frame": "def attack(g):\n    return g.gi_frame\n",
    "f_globals": "def attack(f):\n    return f.f_globals\n",
    "tb_frame": "def attack(e):\n    return e.tb_frame\n",
    "traceback dunder": "def attack():\n    try:\n        1 // 0\n    except ZeroDivisionError as e:\n        return e.__traceback__\n",
    "with_traceback": "def attack(e):\n    return e.with_traceback(None)\n",
    "bare except": "def attack():\n    try:\n        pass\n    except:\n        pass\n",
    # language features outside the subset
    "class": "class A:\n    pass\n",
    "lambda": "def attack():\n    return sorted([1], key=lambda x: x)\n",
    "global": "X = 1\ndef attack():\n    global X\n    X = 2\n",
    "nonlocal": "def attack():\n    x = 1\n    def inner():\n        nonlocal x\n        x = 2\n",
    "async": "async def attack():\n    pass\n",
    "with": "def attack(x):\n    with x:\n        pass\n",
    "decorator": "def deco(f):\n    return f\n@deco\ndef attack():\n    pass\n",
    "match": "def attack(x):\n    match x:\n        case 1:\n            return 1\n",
    "star args": "def attack(*args):\n    return args\n",
    "mutable default": "def attack(x=[]):\n    return x\n",
    "starred target": "def attack():\n    a, *b = [1, 2, 3]\n",
    "slice assignment": "def attack():\n    x = [1]\n    x[0:0] = x\n",
    "top-level loop": "for i in range(3):\n    pass\n",
    "top-level call": "attack()\n",
    # floats and nondeterminism
    "float literal": "def attack():\n    return 1.5\n",
    "true division": "def attack():\n    return 1 / 2\n",
    "complex": "def attack():\n    return 1j\n",
    "float builtin": "def attack():\n    return float('1')\n",
    "set literal": "def attack():\n    return {1, 2}\n",
    "set comprehension": "def attack():\n    return {x for x in [1]}\n",
    "set builtin": "def attack():\n    return set([1])\n",
    "frozenset": "def attack():\n    return frozenset()\n",
    "id": "def attack():\n    return id(attack)\n",
    "hash": "def attack():\n    return hash('a')\n",
    "time": "def attack():\n    return time.time()\n",
    "random": "def attack():\n    return random.random()\n",
    "f-string repr": "def attack(x):\n    return f'{x!r}'\n",
    "f-string width": "def attack(x):\n    return f'{x:>1000000000}'\n",
    "ljust": "def attack():\n    return 'x'.ljust(10**9)\n",
    "to_bytes": "def attack():\n    return (1).to_bytes(10**9, 'big')\n",
    "huge literal": f"def attack():\n    return {10**100}\n",
    "dict.fromkeys": "def attack():\n    return {}.fromkeys(range(10**9))\n",
    "int.from_bytes": "def attack():\n    return int.from_bytes(map(len, zip(range(10**12))), 'big')\n",
    "round with huge ndigits": "def attack():\n    return round(5, -10**9)\n",
    "syntax error": "def attack(:\n",
}


@pytest.mark.parametrize("source", REFUSED_AT_DEPLOY.values(), ids=REFUSED_AT_DEPLOY.keys())
def test_refused_at_deploy(source: str) -> None:
    with pytest.raises(CodeRejected):
        compile_contract(source, ALLOWED)


MARK = "marker = Variable('marker')\n"

FAILS_AT_RUN_TIME = {
    # budgets
    "infinite loop": ("while True:\n        pass", RejectCode.OUT_OF_STEPS),
    "huge range loop": ("for i in range(10**12):\n        pass", RejectCode.OUT_OF_STEPS),
    "sum of huge range": ("return sum(range(10**12))", RejectCode.OUT_OF_STEPS),
    "max of huge range": ("return max(range(10**12))", RejectCode.OUT_OF_STEPS),
    "comprehension": ("return len([x for x in range(10**12)])", RejectCode.OUT_OF_STEPS),
    "catch the budget": (
        "try:\n        while True:\n            pass\n    except Exception:\n        return 1",
        RejectCode.OUT_OF_STEPS,
    ),
    "loop in finally": (
        "try:\n        while True:\n            pass\n    finally:\n        while True:\n            pass",
        RejectCode.OUT_OF_STEPS,
    ),
    "recursion": ("return attack()", RejectCode.EXECUTION_FAILED),
    "recursion caught": (
        "try:\n        return attack()\n    except Exception:\n        return attack()",
        RejectCode.EXECUTION_FAILED,
    ),
    # memory
    "string times 10**10": ('return "x" * 10**10', RejectCode.EXECUTION_FAILED),
    "list times 10**9": ("return [0] * 10**9", RejectCode.EXECUTION_FAILED),
    "big int power": ("return 10**10**8", RejectCode.EXECUTION_FAILED),
    "big int shift": ("return 1 << 10**9", RejectCode.EXECUTION_FAILED),
    "string doubling": (
        'x = "ab"\n    while True:\n        x = x + x',
        RejectCode.EXECUTION_FAILED,
    ),
    "augmented doubling": (
        'x = "ab"\n    while True:\n        x += x',
        RejectCode.EXECUTION_FAILED,
    ),
    "list extend doubling": (
        "x = [1]\n    while True:\n        x.extend(x)",
        RejectCode.EXECUTION_FAILED,
    ),
    "list += doubling": ("x = [1]\n    while True:\n        x += x", RejectCode.EXECUTION_FAILED),
    "star doubling": (
        "x = [1]\n    while True:\n        x = [*x, *x]",
        RejectCode.EXECUTION_FAILED,
    ),
    "dict value doubling": (
        'd = {"k": "ab"}\n    while True:\n        d["k"] += d["k"]',
        RejectCode.EXECUTION_FAILED,
    ),
    "join amplification": ('return "".join(["x" * 1000000] * 1000)', RejectCode.EXECUTION_FAILED),
    "replace amplification": ('return "a".replace("", "x" * 1000000)', RejectCode.EXECUTION_FAILED),
    "bytes of 10**10": ("return bytes(10**10)", RejectCode.EXECUTION_FAILED),
    "list of huge range": ("return list(range(10**9))", RejectCode.OUT_OF_STEPS),
    "sorted huge range": ("return sorted(range(10**8))", RejectCode.OUT_OF_STEPS),
    "list of large range": ("return list(range(200_000 * 8 // 10))", RejectCode.EXECUTION_FAILED),
    "membership in lazy zip": ("return 5 in zip(range(10**12))", RejectCode.EXECUTION_FAILED),
    "allocation churn": (
        "x = []\n    for i in range(1000):\n        x.append('y' * 1000000)",
        RejectCode.EXECUTION_FAILED,
    ),
    "deep nesting stored": (
        "x = []\n    for i in range(1000):\n        x = [x]\n    marker.set(x)",
        RejectCode.EXECUTION_FAILED,
    ),
    "deep nesting compared": (
        "x = []\n    y = []\n    for i in range(20000):\n        x = [x]\n        y = [y]\n    return x == y",
        RejectCode.EXECUTION_FAILED,
    ),
    "huge int to str": ('return int("9" * 5000)', RejectCode.EXECUTION_FAILED),
    "dict update from a lazy iterable": (
        "d = {}\n    d.update(zip(range(10**12), range(10**12)))",
        RejectCode.EXECUTION_FAILED,
    ),
    "keeping method results": (
        's = "x" * 1000000\n    kept = []\n    while True:\n        kept.append(s.upper())',
        RejectCode.EXECUTION_FAILED,
    ),
    "keeping slices": (
        's = "x" * 1000000\n    kept = []\n    while True:\n        kept.append(s[1:])',
        RejectCode.EXECUTION_FAILED,
    ),
    "keeping splits": (
        's = "a " * 40000\n    kept = []\n    while True:\n        kept.append(s.split())',
        RejectCode.EXECUTION_FAILED,
    ),
    # floats and formatting at run time
    "negative power": ("return 2 ** -1", RejectCode.EXECUTION_FAILED),
    "percent formatting": ('return "%s" % 5', RejectCode.EXECUTION_FAILED),
    "str of a container": ("return str([1, 2])", RejectCode.EXECUTION_FAILED),
    "f-string of a container": ('return f"{[1, 2]}"', RejectCode.EXECUTION_FAILED),
    "float result": ("return sum([1]) // 1 == 1 and int('1.5')", RejectCode.EXECUTION_FAILED),
    # unencodable results and values
    "function result": ("return attack", RejectCode.EXECUTION_FAILED),
    "store a function": ("marker.set(attack)", RejectCode.EXECUTION_FAILED),
    "too-large state value": ('marker.set("x" * 300000)', RejectCode.BAD_ARGUMENTS),
    # plain exceptions
    "zero division": ("return 1 // 0", RejectCode.EXECUTION_FAILED),
    "key error": ("return {}['missing']", RejectCode.EXECUTION_FAILED),
    "calling gov": ('return call("gov", "propose", {})', RejectCode.PERMISSION_DENIED),
}


@pytest.mark.parametrize(("body", "code"), FAILS_AT_RUN_TIME.values(), ids=FAILS_AT_RUN_TIME.keys())
def test_fails_cleanly_at_run_time(body: str, code: RejectCode) -> None:
    source = (
        "from pilotchain.contracts.api import Variable, call\n"
        + MARK
        + "def attack():\n    marker.set(1)\n    "
        + body
        + "\n"
    )
    result, _state = run(source)
    assert isinstance(result, ContractError), f"expected a failure, got {result!r}"
    assert result.code == code, str(result)


def test_failure_messages_are_deterministic() -> None:
    source = "def attack():\n    raise ValueError(attack)\n"
    first, _ = run(source)
    second, _ = run(source)
    assert isinstance(first, ContractError) and isinstance(second, ContractError)
    assert str(first) == str(second)
    assert "0x" not in str(first).replace("0x?", "")
    source = "def attack():\n    return [1].index(attack)\n"
    first, _ = run(source)
    assert isinstance(first, ContractError)
    assert "0x7" not in str(first) and "0x5" not in str(first)


def test_dict_order_and_sorting_are_deterministic() -> None:
    source = (
        "def attack():\n"
        "    d = {}\n"
        "    for word in ['pear', 'apple', 'fig', 'kiwi']:\n"
        "        d[word] = len(word)\n"
        "    return [list(d), sorted(d)]\n"
    )
    result, _ = run(source)
    assert result == [["pear", "apple", "fig", "kiwi"], ["apple", "fig", "kiwi", "pear"]]


def test_budget_exhaustion_is_sticky_across_nested_handlers() -> None:
    source = (
        "def spin():\n"
        "    while True:\n"
        "        pass\n"
        "def attack():\n"
        "    for i in range(3):\n"
        "        try:\n"
        "            spin()\n"
        "        except Exception:\n"
        "            pass\n"
        "    return 'escaped'\n"
    )
    result, _ = run(source)
    assert isinstance(result, ContractError) and result.code == RejectCode.OUT_OF_STEPS


ATTACKS_ON_CHAIN = """
from pilotchain.contracts.api import Variable
marker = Variable("marker")

def spin():
    marker.set("spin")
    while True:
        pass

def recurse():
    marker.set("recurse")
    return recurse()

def allocate():
    marker.set("allocate")
    return "x" * 10**10

def raise_error():
    marker.set("raise")
    return {}["missing"]

def mark(value):
    marker.set(value)
    return value

def read():
    return marker.get()
"""


def test_failed_transactions_change_nothing_and_the_chain_goes_on() -> None:
    with governed_chain(orgs=2) as chain:
        deploy(chain, "attacks", ATTACKS_ON_CHAIN)
        client = chain.client()
        alice = chain.identity()
        assert client.invoke(alice, "attacks", "mark", {"value": "before"}).ok
        expected = {
            "spin": RejectCode.OUT_OF_STEPS,
            "recurse": RejectCode.EXECUTION_FAILED,
            "allocate": RejectCode.EXECUTION_FAILED,
            "raise_error": RejectCode.EXECUTION_FAILED,
        }
        for method, code in expected.items():
            height_before = chain.node.ledger.height
            result = client.invoke(alice, "attacks", method, None, check=False)
            assert result.committed and not result.ok
            assert result.status == code.value, result.receipt
            assert result.height == height_before + 1
            assert client.query("attacks", "read") == "before"
        after = client.invoke(alice, "attacks", "mark", {"value": "after"})
        assert after.ok and client.query("attacks", "read") == "after"


def _at_depth(frames: int, call: Any) -> Any:
    return call() if frames == 0 else _at_depth(frames - 1, call)


@pytest.mark.parametrize("nesting", [300, 600])
def test_deep_values_fail_or_succeed_the_same_at_any_host_stack_depth(nesting: int) -> None:
    source = (
        "def attack(n):\n"
        "    x = []\n"
        "    y = []\n"
        "    for i in range(n):\n"
        "        x = [x]\n"
        "        y = [y]\n"
        "    return x == y\n"
    )
    outcomes = set()
    for host_frames in (0, 150, 400):
        result, _ = _at_depth(host_frames, lambda: run(source, args={"n": nesting}))
        outcomes.add(
            result if not isinstance(result, ContractError) else (result.code, str(result))
        )
    assert len(outcomes) == 1, outcomes


def test_f_strings_are_length_checked_before_joining() -> None:
    parts = "{s}" * 2000
    source = f'def attack():\n    s = "x" * 1000000\n    return f"{parts}"\n'
    result, _ = run(source)
    assert isinstance(result, ContractError) and "memory bound" in str(result)


def test_a_state_key_the_store_cannot_hold_fails_the_transaction_not_the_chain() -> None:
    """Execution and the store agree on the longest key (namespace included): a contract writing a
    longer one gets a failed receipt; blocks keep coming (it used to stop the block producer)."""
    from tests.contracts.helpers import deploy, governed_chain

    source = 'm = Map("m")\n\ndef put(k):\n    m.set(k, 1)\n'
    with governed_chain(orgs=2) as chain:
        deploy(chain, "longkeys", source)
        client = chain.client()
        refused = client.invoke(chain.identity(), "longkeys", "put", {"k": "k" * 500}, check=False, timeout_s=15)
        assert refused.state == "committed" and refused.receipt is not None
        assert refused.receipt.status == "BAD_ARGUMENTS" and "state key longer than" in refused.receipt.message
        fits = client.invoke(chain.identity(), "longkeys", "put", {"k": "k" * 200}, check=False, timeout_s=15)
        assert fits.receipt is not None and fits.receipt.status == "OK"

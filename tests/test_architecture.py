"""ARCHITECTURE.md stays true to the code, and the modules form layers.

* Every test the race table cites as proof exists (``file.py::test``, read
  with ast; a parametrised ``test[case]`` names its function), and every C
  case it cites (``core_test `name` ``) is in the ``tests[]`` table of
  tests/c/core_test.c.
* Every place the table cites as "where handled" exists: ``file.py:name`` or
  ``file.py:Class.name`` defined in that module (ast), ``file.c:name`` present
  as a word in cysrc/file.c.
* Every aiocancel/ or cysrc/ path the document names exists.
* aiocancel's modules import each other without a circle (see
  `test_no_import_circle` for what counts).

The table's proof is run by the suite itself: these tests only make sure a
renamed or deleted test or function cannot leave the map pointing at nothing.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "ARCHITECTURE.md"
PACKAGE = ROOT / "aiocancel"
TESTS = ROOT / "tests"
CORE_TEST = TESTS / "c" / "core_test.c"

# A reference: an optional ``file.py:`` / ``dir/file.c:`` prefix, then a
# (dotted) name. Other code in backticks (``s->tid``, ``shutdown(...)``) is
# prose, not a reference.
_REF = re.compile(r"^(?:(?P<file>[\w/]+\.(?:py|c)):)?(?P<name>[A-Za-z_][\w.]*)$")
_TICKS = re.compile(r"`([^`]+)`")


def _race_rows() -> list[tuple[str, str, str]]:
    """(race, handled in, proved by) of each row of the "## Races" table."""
    text = DOC.read_text()
    section = text.split("\n## Races", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].startswith("Race ("):        # the header
            continue
        assert len(cells) == 3, f"a race row has three cells: {line}"
        rows.append((cells[0], cells[1], cells[2]))
    return rows


ROWS = _race_rows()


def _without_parentheses(text: str) -> str:
    """`text` without its parenthesised asides, which explain, not cite
    (parentheses inside backticks are code, and stay)."""
    out, depth, code = [], 0, False
    for ch in text:
        if ch == "`" and not depth:
            code = not code
        elif ch == "(" and not code:
            depth += 1
            continue
        elif ch == ")" and depth and not code:
            depth -= 1
            continue
        if not depth:
            out.append(ch)
    return "".join(out)


def _handled_refs(cell: str) -> list[tuple[str, str]]:
    """(file, name) cited in a "Handled in" cell. A bare name belongs to the
    file cited last; outside parentheses only."""
    refs, current = [], None
    for tick in _TICKS.findall(_without_parentheses(cell)):
        m = _REF.match(tick)
        if m is None:
            continue
        current = m["file"] or current
        assert current is not None, f"{tick!r} names no file: {cell}"
        refs.append((current, m["name"]))
    return refs


def _proofs(cell: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(pytest file, test) and C cases cited in a "Proved by" cell: groups
    are separated by ';'; a group starting with ``core_test`` lists C cases;
    ``::name`` belongs to the test file cited last."""
    tests, cases, current = [], [], None
    for group in cell.split(";"):
        ticks = _TICKS.findall(group)
        if group.strip().startswith("core_test"):
            cases.extend(ticks)
            continue
        for tick in ticks:
            path, sep, name = tick.partition("::")
            assert sep, f"a pytest proof is file.py::test: {tick!r}"
            current = path or current
            assert current is not None, f"{tick!r} names no file: {cell}"
            tests.append((current, name.split("[", 1)[0]))
    return tests, cases


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _test_names(path: Path) -> set[str]:
    """Test functions of a pytest module, module level and in Test classes."""
    names = set()
    for node in _tree(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{n.name}" for n in node.body
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
            names.update(n.name for n in node.body
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return {n for n in names if n.rsplit(".", 1)[-1].startswith("test")}


def _defined(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a module or class body defines: functions, classes, assignments."""
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
        elif isinstance(node, ast.If):                 # if hasattr(os, ...): ...
            out.update(_defined(node.body))
    return out


def _python_has(path: Path, dotted: str, context: str | None) -> bool:
    """Whether module `path` defines `dotted` (``name`` or ``Class.name``); a
    bare name may also be a member of `context`, the class cited before it
    in the same cell."""
    module = _defined(_tree(path).body)
    parts = dotted.split(".")
    if len(parts) == 1 and parts[0] not in module and context in module:
        cls = module[context]
        return isinstance(cls, ast.ClassDef) and parts[0] in _defined(cls.body)
    node: ast.AST | None = module.get(parts[0])
    for part in parts[1:]:
        if not isinstance(node, ast.ClassDef):
            return False
        node = _defined(node.body).get(part)
    return node is not None


def _source(file: str) -> Path:
    return (ROOT / "cysrc" / file) if file.endswith(".c") else (PACKAGE / file)


def test_the_race_table_is_there():
    assert len(ROWS) >= 10
    for race, handled, proved in ROWS:
        assert _handled_refs(handled), f"row cites no place: {race}"
        tests, cases = _proofs(proved)
        assert tests or cases, f"row cites no proof: {race}"


@pytest.mark.parametrize("race,handled,proved", ROWS, ids=[r[0][:40] for r in ROWS])
def test_every_cited_test_exists(race, handled, proved):
    tests, cases = _proofs(proved)
    for file, name in tests:
        path = TESTS / file
        assert path.is_file(), f"{race}: no tests/{file}"
        assert name in _test_names(path), f"{race}: no test {file}::{name}"
    if cases:
        table = CORE_TEST.read_text().split("} tests[] = {", 1)[1].split("};", 1)[0]
        listed = set(re.findall(r'\{\s*"(\w+)"', table))
        missing = set(cases) - listed
        assert not missing, f"{race}: not in core_test.c's tests[]: {sorted(missing)}"


@pytest.mark.parametrize("race,handled,proved", ROWS, ids=[r[0][:40] for r in ROWS])
def test_every_cited_place_exists(race, handled, proved):
    context = None
    for file, name in _handled_refs(handled):
        path = _source(file)
        assert path.is_file(), f"{race}: no {path.relative_to(ROOT)}"
        if file.endswith(".c"):
            assert re.search(rf"\b{re.escape(name)}\b", path.read_text()), (
                f"{race}: {name} not in {path.relative_to(ROOT)}")
            continue
        assert _python_has(path, name, context), (
            f"{race}: {file} defines no {name}")
        if "." in name:
            context = name.split(".", 1)[0]


def test_every_named_path_exists():
    text = DOC.read_text()
    paths = set(re.findall(r"\b((?:aiocancel|cysrc|asm|tests)/[\w/.<>*+-]*\w)", text))
    assert paths
    for path in sorted(paths):
        if any(ch in path for ch in "<>*"):
            continue                                  # a pattern, not a file
        assert (ROOT / path).exists(), f"ARCHITECTURE.md names {path}, which does not exist"


# ---- imports -------------------------------------------------------------------

def _modules() -> dict[str, Path]:
    """aiocancel's modules by dotted name (.py sources and .pyi stubs of the
    compiled ones, which import nothing of aiocancel at run time)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.setdefault(".".join(parts), path)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _imports(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth (functions
    included), except in ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append(child)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                found.extend(_imports(other))
        else:
            found.extend(_imports(child))
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
             modules: dict[str, Path]) -> set[str]:
    """The aiocancel modules an import statement in `module` loads by name."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source not in modules:
        return set()
    # ``from pkg import sub`` loads pkg.sub; ``from mod import name``, mod.
    return {f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
            for a in node.names}


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        is_package = path.stem == "__init__"
        edges: set[str] = set()
        if path.suffix == ".py":
            for node in _imports(_tree(path)):
                edges |= _targets(name, is_package, node, modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (its modules in order), or None."""
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_circle():
    """No module of aiocancel imports, directly or through others, one that
    imports it back.

    What counts: every import statement, module level or inside a function
    (a lazy import that closes a circle still means a lower layer knows an
    upper one; none is needed today). What does not: ``if TYPE_CHECKING:``
    imports, which never run; a submodule's implicit import of its parent
    package (Python initialises the parent first, whatever the order); and
    ``importlib.import_module`` by computed name (anyio/_registry.py loading
    the backend it is asked for)."""
    graph = _import_graph()
    assert "aiocancel._outcome" in graph and "aiocancel.anyio._pool" in graph
    assert "aiocancel._job" in graph["aiocancel._asyncio"]     # the graph is read
    circle = _circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_circle_finder_finds_one():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None

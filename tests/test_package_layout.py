"""The package's layout rules: no import cycle inside specgan_jax (function-local imports
counted), imports run one way between the layers, and modules stay small."""

import ast
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "specgan_jax")
# Layers, lowest first; a module may import from its own layer and the ones before it.
LAYERS = [{"config", "config_json", "errors", "atomic"}, {"data", "engine", "audio"}, {"run"},
          {"evaluation"}, {"training"}, {"cli", "benchmark"}]
MAX_LINES = 400
# Size hides inside a module's functions too: a function this long is several steps that want
# names. No exceptions (an allow-list would go here, each entry with its reason).
MAX_FUNCTION_LINES = 100
ALLOWED_LONG_FUNCTIONS: dict[str, str] = {}


def modules() -> dict[str, str]:
    """dotted name -> path of every module of the package."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(ROOT))
                name = rel[:-3].replace(os.sep, ".")
                out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = \
                    os.path.join(folder, f)
    return out


def project_imports(path: str, known: set) -> list[tuple[str, bool]]:
    """(imported specgan_jax module, is function-local) for every import in the file."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` imports the module pkg.mod when it is one.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known
                     else node.module for a in node.names]
        else:
            continue
        out += [(n, id(node) not in top) for n in names if n.split(".")[0] == "specgan_jax"]
    return out


def graph() -> dict[str, set]:
    mods = modules()
    return {m: {n for n, _ in project_imports(p, set(mods))} & set(mods)
            for m, p in mods.items()}


def find_cycle(g: dict[str, set]):
    """A list of modules forming a cycle, or None (iterative DFS)."""
    state = {}
    for start in g:
        if start in state:
            continue
        stack = [(start, iter(sorted(g[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(g.get(nxt, ())))))
                path.append(nxt)
    return None


def test_cycle_finder_finds_a_function_local_cycle(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from specgan_jax import b\n")
    b.write_text("def f():\n    from specgan_jax.a import x\n")
    known = {"specgan_jax.a", "specgan_jax.b"}
    g = {"specgan_jax.a": {n for n, _ in project_imports(str(a), known)},
         "specgan_jax.b": {n for n, _ in project_imports(str(b), known)}}
    assert project_imports(str(b), known) == [("specgan_jax.a", True)]
    assert find_cycle(g) in (["specgan_jax.a", "specgan_jax.b", "specgan_jax.a"],
                             ["specgan_jax.b", "specgan_jax.a", "specgan_jax.b"])


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_function_local_imports_of_project_modules():
    mods = modules()
    local = [f"{m} imports {n}" for m, p in mods.items()
             for n, is_local in project_imports(p, set(mods)) if is_local]
    assert not local, local


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, names in enumerate(LAYERS) if part in names or not part)


def test_imports_run_one_way_between_layers():
    wrong = [f"{m} -> {n}" for m, deps in graph().items() for n in deps
             if m != "specgan_jax" and _layer(n) > _layer(m)]
    assert not wrong, wrong


def test_modules_are_small():
    big = {m: n for m, p in modules().items()
           if (n := sum(1 for _ in open(p, encoding="utf-8"))) > MAX_LINES}
    assert not big, big


def long_functions(path: str) -> dict[str, int]:
    """name -> lines (decorators excluded) of every function of the file over the cap."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    return {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES}


def test_long_function_finder(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def short():\n    return 1\n\n\ndef long():\n"
                 + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert long_functions(str(f)) == {"long": MAX_FUNCTION_LINES + 1}


def test_functions_are_short():
    roots = [ROOT] + [os.path.join(os.path.dirname(ROOT), d)
                      for d in ("specgan_torch_ref", "scripts")]
    long = {f"{os.path.relpath(os.path.join(d, f), os.path.dirname(ROOT))}:{name}": n
            for r in roots for d, _, fs in os.walk(r) for f in fs if f.endswith(".py")
            for name, n in long_functions(os.path.join(d, f)).items()}
    long = {k: v for k, v in long.items() if k not in ALLOWED_LONG_FUNCTIONS}
    assert not long, long

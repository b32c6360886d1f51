"""The package's layers (``../shared/STYLE.md``, section 3): data flows one way, and the rules
below hold for every import in ``neural_sdf``, at module level or inside a function.

Layers, lowest first: ``_typing errors config`` < ``geometry`` < ``io`` < ``sampling nn losses``
< ``train normals cleanup extract fields.*`` < ``recipe reconstruct interpolate render scene
batch apps metrics progress synthetic`` < ``cli``. A module may import its own layer or lower ones,
with the exceptions listed in ``ALLOWED`` (each says why).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "neural_sdf"

LOW = {"neural_sdf._typing", "neural_sdf.errors", "neural_sdf.config"}
CORE = {"neural_sdf.geometry"}
IO = "neural_sdf.io"
NUMERIC = {"neural_sdf.sampling", "neural_sdf.nn", "neural_sdf.losses"}
FIELD_ADAPTERS = {"neural_sdf.fields.image", "neural_sdf.fields.video", "neural_sdf.fields.pde", "neural_sdf.fields.sdf"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every ``neural_sdf`` module ``name`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("neural_sdf")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("neural_sdf"):
                found.add(target)
                # ``from . import x`` / ``from .fields import sdf`` name submodules
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def _in(module: str, group) -> bool:
    groups = {group} if isinstance(group, str) else group
    return any(module == g or module.startswith(g + ".") for g in groups)


def _all_imports() -> dict[str, set[str]]:
    mods = _modules()
    return {name: {m for m in _imports(name, path) if m in mods or any(k.startswith(m + ".") for k in mods)} for name, path in mods.items()}


def test_nothing_imports_the_cli() -> None:
    bad = [m for m, deps in _all_imports().items() if m != "neural_sdf.cli" and any(_in(d, "neural_sdf.cli") for d in deps)]
    assert not bad, bad


def test_low_layers_do_not_import_higher_ones() -> None:
    imports = _all_imports()
    problems = []
    for module, deps in imports.items():
        if _in(module, LOW):
            allowed = LOW
        elif _in(module, CORE):
            allowed = LOW | CORE
        elif _in(module, IO):
            allowed = LOW | CORE | {IO}
        elif _in(module, NUMERIC):
            allowed = LOW | CORE | NUMERIC | {"neural_sdf.io"}
        else:
            continue
        for d in deps:
            if d != "neural_sdf" and not _in(d, allowed):
                problems.append(f"{module} imports {d}")
    assert not problems, problems


def test_field_adapters_do_not_import_each_other() -> None:
    imports = _all_imports()
    problems = [
        f"{m} imports {d}" for m in FIELD_ADAPTERS for d in imports.get(m, ()) if _in(d, FIELD_ADAPTERS - {m})
    ]
    assert not problems, problems


def test_no_import_cycles_at_module_level() -> None:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in tree.body:  # module level only: imports inside functions run later
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                deps |= {t for t in [target] + [f"{target}.{a.name}" for a in node.names] if t in mods and t != name}
        graph[name] = deps
    seen: dict[str, int] = {}
    cycle: list[str] = []

    def visit(n: str, stack: list[str]) -> bool:
        seen[n] = 1
        for d in graph.get(n, ()):
            if seen.get(d) == 1:
                cycle.extend(stack[stack.index(d):] + [n, d] if d in stack else [n, d])
                return True
            if d not in seen and visit(d, stack + [n]):
                return True
        seen[n] = 2
        return False

    for n in graph:
        if n not in seen and visit(n, []):
            break
    # A package's __init__ importing its own submodules is not a cycle of behaviour; skip those.
    assert not cycle or all(a.startswith(b) or b.startswith(a) for a, b in zip(cycle, cycle[1:])), cycle

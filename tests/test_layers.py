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


# ----------------------------------------------------------------------------- named rules
SDF_FIELD = {"neural_sdf.fields.sdf", "neural_sdf.fields.fused_sdf", "neural_sdf.fields.far_field", "neural_sdf.fields.shape_space"}
"""The SDF field's modules: one adapter, split by topic (the fused step, the far field, shape spaces)."""

ADAPTER_FAMILIES = {
    "sdf": SDF_FIELD,
    "image": {"neural_sdf.fields.image"},
    "video": {"neural_sdf.fields.video"},
    "pde": {"neural_sdf.fields.pde"},
}


def test_every_field_module_belongs_to_one_adapter() -> None:
    fields = {m for m in _modules() if m.startswith("neural_sdf.fields.")}
    known = set().union(*ADAPTER_FAMILIES.values())
    assert fields == known, f"new field modules {sorted(fields - known)}: add them to an adapter in ADAPTER_FAMILIES"


def test_field_adapters_of_different_tasks_do_not_import_each_other() -> None:
    imports = _all_imports()
    problems = []
    for family, members in ADAPTER_FAMILIES.items():
        others = set().union(*(m for f, m in ADAPTER_FAMILIES.items() if f != family))
        problems += [f"{m} imports {d}" for m in members for d in imports.get(m, ()) if _in(d, others)]
    assert not problems, problems


def test_io_does_not_import_sampling_and_nn_does_not_import_fields() -> None:
    imports = _all_imports()
    problems = [f"{m} imports {d}" for m, deps in imports.items() if _in(m, IO) for d in deps if _in(d, "neural_sdf.sampling")]
    problems += [f"{m} imports {d}" for m, deps in imports.items() if _in(m, "neural_sdf.nn") for d in deps if _in(d, "neural_sdf.fields")]
    assert not problems, problems


def test_no_import_cycles_through_absolute_imports_either() -> None:
    # Module-level imports only, absolute ones included (``from neural_sdf.x import y``).
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in tree.body:
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            deps |= {t for t in targets if t in mods and t != name}
        graph[name] = deps
    state: dict[str, int] = {}

    def cycle_from(n: str, stack: list[str]) -> list[str]:
        state[n] = 1
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                loop = stack[stack.index(d):] + [n, d] if d in stack else [n, d]
                # A package's __init__ importing its own submodules is how packages are built.
                if not all(a.startswith(b) or b.startswith(a) for a, b in zip(loop, loop[1:])):
                    return loop
            elif d not in state:
                found = cycle_from(d, stack + [n])
                if found:
                    return found
        state[n] = 2
        return []

    for n in sorted(graph):
        if n not in state:
            loop = cycle_from(n, [])
            assert not loop, " -> ".join(loop)


# ----------------------------------------------------------------------------- public edges
REPO = PACKAGE.parent
EDGES = sorted([*(REPO / "viewer").glob("*.py"), *(REPO / "scripts").glob("*.py"), PACKAGE / "cli.py"])
"""Code outside the library (and the CLI, its edge): it uses the public API only."""


def _public_names(module: str) -> set[str]:
    import importlib

    mod = importlib.import_module(module)
    names = set(getattr(mod, "__all__", ()))
    path = getattr(mod, "__path__", None)
    if path:  # a package's public submodules
        names |= {p.stem for p in Path(path[0]).glob("*.py") if not p.stem.startswith("_")}
        names |= {p.name for p in Path(path[0]).iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names


def _edge_uses(path: Path) -> list[tuple[int, str, str]]:
    """``(line, module, name)`` of every ``neural_sdf`` module and name ``path`` imports or reaches
    through an attribute of an imported module (name ``""`` for a bare module import)."""
    tree = ast.parse(path.read_text())
    in_package = path.parent == PACKAGE
    aliases: dict[str, str] = {}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("neural_sdf"):
                    uses.append((node.lineno, a.name, ""))
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "neural_sdf"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and in_package:
                module = ".".join(["neural_sdf"] + ([module] if module else []))
            if module.startswith("neural_sdf"):
                for a in node.names:
                    uses.append((node.lineno, module, a.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            uses.append((node.lineno, aliases[node.value.id], node.attr))
    return uses


def test_edges_use_only_public_names() -> None:
    problems = []
    for path in EDGES:
        for line, module, name in _edge_uses(path):
            where = f"{path.relative_to(REPO)}:{line}"
            if any(part.startswith("_") for part in module.split(".")):
                problems.append(f"{where}: private module {module}")
            elif name.startswith("_") and not name.startswith("__"):
                problems.append(f"{where}: private name {module}.{name}")
            elif name and not name.startswith("__") and name not in _public_names(module):
                problems.append(f"{where}: {module}.{name} is not in {module}.__all__")
    assert not problems, problems

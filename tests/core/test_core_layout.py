"""Where things live, kept so by reading the sources (the standard library's ast, nothing imported):

- vdm's import graph, function-local imports included, has no cycle;
- a module of vdm imports a sibling inside a function only where that keeps start-up fast (LAZY, with why);
- no module of vdm imports the faces (tui, animations) or the command line above them (vdm_cli);
- the run directory's file and folder names are spelled in vdm/run.py alone;
- each shared constant is defined once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VDM = ROOT / "vdm"
# modules that import siblings inside functions on purpose: each loads torch only when asked
LAZY = {
    "run": "the monitor and the run list open runs without importing torch",
}
FACES = ("tui", "animations", "vdm_cli")
RUN_NAMES = ("metrics.jsonl", "config.json", "train.log", "latest.png", "latest.npy", "checkpoints", "samples", "step-")
CONSTANTS = ("MAX_T", "MAX_COUNT", "MAX_THREADS", "MAX_BATCH", "MAX_STEP", "ALPHA_MARGIN", "PREDICTIONS", "MODELS",
             "DATASETS", "SCHEDULES", "KINDS", "WEIGHTINGS", "PRECISIONS", "RESUME_MUST_MATCH", "UNIFORM_BPD",
             "SIGMA_DATA", "DEFAULT_T", "EVAL_SEED", "GAMMA_MIN", "GAMMA_MAX")


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(VDM.glob("*.py")) if p.stem != "__init__"}


def _imports(tree: ast.Module):
    """(module imported, at top level?) for every import in a module: 'vdm.x', 'tui.y', 'torch'..."""
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "vdm":  # from vdm import checkpoint as ckpt
                for a in node.names:
                    yield f"vdm.{a.name}", id(node) in top
            else:
                yield node.module, id(node) in top


def _sibling(name: str, modules) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "vdm" and len(parts) > 1 and parts[1] in modules else None


def test_the_core_has_no_import_cycle():
    mods = _modules()
    graph = {m: {s for name, _ in _imports(t) if (s := _sibling(name, mods)) and s != m} for m, t in mods.items()}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n] if n in path else [m, n]
                pytest.fail("import cycle in vdm: " + " -> ".join(cycle))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_function_local_imports_of_siblings_only_where_start_up_needs_them():
    mods = _modules()
    found = sorted(f"vdm/{m}.py imports {name} inside a function" for m, t in mods.items() if m not in LAZY
                   for name, at_top in _imports(t) if not at_top and _sibling(name, mods))
    assert not found, found


def test_no_core_module_imports_a_face_or_the_command_line():
    found = sorted(f"vdm/{m}.py imports {name}" for m, t in _modules().items()
                   for name, _ in _imports(t) if name.split(".")[0] in FACES)
    assert not found, found


def _code_strings(tree: ast.Module):
    """String constants that are not docstrings."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def _path_parts(tree: ast.Module):
    """The string constants joined into a path with / (Path / "samples"), whatever side they are on."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and isinstance(side.value, str):
                    yield side


def test_only_vdm_run_spells_the_run_layout():
    folders = [n for n in RUN_NAMES if "." not in n and not n.endswith("-")]  # checkpoints, samples
    files = [n for n in RUN_NAMES if n not in folders]  # metrics.jsonl, latest.png, step-, ...
    found = []
    for folder in ("vdm", "vdm_cli", "tui", "animations", "benchmarks"):
        for p in sorted((ROOT / folder).glob("*.py")):
            if p == VDM / "run.py":
                continue
            tree = ast.parse(p.read_text(), str(p))
            # prose (a message or help text naming a file for the reader, with spaces) is documentation, not layout
            hits = [n for n in _code_strings(tree) if " " not in n.value and any(f in n.value for f in files)]
            hits += [n for n in _path_parts(tree) if n.value in folders]
            hits += [n for n in _code_strings(tree) if any(n.value.startswith(f + "/") for f in folders)]
            found += [f"{p.relative_to(ROOT)}:{n.lineno} {n.value[:60]!r}" for n in hits]
    assert not found, sorted(set(found))


def test_each_shared_constant_is_defined_once():
    where: dict[str, list[str]] = {}
    for folder in ("vdm", "vdm_cli", "tui", "animations", "benchmarks"):
        for p in sorted((ROOT / folder).glob("*.py")):
            for node in ast.parse(p.read_text(), str(p)).body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name) and n.id in CONSTANTS:
                            where.setdefault(n.id, []).append(f"{p.relative_to(ROOT)}:{node.lineno}")
    twice = {k: v for k, v in where.items() if len(v) > 1}
    assert not twice, twice

"""The package layering (docs/development.md, "Layers"): imports run one way, from the edges to the core to the
foundations, so a newcomer can read the core without the edges and no package cycle can grow back.

Every import counts, a function's deferred ``from mqguard.x import y`` as much as a module's header."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mqguard"

# lowest first; a package may import packages of lower layers only (never its own layer's other packages)
LAYERS: Tuple[Tuple[str, ...], ...] = (
    ("base",),  # clock, runner, logging, telemetry, sd_notify, durations: knows nothing of MQ or AWS
    ("config",),  # the configuration's grammar and values
    ("aws", "efs"),  # the outside world's adapters that need no MQ knowledge
    ("mq", "history"),  # MQ's commands and files; the shared history (on the storage)
    ("supervisor",),  # the core: the machine, its judge, the loop and its steps
    ("serve", "cluster", "preflight"),  # edges: HTTP, control socket, hooks; the cluster view; host checks
    ("cli",),  # the commands, and `run`'s composition root (cli/run.py)
)
# what the edges may read of the core: its vocabulary and its published record, nothing of its workings
CORE_SURFACE = {"mqguard.supervisor.model", "mqguard.supervisor.snapshot", "mqguard.supervisor.worker"}
COMPOSITION_ROOT = "mqguard.cli.run"


def imports() -> Dict[str, Set[str]]:
    """Module name -> every mqguard module it imports (absolute imports; the code uses no relative ones)."""
    out: Dict[str, Set[str]] = defaultdict(set)
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                if node.module and node.module.startswith("mqguard."):
                    out[name].add(node.module)
                    out[name].update(f"{node.module}.{a.name}" for a in node.names
                                     if (PACKAGE.joinpath(*node.module.split(".")[1:], a.name + ".py")).exists())
            elif isinstance(node, ast.Import):
                out[name].update(a.name for a in node.names if a.name.startswith("mqguard."))
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def layer_of(package: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if package in names)


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == {p for layer in LAYERS for p in layer}, "a new package needs its place in LAYERS"


def wrong_way(graph: Dict[str, Set[str]]) -> List[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        src = package_of(module)
        if not src:
            continue  # mqguard/__init__.py, __main__.py: the entry points
        for target in sorted(targets):
            dst = package_of(target)
            if dst and dst != src and layer_of(dst) >= layer_of(src):
                wrong.append(f"{module} imports {target} ({src} is layer {layer_of(src)}, {dst} {layer_of(dst)})")
    return wrong


def package_cycles(graph: Dict[str, Set[str]]) -> List[str]:
    edges: Dict[str, Set[str]] = defaultdict(set)
    for module, targets in graph.items():
        for target in targets:
            a, b = package_of(module), package_of(target)
            if a and b and a != b:
                edges[a].add(b)

    def reachable(start: str) -> Set[str]:
        seen: Set[str] = set()
        todo = list(edges.get(start, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(edges.get(n, ()))
        return seen

    return sorted(f"{a} <-> {b}" for a in list(edges) for b in edges[a] if a in reachable(b))


def test_imports_run_down_the_layers_only() -> None:
    wrong = wrong_way(imports())
    assert not wrong, "\n".join(wrong)


def test_no_package_cycle() -> None:
    cycles = package_cycles(imports())
    assert not cycles, cycles


def test_the_edges_read_the_cores_vocabulary_not_its_workings() -> None:
    wrong = []
    for module, targets in sorted(imports().items()):
        if package_of(module) in ("supervisor", "") or module == COMPOSITION_ROOT:
            continue
        for target in sorted(targets):
            if target.startswith("mqguard.supervisor.") and target not in CORE_SURFACE:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "only cli/run.py builds the core; the rest reads " + ", ".join(sorted(CORE_SURFACE)) + \
        ":\n" + "\n".join(wrong)


def test_the_checks_see_what_this_layout_had_before() -> None:
    """The rules can fail: the two cycles of the first layout (base <-> config through build_runner, supervisor
    <-> serve through the telemetry and the HTTP endpoint's State) are caught."""
    before = {
        "mqguard.base.runner": {"mqguard.config"},
        "mqguard.config.values": {"mqguard.base.untrusted"},
        "mqguard.serve.http": {"mqguard.supervisor.machine"},
        "mqguard.supervisor.parts": {"mqguard.serve.telemetry"},
    }
    assert package_cycles(before) == ["base <-> config", "config <-> base", "serve <-> supervisor",
                                      "supervisor <-> serve"]
    assert [w.split(" (")[0] for w in wrong_way(before)] == [
        "mqguard.base.runner imports mqguard.config", "mqguard.supervisor.parts imports mqguard.serve.telemetry"]


def test_no_function_is_more_complex_than_radon_grade_c() -> None:
    """Issue 29: a function graded D (21+ paths) is split into pieces a reader can hold (effects.execute became a
    table of handlers; the switchover's refusals and the mount options' verdicts are functions of their own)."""
    from radon.complexity import cc_rank, cc_visit

    worst = []
    for f in sorted(PACKAGE.rglob("*.py")):
        for block in cc_visit(f.read_text(encoding="utf-8")):
            if cc_rank(block.complexity) not in "ABC":
                worst.append(f"{f.relative_to(ROOT)}:{block.lineno} {block.name} {cc_rank(block.complexity)} "
                             f"({block.complexity})")
    assert not worst, worst
    assert cc_rank(21) == "D", "the grade boundary this test relies on"

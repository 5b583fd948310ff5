"""The layout stays as docs/architecture.md describes it, and the doc stays what the code says.

Each rule reads the code with `ast` (tests/architecture_model.py), so a move that breaks one fails
here with the file and line to look at, not in review.
"""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path

import pytest
from architecture_map import DOC, flow_problems, render
from architecture_model import (
    MAX_MODULE_LINES,
    MAX_SERVICES_ROOT_MODULES,
    Project,
    describe_edge,
    import_cycles,
    layer_violations,
    load_project,
    oversized_modules,
    package_docstring_problems,
    services_root_modules,
)

REGENERATE = "run `.venv/bin/python tests/architecture_map.py --write` (or `make architecture`)"


def stale_diff(expected: str, actual: str, limit: int = 40) -> str:
    lines = difflib.unified_diff(
        actual.splitlines(), expected.splitlines(), "on disk", "generated", lineterm=""
    )
    return "\n".join(list(lines)[:limit])


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project()


def test_architecture_doc_is_current(project: Project) -> None:
    expected = render(project)
    doc = project.root / DOC
    actual = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if actual != expected:  # not `assert ==`: pytest's diff of the whole file would bury the command
        pytest.fail(f"{DOC} is stale: {REGENERATE}\n{stale_diff(expected, actual)}")


def test_flows_name_code_that_exists_and_connects(project: Project) -> None:
    problems = flow_problems(project)
    assert not problems, "Update FLOWS in tests/architecture_map.py:\n" + "\n".join(problems)


def test_no_import_cycles_between_modules(project: Project) -> None:
    """Type-only imports count: a cycle through TYPE_CHECKING still ties the two modules together."""
    cycles = import_cycles(project)
    report = [
        " -> ".join(cycle)
        + "\n"
        + "\n".join(f"    {describe_edge(project, a, b)}" for a, b in itertools.pairwise(cycle))
        for cycle in cycles
    ]
    assert not cycles, "Import cycles (pass a Protocol in instead of importing back):\n" + "\n".join(report)


def test_imports_point_down_the_layers(project: Project) -> None:
    """main -> services -> simple_agents -> data -> configs: never up (function-level imports too)."""
    violations = layer_violations(project)
    assert not violations, "Imports against the layering:\n" + "\n".join(violations)


def test_modules_stay_small(project: Project) -> None:
    oversized = oversized_modules(project)
    assert not oversized, f"Modules over {MAX_MODULE_LINES} lines (split by job):\n" + "\n".join(oversized)


def test_services_root_holds_few_modules(project: Project) -> None:
    modules = services_root_modules(project)
    assert len(modules) <= MAX_SERVICES_ROOT_MODULES, (
        f"{len(modules)} modules directly in services/ (at most {MAX_SERVICES_ROOT_MODULES}; "
        f"group them in a subpackage): {', '.join(modules)}"
    )


def test_every_package_says_what_it_is_for(project: Project) -> None:
    problems = package_docstring_problems(project)
    assert not problems, "Package docstrings:\n" + "\n".join(problems)


def test_the_checks_catch_a_planted_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The rules above pass vacuously if import resolution breaks; a small tree shows they bite."""
    files = {
        "configs/__init__.py": '"""Settings."""\n',
        "configs/config.py": "import typing\nif typing.TYPE_CHECKING:\n    from services.b import B\n",
        "services/__init__.py": '"""Two lines:\n\nnot one."""\n',
        "services/b.py": "def load():\n    from configs import config\n" + "x = 1\n" * MAX_MODULE_LINES,
        "services/chat/contract.py": "import typing\n"
        "class Ask(typing.Protocol):\n    def ask(self, q): ...\n",
        "services/chat/impl.py": "from . import contract\nclass Real:\n    def ask(self, q, k=1): ...\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    planted = load_project(tmp_path)
    assert import_cycles(planted) == [["configs.config", "services.b", "configs.config"]]
    assert "for type checking only" in describe_edge(planted, "configs.config", "services.b")
    assert "inside a function" in describe_edge(planted, "services.b", "configs.config")
    assert layer_violations(planted) == [
        "configs/config.py:3 imports services.b: configs must not import services"
    ]
    assert oversized_modules(planted) == [f"services/b.py: {MAX_MODULE_LINES + 2} lines"]
    assert package_docstring_problems(planted) == [
        "services/__init__.py: needs a one-line docstring saying what the package is for",
        "services/chat/ has no __init__.py",
    ]
    assert planted.contracts["services.chat.contract", "Ask"].implementations == [
        ("services.chat.impl", "Real")
    ]
    assert [i.target for i in planted.modules["services.chat.impl"].imports] == ["services.chat.contract"]

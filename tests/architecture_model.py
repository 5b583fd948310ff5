"""The project's code as `ast` sees it: modules, imports, contracts, and the layout rules they must keep.

tests/architecture_map.py renders docs/architecture.md from this model and tests/test_architecture.py
checks the rules on it. Nothing of the app is imported, so no settings, models or servers are needed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOTS = ("configs", "data", "services", "simple_agents")
TOP_MODULES = ("main",)
# Highest first; a module may import its own layer and the layers below it, never one above.
LAYERS = ("main", "services", "simple_agents", "data", "configs")
MAX_MODULE_LINES = 400
MAX_SERVICES_ROOT_MODULES = 10

Def = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Import:
    target: str  # a project module, e.g. "services.chat.contract"
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`
    in_function: bool


@dataclass
class Module:
    name: str  # "services.slack.bot"; a package's __init__.py is named after the package
    path: Path  # relative to the project root
    lines: int
    docstring: str | None
    defs: dict[str, Def]  # qualified name ("SlackBot._answer") -> its node
    imports: list[Import] = field(default_factory=list)
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (module, name)

    @property
    def package(self) -> str:
        """The package the module is in; a package's __init__.py and main.py are their own."""
        if self.path.name == "__init__.py" or "." not in self.name:
            return self.name
        return self.name.rsplit(".", 1)[0]


@dataclass
class Contract:
    """A Protocol or ABC: the seam between two layers."""

    module: str
    name: str
    kind: str
    node: ast.ClassDef
    implementations: list[tuple[str, str]] = field(default_factory=list)  # (module, class)
    users: list[str] = field(default_factory=list)


@dataclass
class Project:
    root: Path
    modules: dict[str, Module]
    packages: dict[str, Path]  # package name -> its directory (relative)
    contracts: dict[tuple[str, str], Contract] = field(default_factory=dict)  # (module, class) -> it

    def where(self, qualname: str) -> list[str]:
        return sorted(name for name, module in self.modules.items() if qualname in module.defs)


def first_line(text: str | None) -> str:
    """A docstring's summary: its first paragraph on one line (wrapped first lines stop mid-sentence)."""
    paragraph = (text or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def module_name(path: Path) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_project(root: Path = ROOT) -> Project:
    """Parse every project module under `root` (configs/, data/, services/, simple_agents/, main.py)."""
    paths = [
        p.relative_to(root) for r in PACKAGE_ROOTS if (root / r).is_dir() for p in (root / r).rglob("*.py")
    ]
    paths += [Path(f"{m}.py") for m in TOP_MODULES if (root / f"{m}.py").is_file()]
    modules: dict[str, Module] = {}
    trees: dict[str, ast.Module] = {}
    for path in sorted(p for p in paths if "__pycache__" not in p.parts):
        text = (root / path).read_text(encoding="utf-8")
        name = module_name(path)
        trees[name] = tree = ast.parse(text, filename=str(path))
        modules[name] = Module(name, path, len(text.splitlines()), ast.get_docstring(tree), dict(_defs(tree)))
    packages = {module_name(p.parent / "__init__.py"): p.parent for p in paths if p.parent != Path(".")}
    project = Project(root, modules, dict(sorted(packages.items())))
    for name, tree in trees.items():
        _collect_imports(project, modules[name], tree.body, type_only=False, in_function=False)
    _find_contracts(project)
    return project


def _statements(node: ast.AST) -> list[ast.AST]:
    """The nested statements (and except/match clauses) of `node`: where definitions and imports hide."""
    return [n for n in ast.iter_child_nodes(node) if not isinstance(n, ast.expr)]


def _defs(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, Def]]:
    """Classes and functions by qualified name, nested ones too ("make_search_tool.search_docs")."""
    for child in _statements(node):
        if isinstance(child, Def):
            yield prefix + child.name, child
            yield from _defs(child, f"{prefix}{child.name}.")
        else:
            yield from _defs(child, prefix)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _collect_imports(
    project: Project, module: Module, body: Sequence[ast.AST], *, type_only: bool, in_function: bool
) -> None:
    """Record imports of project modules at any depth: top level, in functions, under TYPE_CHECKING."""
    known = project.modules
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                prefixes = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
                if (target := next((p for p in prefixes if p in known), None)) is not None:
                    module.imports.append(Import(target, node.lineno, type_only, in_function))
        elif isinstance(node, ast.ImportFrom):
            anchor = module.package.rsplit(".", node.level - 1)[0] if node.level else ""
            base = ".".join(part for part in (anchor, node.module) if part)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    module.imports.append(Import(f"{base}.{alias.name}", node.lineno, type_only, in_function))
                elif base in known:
                    module.imports.append(Import(base, node.lineno, type_only, in_function))
                    module.bindings[alias.asname or alias.name] = (base, alias.name)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            _collect_imports(project, module, node.body, type_only=True, in_function=in_function)
            _collect_imports(project, module, node.orelse, type_only=type_only, in_function=in_function)
        else:
            inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            _collect_imports(project, module, _statements(node), type_only=type_only, in_function=inside)


def origin(project: Project, module: str, name: str) -> tuple[str, str]:
    """Where `name`, as seen in `module`, is defined (following re-exports)."""
    seen = set()
    while name not in project.modules[module].defs and name in project.modules[module].bindings:
        if (module, name) in seen:
            break
        seen.add((module, name))
        module, name = project.modules[module].bindings[name]
    return module, name


# --- Contracts -----------------------------------------------------------------------------------------


def _contract_kind(node: ast.ClassDef) -> str | None:
    bases = [ast.unparse(b.value if isinstance(b, ast.Subscript) else b) for b in node.bases]
    if any(b.rsplit(".", 1)[-1] == "Protocol" for b in bases):
        return "Protocol"
    metaclass = [ast.unparse(k.value) for k in node.keywords if k.arg == "metaclass"]
    if any(b.rsplit(".", 1)[-1] == "ABC" for b in bases) or any(m.endswith("ABCMeta") for m in metaclass):
        return "ABC"
    return None


def _class_chain(project: Project, module: str, cls: ast.ClassDef) -> list[tuple[str, ast.ClassDef]]:
    """`cls` and its project base classes, nearest first (library bases are not followed)."""
    chain = [(module, cls)]
    for base in cls.bases:
        name = ast.unparse(base.value if isinstance(base, ast.Subscript) else base)
        if "." not in name:
            where, found = origin(project, module, name)
            node = project.modules[where].defs.get(found)
            if isinstance(node, ast.ClassDef) and node is not cls:
                chain += _class_chain(project, where, node)
    return chain


Method = ast.FunctionDef | ast.AsyncFunctionDef


def _is_public(name: str) -> bool:
    """Part of a contract: public names and protocol dunders like `__call__` (not `__init__`)."""
    dunder = name.startswith("__") and name.endswith("__")
    return not name.startswith("_") or (dunder and name != "__init__")


def contract_members(
    project: Project, module: str, node: ast.ClassDef
) -> tuple[list[Method], list[ast.AnnAssign]]:
    """A contract's public methods and annotated attributes, inherited ones included."""
    methods: dict[str, Method] = {}
    attributes: dict[str, ast.AnnAssign] = {}
    for _, cls in reversed(_class_chain(project, module, node)):
        for n in cls.body:
            if isinstance(n, Method) and _is_public(n.name):
                methods[n.name] = n
            elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
                attributes[n.target.id] = n
    return list(methods.values()), list(attributes.values())


def _accepts(impl: ast.arguments, proto: ast.arguments) -> bool:
    """Whether a method with `impl`'s parameters can be called the way `proto` is declared."""
    proto_pos = [a.arg for a in [*proto.posonlyargs, *proto.args]][1:]
    impl_all = [*impl.posonlyargs, *impl.args]
    impl_pos = [a.arg for a in impl_all][1:]
    if impl.vararg is None and impl_pos[: len(proto_pos)] != proto_pos:
        return False
    if len(impl_all) - 1 - len(impl.defaults) > len(proto_pos):
        return False  # the implementation needs more positional arguments than callers pass
    proto_kw = {a.arg for a in proto.kwonlyargs}
    if impl.kwarg is None and not proto_kw <= {a.arg for a in impl.kwonlyargs} | set(impl_pos):
        return False
    required_kw = {
        a.arg for a, default in zip(impl.kwonlyargs, impl.kw_defaults, strict=True) if default is None
    }
    return required_kw <= proto_kw


def _provides(classes: list[ast.ClassDef], attribute: str) -> bool:
    """A class attribute, a property or method, or a `self.<attribute> = ...` in any method."""
    for child in (n for cls in classes for n in ast.walk(cls)):
        if isinstance(child, Method) and child.name == attribute:
            return True
        targets = child.targets if isinstance(child, ast.Assign) else []
        targets += [child.target] if isinstance(child, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id == attribute:
                return True
            if (
                isinstance(target, ast.Attribute)
                and target.attr == attribute
                and ast.unparse(target.value) == "self"
            ):
                return True
    return False


def _implements(project: Project, module: str, cls: ast.ClassDef, contract: Contract) -> bool:
    """Declared (the contract is a base) or structural: every method, with compatible parameters,
    and every attribute. A contract of attributes only is too weak a signal to match by name."""
    chain = _class_chain(project, module, cls)
    if any(node is contract.node for _, node in chain):
        return True
    methods, attributes = contract_members(project, contract.module, contract.node)
    own: dict[str, Method] = {}
    for _, node in reversed(chain):
        own.update({n.name: n for n in node.body if isinstance(n, Method)})
    classes = [node for _, node in chain]
    return (
        bool(methods)
        and all(m.name in own and _accepts(own[m.name].args, m.args) for m in methods)
        and all(_provides(classes, ast.unparse(a.target)) for a in attributes)
    )


def _find_contracts(project: Project) -> None:
    for module in project.modules.values():
        for qualname, node in module.defs.items():
            if isinstance(node, ast.ClassDef) and "." not in qualname and (kind := _contract_kind(node)):
                project.contracts[module.name, node.name] = Contract(module.name, node.name, kind, node)
    for contract in project.contracts.values():
        for module in project.modules.values():
            for qualname, node in module.defs.items():
                if (
                    isinstance(node, ast.ClassDef)
                    and (module.name, qualname) not in project.contracts
                    and _implements(project, module.name, node, contract)
                ):
                    contract.implementations.append((module.name, qualname))
            uses = any(
                origin(project, module.name, local) == (contract.module, contract.name)
                for local in module.bindings
            )
            if module.name != contract.module and uses:
                contract.users.append(module.name)


def package_edges(project: Project) -> dict[tuple[str, str], bool]:
    """(importer package, imported package) -> whether every such import is for type checking only."""
    edges: dict[tuple[str, str], bool] = {}
    for module in project.modules.values():
        for imp in module.imports:
            key = (module.package, project.modules[imp.target].package)
            if key[0] != key[1]:
                edges[key] = edges.get(key, True) and imp.type_only
    return dict(sorted(edges.items()))


# --- Layout checks (tests/test_architecture.py asserts each is empty) -------------------------------


def import_cycles(project: Project) -> list[list[str]]:
    """Each strongly connected group of modules, as one concrete cycle (first module repeated last)."""
    graph = {m.name: sorted({i.target for i in m.imports} - {m.name}) for m in project.modules.values()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while (top := stack.pop()) != node:
                group.add(top)
            if group:
                groups.append({*group, node})

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for group in groups:  # the shortest way from the group's first module back to itself
        start = min(group)
        paths = {start: [start]}
        queue = [start]
        cycle: list[str] = []
        while queue and not cycle:
            current = queue.pop(0)
            for nxt in graph[current]:
                if nxt == start:
                    cycle = [*paths[current], start]
                    break
                if nxt in group and nxt not in paths:
                    paths[nxt] = [*paths[current], nxt]
                    queue.append(nxt)
        cycles.append(cycle)
    return sorted(cycles)


def describe_edge(project: Project, source: str, target: str) -> str:
    """Where `source` imports `target`, and whether that import runs (a type-only one couples too)."""
    imports = [i for i in project.modules[source].imports if i.target == target]
    runtime = [i for i in imports if not i.type_only]
    how = (
        "for type checking only"
        if not runtime
        else "inside a function"
        if runtime[0].in_function
        else "at import"
    )
    return f"{project.modules[source].path}:{(runtime or imports)[0].line} imports {target} ({how})"


def layer(module: str) -> str:
    return module.split(".")[0]


def layer_violations(project: Project) -> list[str]:
    """Imports that point up the layers (see LAYERS)."""
    return [
        f"{m.path}:{i.line} imports {i.target}: {layer(m.name)} must not import {layer(i.target)}"
        for m in project.modules.values()
        for i in m.imports
        if LAYERS.index(layer(i.target)) < LAYERS.index(layer(m.name))
    ]


def oversized_modules(project: Project) -> list[str]:
    return [f"{m.path}: {m.lines} lines" for m in project.modules.values() if m.lines > MAX_MODULE_LINES]


def services_root_modules(project: Project) -> list[str]:
    return [
        m.name
        for m in project.modules.values()
        if m.path.parent == Path("services") and m.path.name != "__init__.py"
    ]


def package_docstring_problems(project: Project) -> list[str]:
    problems = []
    for package, directory in project.packages.items():
        module = project.modules.get(package)
        if module is None or module.path.name != "__init__.py":
            problems.append(f"{directory}/ has no __init__.py")
        elif not module.docstring or len(module.docstring.strip().splitlines()) != 1:
            problems.append(f"{module.path}: needs a one-line docstring saying what the package is for")
    return problems

"""rpcframe.bench and rpcframe.cli are tools on top of the public API, and the core ignores them."""

from __future__ import annotations

import ast
import pathlib

import pytest

import rpcframe

PACKAGE = pathlib.Path(rpcframe.__file__).parent
TOOLS = ("rpcframe.bench", "rpcframe.cli")
#: What the tools may import of rpcframe besides each other.
PUBLIC = {
    "rpcframe",
    "rpcframe.aio",
    "rpcframe.exceptions",
    "rpcframe.green",
    "rpcframe.notify",
    "rpcframe.notify.hooks",
    "rpcframe.rpc",
    "rpcframe.rpc.handles",
    "rpcframe.testing",
    "rpcframe.url",
}
#: Reached past the public API on purpose, with the reason.
KNOWN = {
    "rpcframe.notify.dispatcher": "PRIORITIES: the priorities an endpoint may have, not public",
    "rpcframe.rpc.dispatcher": "PING_METHOD: oslo's ping method name, public in oslo's module",
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(inside: bool) -> list[pathlib.Path]:
    """The modules of the tools (``inside``), or those of the rest of rpcframe."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        in_tools = any(name == tool or name.startswith(f"{tool}.") for tool in TOOLS)
        if in_tools == inside and name != "rpcframe.__main__":
            found.append(path)
    return found


def _imported(path: pathlib.Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name imported from it or None) for each rpcframe import of ``path``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if _is_module(submodule):
                    found.append((node.lineno, submodule, None))
                else:
                    found.append((node.lineno, node.module, alias.name))
    return [entry for entry in found if entry[1].split(".")[0] == "rpcframe"]


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of rpcframe (read from the files, not imported)."""
    where = PACKAGE.parent.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def _is_tool(module: str) -> bool:
    return any(module == tool or module.startswith(f"{tool}.") for tool in TOOLS)


@pytest.mark.parametrize("path", _modules(inside=True), ids=_module_name)
def test_a_tool_imports_only_public_names_of_rpcframe(path):
    wrong = [
        f"{path.name}:{line} {module}{f'.{name}' if name else ''}"
        for line, module, name in _imported(path)
        if not _is_tool(module)
        and (module not in PUBLIC | KNOWN.keys() or (name or "").startswith("_"))
    ]
    assert not wrong, wrong


@pytest.mark.parametrize("path", _modules(inside=True), ids=_module_name)
def test_a_tool_reaches_into_no_private_attribute(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wrong = [
        f"{path.name}:{node.lineno} .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert not wrong, wrong


def test_nothing_in_the_core_imports_the_tools():
    wrong = [
        f"{_module_name(path)}:{line} {module}"
        for path in _modules(inside=False)
        for line, module, _name in _imported(path)
        if _is_tool(module)
    ]
    assert not wrong, wrong

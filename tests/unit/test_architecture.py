"""The layout's rules, read from the source with `ast` (nothing is imported, so this stays fast).

- `responders` never imports `detector`: who is told and how stands on its own.
- `detector/domain/`, `detector/ruleset/` and the pure `responders` modules (escalation, messages,
  paging) decide without I/O: no asyncpg, no aiohttp, no store.
- asyncpg is imported only in `detector/store/` (all SQL) and `detector/service/` (wiring).
- Modules stay under about 400 lines and functions under about 60.

An import under `if TYPE_CHECKING:` counts like any other. A module that names `asyncpg.Pool` in
its annotations is still written against the driver: moving SQL into the store would leave it
behind, and the store's `Connection` alias exists so that nobody else has to name asyncpg.

Each rule reports `path:line: what`. A violation that is known and has a reason goes in
`ALLOWED`, keyed by rule and module; an entry that no longer matches anything fails too, so the
list only ever shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("detector", "responders")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class ImportRule:
    """Modules under `importers` (minus `exempt`) may not import anything under `forbidden`."""

    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()


IMPORT_RULES = [
    ImportRule("responders-stand-alone", importers=("responders",), forbidden=("detector",)),
    ImportRule(
        "pure-without-io",
        importers=(
            "detector.domain",
            "detector.ruleset",
            "responders.escalation",
            "responders.messages",
            "responders.paging",
            "responders.statuspage",
        ),
        forbidden=("asyncpg", "aiohttp", "detector.store"),
    ),
    ImportRule(
        "asyncpg-in-store-and-service-only",
        importers=PACKAGES,
        forbidden=("asyncpg",),
        exempt=("detector.store", "detector.service"),
    ),
]

RULE = {rule.name: rule for rule in IMPORT_RULES}

# (rule, module) -> why it is allowed; empty: code outside the store names the pool and the
# database's errors through `detector.store.connection`.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Violation:
    rule: str
    module: str
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} {self.what}"


@dataclass(frozen=True)
class Source:
    module: str
    path: str
    tree: ast.Module
    lines: int


def sources(root: Path) -> Iterator[Source]:
    """Every Python module of the shipped packages under `root`, parsed."""
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            relative = file.relative_to(root)
            parts = relative.with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            text = file.read_text(encoding="utf-8")
            tree = ast.parse(text, filename=str(relative))
            yield Source(module, relative.as_posix(), tree, len(text.splitlines()))


def imported_names(source: Source) -> Iterator[tuple[int, str]]:
    """(line, dotted name) for every import, wherever it sits (functions, TYPE_CHECKING).

    `from a import b` yields both `a` and `a.b`, since `b` may be a module.
    """
    is_package = source.path.endswith("__init__.py")
    package = (source.module if is_package else source.module.rpartition(".")[0]).split(".")
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def import_violations(root: Path, rule: ImportRule) -> list[Violation]:
    found: dict[tuple[str, int, str], Violation] = {}
    for source in sources(root):
        if not under(source.module, rule.importers) or under(source.module, rule.exempt):
            continue
        for line, name in imported_names(source):
            target = next((p for p in rule.forbidden if under(name, (p,))), None)
            if target is not None:
                key = (source.module, line, target)
                found.setdefault(
                    key, Violation(rule.name, source.module, source.path, line, f"imports {target}")
                )
    return list(found.values())


def size_violations(root: Path) -> list[Violation]:
    found = []
    for source in sources(root):
        if source.lines > MAX_MODULE_LINES:
            what = f"has {source.lines} lines (at most {MAX_MODULE_LINES})"
            found.append(Violation("module-size", source.module, source.path, 1, what))
        for node in ast.walk(source.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > MAX_FUNCTION_LINES:
                    what = f"{node.name}() has {length} lines (at most {MAX_FUNCTION_LINES})"
                    found.append(
                        Violation("function-size", source.module, source.path, start, what)
                    )
    return found


def not_allowed(violations: list[Violation]) -> list[str]:
    return [str(v) for v in violations if (v.rule, v.module) not in ALLOWED]


@pytest.mark.parametrize("rule", IMPORT_RULES, ids=lambda rule: rule.name)
def test_imports_follow_the_layout(rule: ImportRule) -> None:
    found = not_allowed(import_violations(ROOT, rule))
    assert not found, f"{rule.name}:\n" + "\n".join(found)


def test_modules_and_functions_stay_small() -> None:
    found = not_allowed(size_violations(ROOT))
    assert not found, "too long:\n" + "\n".join(found)


def test_every_allowed_violation_still_exists() -> None:
    """An entry whose violation is gone is removed, so the list only ever shrinks."""
    seen = {(v.rule, v.module) for rule in IMPORT_RULES for v in import_violations(ROOT, rule)}
    seen |= {(v.rule, v.module) for v in size_violations(ROOT)}
    fixed = sorted(set(ALLOWED) - seen)
    assert fixed == [], f"no longer violated, remove from ALLOWED: {fixed}"


class TestTheCheckerCatches:
    """The checks run on a tiny tree written here, so a checker that finds nothing fails."""

    @staticmethod
    def tree(tmp_path: Path, files: dict[str, str]) -> Path:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        for package in PACKAGES:
            (tmp_path / package).mkdir(exist_ok=True)
        return tmp_path

    @pytest.mark.parametrize(
        ("rule", "path", "text", "expected"),
        [
            pytest.param(
                RULE["responders-stand-alone"],
                "responders/paging.py",
                "import os\nfrom detector.domain.model import Signal\n",
                ["responders/paging.py:2: responders.paging imports detector"],
                id="responders importing detector",
            ),
            pytest.param(
                RULE["responders-stand-alone"],
                "responders/channels/__init__.py",
                "from .. import messages\nfrom ..paging import render_page\n",
                [],
                id="responders importing itself is fine",
            ),
            pytest.param(
                RULE["pure-without-io"],
                "detector/domain/muting.py",
                "from ..store.incidents import Connection\n",
                ["detector/domain/muting.py:1: detector.domain.muting imports detector.store"],
                id="domain importing the store relatively",
            ),
            pytest.param(
                RULE["pure-without-io"],
                "detector/domain/model.py",
                "from detector import store\n",
                ["detector/domain/model.py:1: detector.domain.model imports detector.store"],
                id="domain importing the store by its parent",
            ),
            pytest.param(
                RULE["pure-without-io"],
                "detector/ruleset/reload.py",
                "def load():\n    import aiohttp\n",
                ["detector/ruleset/reload.py:2: detector.ruleset.reload imports aiohttp"],
                id="ruleset importing aiohttp inside a function",
            ),
            pytest.param(
                RULE["asyncpg-in-store-and-service-only"],
                "detector/engine/cycle.py",
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncpg.pool\n",
                ["detector/engine/cycle.py:3: detector.engine.cycle imports asyncpg"],
                id="asyncpg for type checking only",
            ),
            pytest.param(
                RULE["asyncpg-in-store-and-service-only"],
                "detector/store/incidents.py",
                "import asyncpg\n",
                [],
                id="asyncpg in the store is fine",
            ),
        ],
    )
    def test_an_import_out_of_place(
        self, tmp_path: Path, rule: ImportRule, path: str, text: str, expected: list[str]
    ) -> None:
        root = self.tree(tmp_path, {path: text})
        assert [str(v) for v in import_violations(root, rule)] == expected

    def test_a_long_module_and_a_long_function(self, tmp_path: Path) -> None:
        body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
        long_function = f"@staticmethod\nasync def run():\n{body}"
        long_module = "\n" * MAX_MODULE_LINES + "x = 1\n"
        root = self.tree(
            tmp_path, {"detector/engine/cycle.py": long_function, "responders/big.py": long_module}
        )
        assert [str(v) for v in size_violations(root)] == [
            "detector/engine/cycle.py:1: detector.engine.cycle run() has 62 lines (at most 60)",
            "responders/big.py:1: responders.big has 401 lines (at most 400)",
        ]

"""Read YAML while remembering the line of every key, so errors can say ``file:line``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem in one rule file, printed as ``file:line: field: reason``."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}"
        return (
            f"{location}: {self.field}: {self.reason}"
            if self.field
            else f"{location}: {self.reason}"
        )


@dataclass
class PositionedDocument:
    """A parsed YAML document with the line each path starts on."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """The line of ``path``, or of its closest ancestor that exists in the file."""
        for size in range(len(path), -1, -1):
            if path[:size] in self.lines:
                return self.lines[path[:size]]
        return 1


def parse(text: str) -> PositionedDocument:
    """Parse one YAML document; raise ``yaml.YAMLError`` on syntax errors."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    document = PositionedDocument(data=yaml.safe_load(text) if node is not None else None)
    if node is not None:
        document.lines[()] = node.start_mark.line + 1
        _walk(node, (), document)
    return document


def _walk(node: yaml.Node, path: Path, document: PositionedDocument) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                document.duplicates.append((child, key_node.start_mark.line + 1))
            seen.add(key)
            document.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, document)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            document.lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), document)

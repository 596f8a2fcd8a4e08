"""Load a YAML file into a pydantic model; errors name the file, the line and the key path.

Used for the report's input files (claims, prices), which people write by hand: a typo must
point at the line to fix, not just at the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

from harness.errors import UserInputError

M = TypeVar("M", bound=BaseModel)


def _line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the deepest node of `loc` that exists in the composed YAML tree."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            key = next((k for k, _ in node.value if getattr(k, "value", None) == str(part)), None)
            if match is None:
                return line
            node, line = match, key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _http_url(v: str) -> str:
    if not v.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return v


SourceURL = Annotated[str, AfterValidator(_http_url)]  # where a figure or price was read


def read_mapping(path: Path, what: str) -> tuple[dict, str]:
    """A YAML file whose top level is a mapping, and its text; errors name the file and the line."""
    if not path.is_file():
        raise UserInputError(f"{path}: no such {what} file")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserInputError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a mapping at the top level of the {what} file")
    return data, text


def load_yaml_model(path: Path, model: type[M], what: str) -> M:
    """Parse and validate `path`; UserInputError "file:line: key.path: message (got value)" on any problem."""
    data, text = read_mapping(path, what)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = tuple(e["loc"])
            line = _line_of(yaml.compose(text), loc)
            key = ".".join(str(p) for p in loc) or "(top level)"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            value = e.get("input")
            shown = "{...}" if isinstance(value, dict) else repr(value)
            lines.append(f"{path}:{line}: {key}: {msg} (got {shown})")
        raise UserInputError("\n".join(lines)) from None

"""Reading text input files made by other tools (samples, predictions, datasets) the way those tools
write them: gzip-compressed or not (told by the magic bytes, not the suffix), with or without a
UTF-8 byte-order mark. Any problem is a UserInputError naming the file and, where there is one, the
line, so a newcomer can open the file at the right place.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

from harness.errors import UserInputError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (whatever its name says)."""
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserInputError(f"{path}: cannot read ({e.strerror or e})") from None
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncated is EOFError
            raise UserInputError(f"{path}: not a valid gzip file ({e})") from None
    return data


def read_text(path: Path) -> str:
    """The file as UTF-8 text, without a leading byte-order mark (Windows editors write one)."""
    data = read_bytes(path)
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserInputError(not_utf8_message(path, data, e.start)) from None


def not_utf8_message(path: Path, data: bytes, offset: int) -> str:
    """`FILE:LINE: not UTF-8 (byte 0x.. at column N)` for the first bad byte at `offset`."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    # Everything before the first bad byte decodes, so the column counts characters as editors do.
    column = len(data[line_start:offset].decode("utf-8")) + 1
    return f"{path}:{line}: not UTF-8 (byte 0x{data[offset]:02x} at column {column})"


def read_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for every non-blank line of a JSON Lines file."""
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters that
    # splitlines() treats as line ends, and line numbers must match what editors show.
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except ValueError as e:
            raise UserInputError(f"{path}:{lineno}: not valid JSON ({e.args[0]})") from None


def read_json(path: Path) -> object:
    """A whole-file JSON document; a syntax error names its line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None


def is_json_name(path: Path) -> bool:
    """True for `x.json` and `x.json.gz` (a JSON document), False for JSON Lines and the rest."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.endswith(".json")

"""Turn the bytes of a CSV, JSON or YAML source file into records of text, each with its line.

The file source (``scimsync.sources.file``) decides what a record means; this module only
reads it, strictly: every YAML scalar stays text (``012345`` is not the number 5349),
a repeated column or key is refused, and a YAML alias is refused before anything is
built from it (no "billion laughs"). Problems are ``FormatError``s naming the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import json.decoder
import json.scanner
import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

DELIMITERS = (",", ";", "\t", "|")


class FormatError(Exception):
    """The file is not what a source file must be; ``where`` is "line N" or ""."""

    def __init__(self, where: str, cause: str) -> None:
        super().__init__(cause)
        self.where = where
        self.cause = cause


class Record(dict[str, Any]):
    """A mapping read from a JSON or YAML file, with the line it starts on."""

    def __init__(self, pairs: Iterable[tuple[str, Any]] = (), line: int = 0) -> None:
        super().__init__(pairs)
        self.line = line


def decode(data: bytes, encoding: str) -> str:
    """Return ``data`` as text; a UTF-8 byte order mark is accepted either way."""
    utf8 = codecs.lookup(encoding).name == "utf-8"
    try:
        text = data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        name = "UTF-8" if utf8 else encoding
        raise FormatError(
            f"line {line}", f"not {name} text (set source.encoding to the file's encoding, e.g. cp1252)"
        ) from None
    return text.removeprefix("\ufeff")


def _repeated(names: Iterable[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


# --- CSV -------------------------------------------------------------------------


def detect_delimiter(header_line: str) -> str:
    """Return the delimiter of ``DELIMITERS`` that splits the header into the most columns.

    A delimiter that leaves a quote inside a column name cuts through a quoted name
    (``"Name, full"`` split at the comma), so it counts only when no other fits.
    """

    def score(delimiter: str) -> tuple[bool, int]:
        try:
            names = next(csv.reader([header_line], delimiter=delimiter), [])
        except csv.Error:
            return False, 0  # a bare "\r" in the line (old Mac line ends): the reader below splits there
        return not any('"' in name for name in names), len(names)

    return max(DELIMITERS, key=score)  # the first of equals: a comma when nothing else fits


def csv_rows(text: str, delimiter: str | None) -> tuple[list[str], Iterator[tuple[str, dict[str, str]]]]:
    """Return the column names (stripped) and an iterator of ("line N", row) for ``text``.

    A column without a name (an export's trailing delimiter) is left out of both.
    """
    # The first line ends at "\r\n", "\n" or a lone "\r" (old Mac exports), as for the reader.
    delimiter = delimiter or detect_delimiter(re.split(r"\r\n?|\n", text, maxsplit=1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as exc:
        raise FormatError("line 1", f"invalid CSV: {exc}") from None
    if not any(header):
        raise FormatError("line 1", "no header line (the file is empty)")
    repeated = _repeated(name for name in header if name)
    if repeated is not None:
        raise FormatError("line 1", f"column '{repeated}' appears more than once")
    return [name for name in header if name], _rows(reader, header)


def _rows(reader: Any, header: list[str]) -> Iterator[tuple[str, dict[str, str]]]:
    last_good = reader.line_num
    try:
        for row in reader:
            last_good, where = reader.line_num, f"line {reader.line_num}"
            if not row:
                continue  # a blank line
            if len(row) > len(header):
                raise FormatError(where, "more values than columns")
            if len(row) < len(header):
                # A half-written export: guessing the rest could deprovision someone.
                raise FormatError(where, "fewer values than columns (a truncated file?)")
            yield where, {name: value for name, value in zip(header, row, strict=True) if name}
    except csv.Error as exc:
        # The bad record starts after the last good one (a quote left open runs to the end).
        raise FormatError(f"line {last_good + 1}", f"invalid CSV: {exc}") from None


# --- JSON ------------------------------------------------------------------------


class _LineCounter:
    """Line numbers of ascending offsets into one text, counted once overall."""

    def __init__(self) -> None:
        self.offset, self.line = 0, 1

    def at(self, text: str, offset: int) -> int:
        self.line += text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line


class _JsonDecoder(json.JSONDecoder):
    """Build every object as a ``Record`` with its line; refuse a repeated key."""

    def __init__(self) -> None:
        super().__init__()
        self._lines = _LineCounter()
        self.parse_object = self._object
        # The C scanner calls its own object parser; the Python one calls ours.
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]

    def _object(
        self,
        s_and_end: tuple[str, int],
        strict: bool,
        scan_once: Any,
        object_hook: Any,
        object_pairs_hook: Any,
        memo: dict[str, str],
    ) -> tuple[Record, int]:
        text, start = s_and_end
        line = self._lines.at(text, start)
        pairs, end = json.decoder.JSONObject(  # type: ignore[attr-defined]
            s_and_end, strict, scan_once, None, list, memo
        )
        repeated = _repeated(k for k, _ in pairs)
        if repeated is not None:
            raise FormatError(f"line {line}", f"key '{repeated}' appears more than once in one object")
        return Record(pairs, line), end


class _FallbackError(Exception):
    """The fast reading met something only the exact reading describes well."""


def _fast_record(pairs: list[tuple[str, Any]]) -> Record:
    if _repeated(k for k, _ in pairs) is not None:
        raise _FallbackError
    return Record(pairs)


def load_json(text: str, *, lines: bool = True) -> Any:
    """Parse ``text`` as JSON: objects become ``Record``s.

    ``lines=False`` reads with the C scanner and leaves every ``Record.line`` 0 (ten times
    faster); any problem is still reported by the exact reading, lines and all.
    """
    if not lines:
        try:
            return json.loads(text, object_pairs_hook=_fast_record)
        except (_FallbackError, ValueError, RecursionError):
            pass  # the exact reading below raises the error with its line
    try:
        return _JsonDecoder().decode(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise FormatError("", "invalid JSON: nested too deeply") from None


# --- YAML ------------------------------------------------------------------------

ALIASES_REFUSED = "YAML aliases are not allowed in a source file"


class _TextConstructor(yaml.constructor.BaseConstructor):
    """Every scalar is a string (no implicit int, float, bool, null or timestamp).

    Mappings become ``Record``s and refuse a repeated key.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            k = self.construct_object(key_node, deep=deep)
            if not isinstance(k, str):
                continue  # a list or mapping as a key: the base constructor refuses it
            if k in seen:
                raise FormatError(f"line {key_node.start_mark.line + 1}", f"key '{k}' appears more than once")
            seen.add(k)
        mapping = super().construct_mapping(node, deep=deep)  # every key a string here
        return Record(((str(k), v) for k, v in mapping.items()), node.start_mark.line + 1)


class _PyTextLoader(_TextConstructor, yaml.BaseLoader):
    """The pure-Python parser with the text constructor."""


if yaml.__with_libyaml__:

    class _CTextLoader(_TextConstructor, yaml.CBaseLoader):
        """libyaml's parser (several times faster; it caps nesting at 1000 levels itself)."""


_TextLoader: type[Any] = _CTextLoader if yaml.__with_libyaml__ else _PyTextLoader


def _refuse_aliases(root: yaml.Node) -> None:
    """Refuse a node reached twice: an alias, before anything is built from it.

    Composing keeps an alias as one shared node, so a "billion laughs" or a recursive
    alias is small here; only building it (or reading it) would explode or never end.
    """
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            raise FormatError(f"line {node.start_mark.line + 1}", ALIASES_REFUSED)
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in node.value for n in pair)


# Deeper than this, the exact reading decides (it may find the file nested too deeply).
_FAST_DEPTH = 64


def _from_events(loader: Any) -> Any:
    """Build what the exact reading builds, straight from the parser's events.

    Raise ``_FallbackError`` on an alias, a second document, a repeated or non-text key,
    or deep nesting: the exact reading then gives the answer or the error.
    """
    result: Any = None
    open_: list[Any] = []  # the lists and records being filled, innermost last
    keys: list[str | None] = []  # per open record, the key read and waiting for its value
    documents = 0
    while True:
        event = loader.get_event()
        kind = type(event)
        if kind is yaml.ScalarEvent:
            value = event.value
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if len(open_) >= _FAST_DEPTH:
                raise _FallbackError
            open_.append(Record(line=event.start_mark.line + 1) if kind is yaml.MappingStartEvent else [])
            keys.append(None)
            continue
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            value = open_.pop()
            keys.pop()
        elif kind is yaml.StreamEndEvent:
            return result
        elif kind is yaml.AliasEvent or (kind is yaml.DocumentStartEvent and documents):
            raise _FallbackError
        else:  # the stream's start, a document's start or end
            documents += kind is yaml.DocumentStartEvent
            continue
        if not open_:
            result = value
        elif type(open_[-1]) is list:
            open_[-1].append(value)
        elif keys[-1] is not None:
            open_[-1][keys[-1]] = value
            keys[-1] = None
        elif kind is yaml.ScalarEvent and value not in open_[-1]:
            keys[-1] = value
        else:
            raise _FallbackError  # a list or mapping as a key, or a repeated key


def load_yaml(text: str) -> Any:
    """Parse ``text`` as one YAML document of text scalars: mappings become ``Record``s.

    The fast reading builds the records from the parser's events; on anything unusual
    (an alias, a repeated or non-text key, an error) the exact reading, which composes
    the document's nodes first, gives the answer or the error.
    """
    loader = _TextLoader(text)
    try:
        return _from_events(loader)
    except (_FallbackError, yaml.YAMLError):
        pass
    finally:
        loader.dispose()
    return _load_yaml_exact(text)


def _load_yaml_exact(text: str) -> Any:
    loader = _TextLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _refuse_aliases(root)
        return loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else ""
        raise FormatError(where, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise FormatError("", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise FormatError("", "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def document_records(data: Any) -> Iterator[tuple[str, Any]]:
    """Yield ("line N", record) for a list of records or ``{users: [...]}``."""
    if isinstance(data, dict) and set(data) == {"users"}:
        data = data["users"]
    if not isinstance(data, list):
        raise FormatError("", "expected a list of user records, or {users: [...]}")
    for number, record in enumerate(data, start=1):
        if not isinstance(record, Record):
            raise FormatError(f"record {number}", "must be a mapping of field names to values")
        yield f"line {record.line}", record

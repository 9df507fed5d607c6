"""JSON Lines, the format every course file (splits, rejects, predictions) uses: writing it, and reading a learner's.

Files the course wrote are read back with :func:`read_jsonl`. A file a learner
hands to a command (``helpers.curate``, ``helpers.evaluate``) can hold
anything, so :func:`read_values` reads it by one set of rules, the same for
every command:

* text: UTF-8, with or without a byte-order mark; a UTF-16 file is refused
  whole, with the fix (save it as UTF-8);
* line ends: LF or CRLF; a file whose lines end in CR alone (classic Mac OS)
  is read with CR as its line end. A raw CR can never sit inside a JSON
  string, so this cannot split a row;
* layout: JSON Lines (one value a line, blank lines skipped) or one JSON
  array ``[{...}, {...}]``, each element keeping its line number;
* a line that is not UTF-8, is not JSON, is nested past what the parser takes
  or (as a row) is longer than :data:`MAX_LINE_CHARS` is a problem of that
  line, with its 1-based physical line number: the command decides whether
  that is a reject (curation) or an error (evaluation).

:func:`row_problem` then checks the fields every row needs. :data:`RULES`
words each problem for a message.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from helpers.atomic import atomic_file
from helpers.errors import CourseError
from helpers.paths import file_name

#: a line longer than this is refused before any rule runs on it: a row is a complaint of a few sentences, and
#: tokenizing, scrubbing and shingling a 10 MB line would take minutes and gigabytes for nothing
MAX_LINE_CHARS = 100_000
#: how much of an over-long line a reject keeps
KEPT_CHARS = 1_000
#: the fields every row needs, as non-blank strings
FIELDS = ("instruction", "response")

# A line that is JSON but beyond what the parser will take (a 5,000-digit number, 100,000 nested
# brackets) is as unreadable as a syntax error: a problem of that line, never a traceback.
PARSE_ERRORS = (json.JSONDecodeError, ValueError, RecursionError)

#: each problem in words, for a one-line message
RULES = {
    "not_utf8": "not valid UTF-8 text",
    "malformed_json": "not valid JSON",
    "line_too_long": f"longer than {MAX_LINE_CHARS:,} characters",
    "not_an_object": "a row must be a JSON object",
    **{f"missing_{key}": f"row has no '{key}' field" for key in FIELDS},
    **{f"non_string_{key}": f"'{key}' must be a string" for key in FIELDS},
    **{f"empty_{key}": f"'{key}' is blank" for key in FIELDS},
}


def write_jsonl(rows: Iterable[dict], path: Path) -> Path:
    """One JSON object per line, UTF-8 kept readable (no ``\\u`` escapes), written atomically; folders created."""
    path = Path(path)
    with atomic_file(path) as fh:  # a reader never sees half a file
        dump_rows(rows, fh)
    return path


def dump_rows(rows: Iterable[dict], fh) -> None:
    """Write ``rows`` as JSON Lines to an open text file (one of :func:`helpers.atomic.atomic_file`'s)."""
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON Lines file the course wrote (blank lines skipped).

    Split on "\\n" only: ``str.splitlines()`` also breaks on U+2028 and other
    separators that ``ensure_ascii=False`` leaves inside JSON strings.
    """
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def shipped_rows(path: Path, name: str):
    """``(line number, where, row)`` for each line of a JSON Lines file the course ships; a line that is not JSON stops the read.

    ``where`` is ``"<name>:<line>"``, for the caller's own field checks. For a learner's files, which may hold
    anything, use :func:`read_values`: it keeps reading past a bad line.
    """
    # split on "\n" only: str.splitlines() would also break inside a string at U+2028
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CourseError(f"{where}: not JSON ({exc.msg})") from None
        yield number, where, row


@dataclass
class Value:
    """One value of a learner's file: its 1-based physical line and text, and what it parsed to or its problem."""
    line: int
    raw: str
    value: object = None
    problem: str | None = None  # a key of RULES: not_utf8, malformed_json, line_too_long
    detail: str | None = None  # the parser's own words, for a message

    def message(self, name: str) -> str:
        """``file:line: rule (detail)``, the one-line error an evaluation gives for this value's problem."""
        return f"{name}:{self.line}: {RULES[self.problem]}" + (f" ({self.detail})" if self.detail else "")


def is_utf8(text: str) -> bool:
    """False for text holding undecodable bytes (surrogate escapes) or a lone surrogate such as ``"\\ud800"``."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def read_text(path: Path) -> str:
    """A learner's file as text by the module's rules: undecodable bytes kept as surrogate escapes, one line each."""
    path = Path(path)
    name = file_name(path)
    if not path.exists():
        raise CourseError(f"{name}: no such file")
    if path.is_dir():
        raise CourseError(f"{name}: is a directory, expected a .jsonl or .json file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CourseError(f"{name}: cannot be read ({exc.strerror})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CourseError(f"{name}: UTF-16 text; the course reads UTF-8 (save the file as UTF-8)")
    # Decode line by line in effect: one bad line is one problem, not a lost file.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if "\n" not in text and "\r" in text:
        text = text.replace("\r", "\n")  # CR-only line ends
    return text


def _kept(text: str) -> str:
    """What a problem keeps of its text: all of it, or the start of an over-long line."""
    return text if len(text) <= MAX_LINE_CHARS else text[:KEPT_CHARS]


def _checked(line: int, raw: str, value) -> Value:
    if len(raw) > MAX_LINE_CHARS:  # parsing it was quick; what the rules would do with it is not
        return Value(line, _kept(raw), problem="line_too_long", detail=f"{len(raw):,} characters")
    return Value(line, raw, value)


def _parse(text: str, line: int) -> Value:
    if not is_utf8(text):
        return Value(line, _kept(text), problem="not_utf8")
    try:
        value = json.loads(text)
    except PARSE_ERRORS as exc:
        return Value(line, _kept(text), problem="malformed_json", detail=_why(exc))
    return _checked(line, text, value)


def _why(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc).split(";")[0].split("\n")[0]


def _lines(text: str, first_line: int = 1) -> list[Value]:
    values = []
    # Split on "\n" only: str.splitlines() also splits on U+2028, form feeds and other
    # characters that may sit inside a JSON string, which would break rows and line numbers.
    for number, line in enumerate(text.split("\n"), start=first_line):
        line = line.removesuffix("\r")
        if line.strip():  # blank lines are not rows
            values.append(_parse(line, number))
    return values


def _looks_like_array_file(text: str) -> bool:
    """A JSON array file, as opposed to JSON Lines whose first row happens to be an array."""
    if not text.lstrip().startswith("["):
        return False
    try:
        return isinstance(json.loads(text), list)
    except PARSE_ERRORS:
        first = next(line for line in text.split("\n") if line.strip())
        try:
            json.loads(first)
            return False  # the first line is a complete value on its own: JSON Lines
        except PARSE_ERRORS:
            return True  # an array file with a broken element somewhere


def _array(text: str) -> list[Value]:
    """Parse ``[{...}, {...}]`` element by element, keeping each element's line.

    A broken element is a problem up to the end of its line and reading goes
    on with the next line, so one bad element costs one row, not the rest of
    the file. Anything after the closing bracket is read as JSON Lines.
    """
    decoder = json.JSONDecoder()
    values: list[Value] = []
    index = text.index("[") + 1
    line, counted = 1, 0  # line number of text[counted], kept as a running count (not recounted per element)
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        line += text.count("\n", counted, index)
        counted = index
        if index >= len(text):
            return values
        if text[index] == "]":
            rest = text[index + 1:]
            return values + (_lines(rest, first_line=line) if rest.strip() else [])
        try:
            obj, end = decoder.raw_decode(text, index)
        except PARSE_ERRORS as exc:
            end = text.find("\n", index)
            end = len(text) if end < 0 else end
            values.append(Value(line, _kept(text[index:end].strip()), problem="malformed_json", detail=_why(exc)))
            index = end
            continue
        raw = text[index:end]
        values.append(Value(line, _kept(raw), problem="not_utf8") if not is_utf8(raw) else _checked(line, raw, obj))
        index = end


def read_values(path: Path) -> list[Value]:
    """Every value of a learner's JSONL or JSON-array file, each with its line and its problem if it has one."""
    text = read_text(path)
    return _array(text) if _looks_like_array_file(text) else _lines(text)


def row_problem(obj) -> str | None:
    """The first rule a parsed row breaks (a key of :data:`RULES`), or None: an object with non-blank text fields."""
    if not isinstance(obj, dict):
        return "not_an_object"
    for key in FIELDS:
        if key not in obj:
            return f"missing_{key}"
        if not isinstance(obj[key], str):
            return f"non_string_{key}"
        if not obj[key].strip():
            return f"empty_{key}"
        if not is_utf8(obj[key]):  # a lone surrogate escape such as "\ud800": not text
            return "not_utf8"
    return None

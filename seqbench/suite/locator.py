"""Line numbers of keys in suite TOML text (tomllib gives none): best effort, for messages."""

from __future__ import annotations

import bisect
import contextlib
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KeyPath = tuple[str | int, ...]  # a key path: ("models", 0, "params", "hidden_size")

#: A key that needs no quotes in TOML (and in a rendered key path).
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class KeyLocator:
    """Line numbers of keys in TOML text: ``[x]``/``[[x]]`` headers (with occurrence counts),
    ``key =`` lines, keys inside inline tables and elements of arrays.

    Best effort: the text is known to be valid TOML (tomllib read it first); anything this
    small scanner does not follow just gives fewer line numbers.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self.offsets: dict[KeyPath, int] = {}  # where each key (or table header) starts
        with contextlib.suppress(IndexError, ValueError):  # best effort: keep what was found
            self._scan()
        starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.lines = {path: bisect.bisect_right(starts, at) for path, at in self.offsets.items()}

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest enclosing key or table, else None."""
        found = self.offset(path)
        return None if found is None else self.lines[found[1]]

    def offset(self, path: KeyPath) -> tuple[int, KeyPath] | None:
        """(character offset, path found) of ``path`` or its nearest enclosing key or table."""
        for n in range(len(path), 0, -1):
            found = self.offsets.get(tuple(path[:n]))
            if found is not None:
                return found, tuple(path[:n])
        return None

    # scanning ---------------------------------------------------------------------------

    def _record(self, path: KeyPath, pos: int) -> None:
        self.offsets.setdefault(path, pos)

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _skip(self, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            c = text[self._pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self._pos += 1
            elif c == "#":
                while self._pos < len(text) and text[self._pos] != "\n":
                    self._pos += 1
            else:
                return

    def _scan(self) -> None:
        text = self._text
        table: KeyPath = ()
        arrays: dict[KeyPath, int] = {}  # array-of-tables path → elements so far
        while True:
            self._skip(newlines=True)
            if self._pos >= len(text):
                return
            start = self._pos
            if text[self._pos] == "[":
                double = self._peek(2) == "[["
                self._pos += 2 if double else 1
                keys = self._key()
                self._pos += 2 if double else 1
                path: KeyPath = ()
                for key in keys[:-1]:
                    path += (key,)
                    if path in arrays:
                        path += (arrays[path] - 1,)
                path += (keys[-1],)
                if double:
                    arrays[path] = arrays.get(path, 0) + 1
                    self._record(path, start)
                    path += (arrays[path] - 1,)
                table = path
                self._record(table, start)
            else:
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(table + tuple(keys[:n]), start)
                self._skip(newlines=False)
                if self._peek() != "=":
                    raise ValueError("expected '='")
                self._pos += 1
                self._value(table + tuple(keys))

    def _key(self) -> list[str]:
        """A dotted key (bare, "basic" or 'literal' parts)."""
        text, keys = self._text, []
        while True:
            self._skip(newlines=False)
            c = text[self._pos]
            if c == '"':
                end = self._pos + 1
                while text[end] != '"':
                    end += 2 if text[end] == "\\" else 1
                keys.append(tomllib.loads(f"k = {text[self._pos : end + 1]}")["k"])
                self._pos = end + 1
            elif c == "'":
                end = text.index("'", self._pos + 1)
                keys.append(text[self._pos + 1 : end])
                self._pos = end + 1
            else:
                match = BARE_KEY.match(text, self._pos)
                if match is None:
                    raise ValueError("expected a key")
                keys.append(match.group())
                self._pos = match.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return keys
            self._pos += 1

    def _value(self, path: KeyPath) -> None:
        self._skip(newlines=False)
        text = self._text
        c = text[self._pos]
        if self._peek(3) in ('"""', "'''"):
            quote = self._peek(3)
            end = self._pos + 3
            while not text.startswith(quote, end):
                end += 2 if quote == '"""' and text[end] == "\\" else 1
            self._pos = end + 3
            while self._peek() == quote[0]:  # up to two quotes may end the content
                self._pos += 1
        elif c == '"':
            end = self._pos + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            self._pos = end + 1
        elif c == "'":
            self._pos = text.index("'", self._pos + 1) + 1
        elif c == "{":
            self._pos += 1
            while True:
                self._skip(newlines=True)
                if self._peek() == "}":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                start = self._pos
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(path + tuple(keys[:n]), start)
                self._skip(newlines=False)
                self._pos += 1  # '='
                self._value(path + tuple(keys))
        elif c == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if self._peek() == "]":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                self._record((*path, index), self._pos)
                self._value((*path, index))
                index += 1
        else:
            match = re.compile(r"[^,\]}\r\n#]*").match(text, self._pos)
            assert match is not None  # the pattern matches the empty string
            if match.end() == self._pos:
                raise ValueError("expected a value")
            self._pos = match.end()

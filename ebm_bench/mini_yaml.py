"""A small YAML reader for the suite's own config files, used only where PyYAML is absent.

The GPU check (:mod:`ebm_bench.gpu_check`) must run on a machine with nothing but torch,
torchvision, numpy and pandas, and PyYAML is not a dependency of any of them. This reads
the subset of YAML that ``config/*.yaml`` use: block mappings and sequences, flow
collections (``{a: 1, b: [x, y]}``, also over several lines), anchors and aliases
(``&name`` / ``*name``, merge keys ``<<: *name``), comments, quoted strings and PyYAML's (YAML 1.1) plain scalars:
null, booleans, ints, floats (``1.0e-4``; ``1e-4`` without a dot is a string, as in
PyYAML). tests/test_gpu_check.py checks it against ``yaml.safe_load`` on those files.
Anything else raises ``ValueError`` naming the line.
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$")
_SPECIAL = {"null": None, "~": None, "Null": None, "NULL": None, "true": True, "True": True, "TRUE": True,
            "false": False, "False": False, "FALSE": False, "yes": True, "no": False, "on": True, "off": False}


def load(text: str) -> Any:
    return _Parser(text).parse()


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def _scalar(tok: str) -> Any:
    tok = tok.strip()
    if len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "'\"":
        body = tok[1:-1]
        return body.replace("''", "'") if tok[0] == "'" else bytes(body, "utf-8").decode("unicode_escape")
    if tok in _SPECIAL:
        return _SPECIAL[tok]
    if tok == "":
        return None
    if _INT.match(tok):
        return int(tok.replace("_", ""))
    if _FLOAT.match(tok) and any(c.isdigit() for c in tok):
        return float(tok.replace("_", ""))
    if tok.lower() in (".inf", "+.inf"):
        return float("inf")
    if tok.lower() == "-.inf":
        return float("-inf")
    if tok.lower() == ".nan":
        return float("nan")
    return tok


class _Parser:
    def __init__(self, text: str):
        self.lines: list[tuple[int, int, str]] = []  # (line number, indent, content)
        for no, raw in enumerate(text.splitlines(), 1):
            if raw.strip() in ("---", "..."):
                continue
            line = _strip_comment(raw)
            if line.strip():
                self.lines.append((no, len(line) - len(line.lstrip(" ")), line.strip()))
        self.i = 0
        self.anchors: dict[str, Any] = {}

    def parse(self) -> Any:
        if not self.lines:
            return None
        out = self._block(self.lines[0][1])
        if self.i < len(self.lines):
            raise ValueError(f"line {self.lines[self.i][0]}: unexpected indentation")
        return out

    # --- block structures ------------------------------------------------------------
    def _block(self, indent: int) -> Any:
        if self.lines[self.i][2].startswith("- ") or self.lines[self.i][2] == "-":
            return self._seq(indent)
        return self._map(indent)

    def _map(self, indent: int) -> dict:
        out: dict = {}
        merged: dict = {}
        while self.i < len(self.lines):
            no, ind, content = self.lines[self.i]
            if ind < indent:
                break
            if ind > indent:
                raise ValueError(f"line {no}: unexpected indentation")
            key, rest = self._split_key(content, no)
            self.i += 1
            value = self._value(rest, indent, no)
            if key == "<<":  # merge key: the aliased mapping(s) supply defaults
                for m in value if isinstance(value, list) else [value]:
                    merged.update(m)
            else:
                out[key] = value
        return {**merged, **out} if merged else out

    def _seq(self, indent: int) -> list:
        out: list = []
        while self.i < len(self.lines):
            no, ind, content = self.lines[self.i]
            if ind < indent or not (content.startswith("- ") or content == "-"):
                if ind > indent:
                    raise ValueError(f"line {no}: unexpected indentation")
                break
            rest = content[1:].strip()
            if rest and not rest.startswith(("{", "[", "&", "*", "'", '"')) and self._is_key(rest):
                # "- key: value" opens a mapping whose keys sit at the item's indentation + 2
                self.lines[self.i] = (no, ind + 2, rest)
                out.append(self._map(ind + 2))
            else:
                self.i += 1
                out.append(self._value(rest, indent, no))
        return out

    @staticmethod
    def _is_key(s: str) -> bool:
        return bool(re.match(r"^[^\s'\"{}\[\],][^:]*:(\s|$)", s))

    def _split_key(self, content: str, no: int) -> tuple[Any, str]:
        m = re.match(r"^('[^']*'|\"[^\"]*\"|[^:{}\[\],][^:]*?):(?:\s+(.*)|$)", content)
        if not m:
            raise ValueError(f"line {no}: expected 'key: value', got {content!r}")
        return _scalar(m.group(1)), (m.group(2) or "").strip()

    def _value(self, rest: str, indent: int, no: int) -> Any:
        anchor = None
        if rest.startswith("&"):
            anchor, _, rest = rest[1:].partition(" ")
            rest = rest.strip()
        if rest == "":
            if self.i < len(self.lines) and (self.lines[self.i][1] > indent or (
                    self.lines[self.i][1] == indent and self.lines[self.i][2].startswith("- "))):
                value = self._block(self.lines[self.i][1])
            else:
                value = None
        elif rest.startswith(("{", "[")):
            text = rest
            while _depth(text) > 0:  # a flow collection continued on the next lines
                if self.i >= len(self.lines):
                    raise ValueError(f"line {no}: unclosed flow collection")
                text += " " + self.lines[self.i][2]
                self.i += 1
            value, end = self._flow(text, 0, no)
            if text[end:].strip():
                raise ValueError(f"line {no}: text after a flow collection: {text[end:]!r}")
        elif rest.startswith("*"):
            value = self._alias(rest[1:].strip(), no)
        elif rest[0] in "|>":
            raise ValueError(f"line {no}: block scalars are not supported")
        else:
            value = _scalar(rest)
        if anchor:
            self.anchors[anchor] = value
        return value

    def _alias(self, name: str, no: int) -> Any:
        if name not in self.anchors:
            raise ValueError(f"line {no}: unknown alias *{name}")
        return self.anchors[name]

    # --- flow collections --------------------------------------------------------------
    def _flow(self, s: str, i: int, no: int) -> tuple[Any, int]:
        i = _skip(s, i)
        if s[i] == "{":
            out: dict = {}
            merged: dict = {}
            i = _skip(s, i + 1)
            while s[i] != "}":
                key, i = self._flow_scalar(s, i, no, stop=":")
                if s[i] != ":":
                    raise ValueError(f"line {no}: expected ':' in {s!r}")
                value, i = self._flow(s, i + 1, no)
                if key == "<<":  # merge key inside a flow mapping
                    for m in value if isinstance(value, list) else [value]:
                        merged.update(m)
                else:
                    out[_scalar(key)] = value
                i = _skip(s, i)
                if s[i] == ",":
                    i = _skip(s, i + 1)
            return ({**merged, **out} if merged else out), i + 1
        if s[i] == "[":
            items: list = []
            i = _skip(s, i + 1)
            while s[i] != "]":
                value, i = self._flow(s, i, no)
                items.append(value)
                i = _skip(s, i)
                if s[i] == ",":
                    i = _skip(s, i + 1)
            return items, i + 1
        if s[i] == "*":
            name, i = self._flow_scalar(s, i + 1, no, stop="")
            return self._alias(name.strip(), no), i
        tok, i = self._flow_scalar(s, i, no, stop="")
        return _scalar(tok), i

    @staticmethod
    def _flow_scalar(s: str, i: int, no: int, stop: str) -> tuple[str, int]:
        i = _skip(s, i)
        if s[i] in "'\"":
            j = s.index(s[i], i + 1)
            return s[i:j + 1], _skip(s, j + 1)
        j = i
        while j < len(s) and s[j] not in ",}]" and not (s[j] == ":" and (stop == ":" or s[j + 1:j + 2] in (" ", ""))):
            j += 1
        return s[i:j].strip(), j


def _skip(s: str, i: int) -> int:
    while i < len(s) and s[i] == " ":
        i += 1
    return i


def _depth(s: str) -> int:
    d, quote = 0, None
    for ch in s:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "{[":
            d += 1
        elif ch in "}]":
            d -= 1
    return d

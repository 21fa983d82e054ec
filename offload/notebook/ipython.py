"""IPython syntax -> plain Python, as the kernel would run it, and a record of each magic.

A notebook cell may hold ``%magic`` lines, ``%%cell`` magics, ``!shell`` commands, ``x = !cmd``
captures and ``obj?`` help requests. :func:`transform_cell` rewrites each into the call IPython
itself makes (``get_ipython().run_line_magic('time', 'y = f(x)')``, ``get_ipython().system(...)``
...), so the result parses as Python and keeps the cell's line numbers, and lists them as
:class:`Magic` records for callers that care what they do (dependency detection reads ``%pip``
lines, ``%run`` files, ``%%writefile`` modules; the ``%%offload`` analysis reads ``%time``).

Only lines that start a logical line are escapes, as in IPython: a ``%`` or ``!`` line inside a
bracket or a triple-quoted string is code. Pure text work, no IPython import: this runs where
IPython may be absent (the client's CLI) and on thousands of cells (dependency detection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Magic", "TransformedCell", "transform_cell", "to_python"]

_ASSIGN = re.compile(r"^(\s*)([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*([!%])(.*)$")
_HELP = re.compile(r"^(?:([\w.\[\]()'\" ,]*?)\s*(\?\??)|(\?\??)\s*([\w.]+))$")


@dataclass(frozen=True)
class Magic:
    """One IPython escape found in a cell."""

    kind: str  # "line" (%name args) | "cell" (%%name args + body) | "shell" (!cmd) | "help" (x?)
    name: str  # the magic's name; "pinfo"/"pinfo2" for help; "" for shell commands
    args: str  # the argument text, the shell command, or the object asked about
    line: int  # 1-based line of the cell where it starts
    body: str = ""  # a cell magic's body
    target: str | None = None  # "x" in ``x = !cmd`` / ``x = %magic``
    capture: bool = False  # the shell output is captured (``!!cmd``, ``x = !cmd``)


@dataclass
class TransformedCell:
    python: str  # the cell as plain Python, same number of lines
    magics: list[Magic] = field(default_factory=list)


def to_python(source: str) -> str:
    """The cell as the plain Python IPython would run (magics become ``get_ipython()`` calls)."""
    return transform_cell(source).python


def transform_cell(source: str) -> TransformedCell:
    """The cell as plain Python, and every magic in it (see the module docstring)."""
    lines = source.splitlines()
    cell = _cell_magic(lines)
    if cell is not None:
        return cell
    out: list[str] = []
    magics: list[Magic] = []
    scanner = _Scanner()
    i = 0
    while i < len(lines):
        ln = lines[i]
        escape = scanner.at_statement_start() and _is_escape(ln)
        if not escape:
            scanner.feed(ln)
            out.append(ln)
            i += 1
            continue
        n = 1  # a magic or shell line continues over lines ending in a backslash
        while ln.rstrip().endswith("\\") and i + n < len(lines):
            ln = ln.rstrip()[:-1] + " " + lines[i + n].strip()
            n += 1
        python, magic = _escape(ln, i + 1)
        magics.append(magic)
        out.append(python)
        out.extend([""] * (n - 1))  # keep line numbers stable
        i += n
    return TransformedCell("\n".join(out), magics)


def _cell_magic(lines: list[str]) -> TransformedCell | None:
    """A cell whose first non-blank line is ``%%name args``: one ``run_cell_magic`` call."""
    for idx, ln in enumerate(lines):
        if not ln.strip():
            continue
        if not ln.lstrip().startswith("%%"):
            return None
        name, _, args = ln.strip()[2:].partition(" ")
        rest = lines[idx + 1 :]
        body = "\n".join(rest) + "\n" if rest else ""  # as IPython passes it: newline-ended
        magic = Magic("cell", name, args.strip(), idx + 1, body=body)
        call = f"get_ipython().run_cell_magic({name!r}, {args.strip()!r}, {body!r})"
        return TransformedCell("\n" * idx + call + "\n" * (len(lines) - idx - 1), [magic])
    return None


def _is_escape(ln: str) -> bool:
    stripped = ln.lstrip()
    if not stripped or stripped.startswith("#"):
        return False
    if stripped[0] in "!%":  # (a "%%name" below the first line is a line magic named "%name")
        return True
    return bool(_ASSIGN.match(ln)) or ("?" in stripped and bool(_HELP.match(stripped)))


def _escape(ln: str, line_no: int) -> tuple[str, Magic]:
    """(the Python for one escape line, its record)."""
    stripped = ln.lstrip()
    indent = ln[: len(ln) - len(stripped)]
    m = _ASSIGN.match(ln)
    if m:
        indent, target, sigil, rest = m.group(1), m.group(2), m.group(3), m.group(4).strip()
        if sigil == "!":
            magic = Magic("shell", "", rest, line_no, target=target, capture=True)
            return f"{indent}{target} = get_ipython().getoutput({rest!r})", magic
        name, _, args = rest.partition(" ")
        magic = Magic("line", name, args.strip(), line_no, target=target)
        return f"{indent}{target} = {_line_call(name, args.strip())}", magic
    if stripped.startswith("!"):
        capture = stripped.startswith("!!")
        cmd = stripped[2:] if capture else stripped[1:]
        magic = Magic("shell", "", cmd.strip(), line_no, capture=capture)
        fn = "getoutput" if capture else "system"
        return f"{indent}get_ipython().{fn}({cmd.rstrip()!r})", magic
    if stripped.startswith("%"):
        name, _, args = stripped[1:].partition(" ")
        magic = Magic("line", name, args.strip(), line_no)
        return indent + _line_call(name, args.strip()), magic
    h = _HELP.match(stripped) or _HELP.match("?")  # (_is_escape checked that it matches)
    obj, marks = (h.group(1), h.group(2)) if h.group(2) else (h.group(4), h.group(3))
    name = "pinfo2" if marks == "??" else "pinfo"
    return indent + _line_call(name, obj.strip()), Magic("help", name, obj.strip(), line_no)


def _line_call(name: str, args: str) -> str:
    return f"get_ipython().run_line_magic({name!r}, {args!r})"


class _Scanner:
    """Just enough of Python's tokenizer to know whether the next line starts a statement:
    open brackets, triple-quoted strings and backslash continuations carry over lines."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: str | None = None  # the open triple quote
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        self.continued = False
        while i < n:
            if self.quote is not None:
                end = _string_end(line, i, self.quote)
                if end < 0:
                    return
                self.quote, i = None, end
                continue
            c = line[i]
            if c == "#":
                return
            if c in "\"'":
                q = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else c
                end = _string_end(line, i + len(q), q)
                if end < 0:
                    if len(q) == 3:
                        self.quote = q
                    elif line.rstrip().endswith("\\"):
                        self.continued = True
                    return
                i = end
                continue
            if c in "([{":
                self.depth += 1
            elif c in ")]}":
                self.depth = max(0, self.depth - 1)
            elif c == "\\" and not line[i + 1 :].strip():
                self.continued = True
                return
            i += 1


def _string_end(line: str, start: int, quote: str) -> int:
    """Index just past ``quote`` closing a string that runs from ``start``; -1 when the string
    goes on past the end of the line."""
    i = start
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line.startswith(quote, i):
            return i + len(quote)
        i += 1
    return -1

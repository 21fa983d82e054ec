"""Static scanning of notebook cells and Python files for what they import.

Everything here is pure text/AST work: no module is imported and no code is run. The unit is one
"source" (a cell or a file); each is parsed on its own, so one cell that does not parse (Python 2
print, a half-typed line) costs only that cell's precision, never the other cells' results.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
from dataclasses import dataclass, field

from offload.snapshot.deps.pip import PipLine, shell_pip

# Cell magics whose body is not Python (their imports are not imports).
_NON_PYTHON_CELL_MAGICS = {
    "html",
    "javascript",
    "js",
    "latex",
    "markdown",
    "svg",
    "perl",
    "ruby",
    "sql",
    "r",
    "R",
    "bigquery",
    "script",
    "sh",
    "bash",
    "system",
    "cmd",
    "powershell",
    "pypy",
    "python2",
    "writefile",
    "file",
    "dot",
    "graphviz",
    "mermaid",
    "json",
    "kql",
    "spark",
    "sparksql",
    "capture_output_disabled",
}
_SHELL_CELL_MAGICS = {"sh", "bash", "script", "system", "cmd"}
# Line magics whose argument is a Python statement.
_STMT_LINE_MAGICS = {"time", "timeit", "prun", "memit", "debug"}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}
_BROAD_ERRORS = {"Exception", "BaseException"}


@dataclass
class Found:
    """One import site."""

    module: str  # dotted name as written (without leading dots)
    level: int  # relative-import level (0: absolute)
    names: tuple[str, ...]  # from-import names ('*' possible)
    where: str  # "cell 3" or "pkg/mod.py"
    line: int
    optional: bool = False  # only under try/except ImportError
    nested: bool = False  # inside a function, class, loop or conditional
    kind: str = "import"  # import | dynamic | load_ext | matplotlib


@dataclass
class ScanResult:
    imports: list[Found] = field(default_factory=list)
    pip_lines: list[PipLine] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (path arg, where)
    written: list[tuple[str, str, str]] = field(default_factory=list)  # (path, body, where)
    sys_path: list[tuple[str, bool, str]] = field(default_factory=list)  # (abs dir, front, where)
    errors: list[str] = field(default_factory=list)
    chdirs: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: ScanResult) -> None:
        self.imports += other.imports
        self.pip_lines += other.pip_lines
        self.runs += other.runs
        self.written += other.written
        self.sys_path += other.sys_path
        self.errors += other.errors
        self.chdirs += other.chdirs


# --------------------------------------------------------------------------------------------
# IPython syntax -> plain Python (magics recorded, replaced by harmless statements)

_ASSIGN_MAGIC = re.compile(r"^(\s*)([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*([!%])(.*)$")
def _cell_magic_split(lines: list[str]) -> tuple[str, str, list[str]] | None:
    for idx, ln in enumerate(lines):
        if not ln.strip():
            continue
        if ln.lstrip().startswith("%%"):
            head = ln.strip()[2:]
            name, _, args = head.partition(" ")
            return name, args.strip(), lines[idx + 1 :]
        return None
    return None


def transform_cell(source: str, where: str, result: ScanResult) -> str:
    """Return the cell as plain Python, recording magics and shell lines into ``result``."""
    lines = source.splitlines()
    cm = _cell_magic_split(lines)
    if cm is not None:
        name, args, body = cm
        if name in ("writefile", "file"):
            toks = [t for t in args.split() if not t.startswith("-")]
            if toks:
                result.written.append((toks[0].strip("'\""), "\n".join(body), where))
            return ""
        if name in _SHELL_CELL_MAGICS:
            for ln in _join_continuations(body):
                pl = shell_pip(ln, where)
                if pl:
                    result.pip_lines.append(pl)
            return ""
        if name in _NON_PYTHON_CELL_MAGICS:
            return ""
        if name == "timeit" and args:  # setup statement on the magic line
            body = [args] + body
        lines = body
    out: list[str] = []
    logical = _join_continuations(lines, keep_count=True)
    for ln, n_phys in logical:
        stripped = ln.lstrip()
        indent = ln[: len(ln) - len(stripped)]
        replacement: str | None = None
        if stripped.startswith("!"):
            cmd = stripped[1:].lstrip("!")
            pl = shell_pip(cmd, where)
            if pl:
                result.pip_lines.append(pl)
            replacement = indent + "pass"
        elif stripped.startswith("%") and not stripped.startswith("%%"):
            replacement = indent + _line_magic(stripped[1:], where, result)
        elif (
            stripped.endswith("?")
            and not stripped.startswith("#")
            and re.match(r"^[\w.\[\]()'\" ,]*\?\??$", stripped)
        ):
            replacement = indent + "pass"
        else:
            m = _ASSIGN_MAGIC.match(ln)
            if m:
                if m.group(3) == "!":
                    pl = shell_pip(m.group(4), where)
                    if pl:
                        result.pip_lines.append(pl)
                else:
                    _line_magic(m.group(4), where, result)
                replacement = f"{m.group(1)}{m.group(2)} = None"
        if replacement is None:
            out.extend(ln.split("\n"))
        else:
            out.append(replacement)
            out.extend([""] * (n_phys - 1))  # keep line numbers stable
    return "\n".join(out)


def _join_continuations(lines: list[str], keep_count: bool = False):
    """Join magic/shell lines continued with a trailing backslash."""
    res = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        n = 1
        st = ln.lstrip()
        if st.startswith(("!", "%")) or _ASSIGN_MAGIC.match(ln):
            while ln.rstrip().endswith("\\") and i + n < len(lines):
                ln = ln.rstrip()[:-1] + " " + lines[i + n].strip()
                n += 1
        res.append((ln, n) if keep_count else ln)
        i += n
    return res


def _line_magic(text: str, where: str, result: ScanResult) -> str:
    """Record one line magic; return the Python statement that stands in for it."""
    name, _, args = text.strip().partition(" ")
    args = args.strip()
    if name in ("pip", "conda", "mamba", "micromamba", "uv"):
        pl = shell_pip(f"{name} {args}", where)
        if pl:
            result.pip_lines.append(pl)
    elif name in ("sx", "system"):
        pl = shell_pip(args, where)
        if pl:
            result.pip_lines.append(pl)
    elif name in ("load_ext", "reload_ext"):
        for mod in args.split():
            if re.match(r"^[A-Za-z_][\w.]*$", mod):
                result.imports.append(Found(mod, 0, (), where, 0, kind="load_ext"))
    elif name == "run":
        toks = _safe_split(args)
        toks = [t for t in toks if not t.startswith("-")]
        if toks:
            result.runs.append((toks[0], where))
    elif name == "matplotlib":
        result.imports.append(Found("matplotlib", 0, (), where, 0, kind="matplotlib"))
    elif name == "cd":
        toks = _safe_split(args)
        if toks:
            result.chdirs.append((toks[-1], where))
    elif name in _STMT_LINE_MAGICS:
        stmt = args
        if name == "timeit":
            stmt = re.sub(r"^(\s*-[nr]\s*\d+|\s*-[qpoc]\b|\s*-p\s*\d+)*", "", stmt).strip()
        if stmt:
            try:
                ast.parse(stmt)
                return stmt
            except SyntaxError:
                pass
    return "pass"


def _safe_split(s: str) -> list[str]:
    try:
        return shlex.split(s)
    except ValueError:
        return s.split()


# --------------------------------------------------------------------------------------------
# AST walk


def _handler_names(handler: ast.ExceptHandler) -> set[str]:
    t = handler.type
    if t is None:
        return {"*"}
    elts = t.elts if isinstance(t, ast.Tuple) else [t]
    names = set()
    for e in elts:
        if isinstance(e, ast.Name):
            names.add(e.id)
        elif isinstance(e, ast.Attribute):
            names.add(e.attr)
    return names


def _only_imports(body: list[ast.stmt]) -> bool:
    return all(
        isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass, ast.Expr, ast.Assign)) for s in body
    )


class _Visitor(ast.NodeVisitor):
    def __init__(self, where: str, result: ScanResult, base_dir: str, file_dir: str | None):
        self.where = where
        self.result = result
        self.base_dir = base_dir  # cwd of the kernel (notebook directory)
        self.file_dir = file_dir  # directory of the file being scanned (for __file__)
        self.optional = 0
        self.nested = 0
        self.type_checking = 0
        self.aliases: dict[str, str] = {}  # local name -> dotted module it refers to

    # structure ------------------------------------------------------------------------------
    def visit_Try(self, node: ast.Try) -> None:
        caught: set[str] = set()
        for h in node.handlers:
            caught |= _handler_names(h)
        guards = bool(caught & _IMPORT_ERRORS) or (
            bool(caught & (_BROAD_ERRORS | {"*"})) and _only_imports(node.body)
        )
        self.nested += 1
        if guards:
            self.optional += 1
        for s in node.body:
            self.visit(s)
        if guards:
            self.optional -= 1
        for h in node.handlers:
            self.visit(h)
        for s in node.orelse + node.finalbody:
            self.visit(s)
        self.nested -= 1

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test) if hasattr(ast, "unparse") else ""
        tc = "TYPE_CHECKING" in test
        self.nested += 1
        if tc:
            self.type_checking += 1
        for s in node.body:
            self.visit(s)
        if tc:
            self.type_checking -= 1
        for s in node.orelse:
            self.visit(s)
        self.visit(node.test)
        self.nested -= 1

    def _nested(self, node: ast.AST) -> None:
        self.nested += 1
        self.generic_visit(node)
        self.nested -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _nested
    visit_For = visit_AsyncFor = visit_While = visit_With = visit_AsyncWith = _nested
    visit_Lambda = _nested

    # imports --------------------------------------------------------------------------------
    def _add(self, module: str, level: int, names: tuple[str, ...], line: int, kind="import"):
        if self.type_checking:
            return
        self.result.imports.append(
            Found(
                module,
                level,
                names,
                self.where,
                line,
                optional=self.optional > 0,
                nested=self.nested > 0,
                kind=kind,
            )
        )

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._add(a.name, 0, (), node.lineno)
            self.aliases[a.asname or a.name.split(".")[0]] = (
                a.name if a.asname else a.name.split(".")[0]
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(a.name for a in node.names)
        self._add(node.module or "", node.level or 0, names, node.lineno)
        if not node.level and node.module:
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def visit_Call(self, node: ast.Call) -> None:
        fn = _dotted(node.func)
        if fn:
            target = self.aliases.get(fn.split(".")[0], fn.split(".")[0])
            full = ".".join([target] + fn.split(".")[1:])
            if full in ("importlib.import_module", "builtins.__import__") or fn == "__import__":
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    mod = arg.value
                    if mod.startswith("."):
                        pass
                    elif re.match(r"^[A-Za-z_][\w.]*$", mod):
                        self._add(mod, 0, (), node.lineno, kind="dynamic")
            elif full in ("pytest.importorskip",):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    self.optional += 1
                    self._add(arg.value, 0, (), node.lineno, kind="dynamic")
                    self.optional -= 1
            elif full in (
                "sys.path.append",
                "sys.path.insert",
                "sys.path.extend",
                "site.addsitedir",
            ):
                args = node.args[1:] if full == "sys.path.insert" else node.args[:1]
                for a in args:
                    for p in _eval_paths(a, self.base_dir, self.file_dir):
                        self.result.sys_path.append((p, full == "sys.path.insert", self.where))
            elif full == "os.chdir" and node.args:
                for p in _eval_paths(node.args[0], self.base_dir, self.file_dir):
                    self.result.chdirs.append((p, self.where))
        self.generic_visit(node)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _eval_paths(node: ast.AST, base: str, file_dir: str | None) -> list[str]:
    """Best-effort static value of a path expression (literal strings, os.path / pathlib calls);
    returns absolute normalized directories, or [] when it cannot be known statically."""
    v = _eval_path(node, base, file_dir)
    if isinstance(v, list):
        out = []
        for x in v:
            if isinstance(x, str):
                out.append(os.path.normpath(os.path.join(base, os.path.expanduser(x))))
        return out
    if isinstance(v, str):
        return [os.path.normpath(os.path.join(base, os.path.expanduser(v)))]
    return []


def _eval_path(node: ast.AST, base: str, file_dir: str | None):  # noqa: C901
    ev = lambda n: _eval_path(n, base, file_dir)  # noqa: E731
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [ev(e) for e in node.elts]
    if isinstance(node, ast.Name):
        if node.id == "__file__" and file_dir:
            return os.path.join(file_dir, "_")
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
        left, right = ev(node.left), ev(node.right)
        if isinstance(left, str) and isinstance(right, str):
            return os.path.join(left, right) if isinstance(node.op, ast.Div) else left + right
        return None
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        if dotted in ("os.pardir",):
            return ".."
        if dotted in ("os.curdir",):
            return "."
        if dotted in ("os.sep",):
            return "/"
        if node.attr == "parent":
            inner = ev(node.value)
            if isinstance(inner, str):
                return os.path.dirname(os.path.normpath(os.path.join(base, inner)))
        return None
    if isinstance(node, ast.Call):
        fn = _dotted(node.func) or ""
        if isinstance(node.func, ast.Attribute) and node.func.attr in (
            "resolve",
            "absolute",
            "expanduser",
            "as_posix",
        ):
            inner = ev(node.func.value)
            return os.path.normpath(os.path.join(base, inner)) if isinstance(inner, str) else None
        if isinstance(node.func, ast.Attribute) and node.func.attr == "joinpath":
            inner = ev(node.func.value)
            rest = [ev(a) for a in node.args]
            if isinstance(inner, str) and all(isinstance(r, str) for r in rest):
                return os.path.join(inner, *rest)
            return None
        args = [ev(a) for a in node.args]
        if fn in ("os.getcwd", "Path.cwd", "pathlib.Path.cwd", "os.path.curdir"):
            return base
        if not all(isinstance(a, str) for a in args):
            return None
        if fn in ("os.path.join", "Path", "pathlib.Path", "PurePath", "str", "os.fspath"):
            return os.path.join(*args) if args else "."
        if fn in ("os.path.abspath", "os.path.realpath", "os.path.normpath") and args:
            return os.path.normpath(os.path.join(base, args[0]))
        if fn == "os.path.dirname" and args:
            return os.path.dirname(os.path.normpath(os.path.join(base, args[0])))
        if fn == "os.path.expanduser" and args:
            return os.path.expanduser(args[0])
    return None


_IMPORT_LINE = re.compile(r"^\s*(import\s+[A-Za-z_]|from\s+\.*[A-Za-z_.]*\s+import\b)")


def scan_python(
    source: str,
    where: str,
    base_dir: str,
    file_dir: str | None = None,
    result: ScanResult | None = None,
) -> ScanResult:
    """Scan Python source; on a syntax error fall back to reading import lines one by one."""
    result = result if result is not None else ScanResult()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        result.errors.append(
            f"{where} does not parse ({type(exc).__name__}"
            + (f" at line {line}" if line else "")
            + "); its import lines were read one by one"
        )
        _scan_lines(source, where, base_dir, file_dir, result)
        return result
    _Visitor(where, result, base_dir, file_dir).visit(tree)
    return result


def _scan_lines(
    source: str, where: str, base_dir: str, file_dir: str | None, result: ScanResult
) -> None:
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if _IMPORT_LINE.match(ln):
            stmt = ln.strip()
            j = i
            while stmt.count("(") > stmt.count(")") and j + 1 < len(lines):
                j += 1
                stmt += " " + lines[j].strip()
            while stmt.endswith("\\") and j + 1 < len(lines):
                j += 1
                stmt = stmt[:-1] + " " + lines[j].strip()
            stmt = stmt.split(";")[0]
            try:
                tree = ast.parse(stmt)
            except SyntaxError:
                i = j + 1
                continue
            v = _Visitor(where, result, base_dir, file_dir)
            v.nested = 1 if ln[:1].isspace() else 0
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    v.visit(node)
                    for f in result.imports[-len(getattr(node, "names", [])) :]:
                        f.line = i + 1
            i = j + 1
        else:
            i += 1


def scan_cell(source: str, where: str, base_dir: str, result: ScanResult) -> None:
    """Scan one notebook code cell (IPython syntax) into ``result``."""
    py = transform_cell(source, where, result)
    if py.strip():
        scan_python(py, where, base_dir, None, result)

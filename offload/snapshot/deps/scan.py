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

from offload.notebook.ipython import Magic, transform_cell
from offload.snapshot.deps.pip import PipLine, shell_pip

__all__ = ["DataRef", "Found", "ScanResult", "scan_cell", "scan_python", "PY2_ONLY"]

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
# Python 2 names of modules Python 3 renamed or dropped: under ``except ImportError`` they are
# the fallback of a py2/py3 compatibility import, never needed on Python 3.
PY2_ONLY = {
    "StringIO", "cStringIO", "urllib2", "urlparse", "ConfigParser", "Queue", "cPickle", "HTMLParser",
    "httplib", "Tkinter", "tkMessageBox", "tkFileDialog", "tkSimpleDialog", "ttk", "__builtin__",
    "commands", "cookielib", "Cookie", "SocketServer", "xmlrpclib", "SimpleXMLRPCServer",
    "BaseHTTPServer", "SimpleHTTPServer", "CGIHTTPServer", "copy_reg", "dummy_thread", "thread",
    "md5", "sha", "sets", "exceptions", "anydbm", "dbhash", "whichdb", "gdbm", "dumbdbm",
    "htmlentitydefs", "robotparser", "UserDict", "UserList", "UserString", "future_builtins",
    "repr", "markupbase", "mimetools", "rfc822", "popen2", "new", "dircache", "sgmllib", "htmllib",
    "urllib2_file", "itertools_py2", "cStringIO_py2",
}
# Calls that read the path they are given (by the last part of their dotted name). "Strong":
# the call fails when the file is missing, so a missing literal path is worth a warning.
_STRONG_READERS = {
    "open", "loadtxt", "genfromtxt", "fromfile", "load", "loadmat", "imread", "open_dataset",
    "open_mfdataset", "open_zarr", "read_image", "load_img", "File", "load_workbook", "read_file",
    "safe_load_file", "memmap", "Dataset", "read_video", "open_rasterio", "load_npz",
}
_WEAK_READERS = {"Path", "PurePath", "glob", "iglob", "listdir", "scandir", "walk", "exists", "isfile", "isdir"}
_PATH_KWARGS = {"path", "filepath", "filepath_or_buffer", "file", "fname", "filename", "io", "path_or_buf", "uri"}
_NOT_READS = {"read_sql", "read_sql_query", "read_sql_table", "read_gbq", "read_clipboard"}
_SHELL_NON_READERS = {"wget", "curl", "mkdir", "rm", "rmdir", "touch", "pip", "pip3", "conda", "mamba", "echo", "cd",
                      "git", "apt", "apt-get", "export", "kill", "nvidia-smi", "which"}
_BROAD_ERRORS = {"Exception", "BaseException"}


@dataclass
class DataRef:
    """A literal path the code reads (``pd.read_csv('data/x.csv')``, ``open(...)``, ``!head f``)."""

    value: str  # as written, or absolute when built from ``__file__``
    where: str
    call: str  # the reading call ("pandas.read_csv", "open", "!head", "Path")
    strong: bool  # a reader that fails when the file is missing (a weak one only names a path)


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
    scope: tuple[str, ...] = ()  # enclosing functions (outermost first); () at top level
    py2_fallback: bool = False  # a Python-2-only module under ``except ImportError``


@dataclass
class ScanResult:
    imports: list[Found] = field(default_factory=list)
    pip_lines: list[PipLine] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (path arg, where)
    written: list[tuple[str, str, str]] = field(default_factory=list)  # (path, body, where)
    sys_path: list[tuple[str, bool, str]] = field(default_factory=list)  # (abs dir, front, where)
    errors: list[str] = field(default_factory=list)
    chdirs: list[tuple[str, str]] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)  # names and attributes the code reads or calls
    entry_points: set[str] = field(default_factory=set)  # decorated functions (called by a framework)
    data: list[DataRef] = field(default_factory=list)  # literal paths read by common calls
    consts: dict[str, str] = field(default_factory=dict)  # NAME = "literal" (shared by a notebook's cells)

    def extend(self, other: ScanResult) -> None:
        self.imports += other.imports
        self.pip_lines += other.pip_lines
        self.runs += other.runs
        self.written += other.written
        self.sys_path += other.sys_path
        self.errors += other.errors
        self.chdirs += other.chdirs
        self.refs |= other.refs
        self.entry_points |= other.entry_points
        self.data += other.data


# --------------------------------------------------------------------------------------------
# Magics and shell lines (offload.notebook.ipython finds them; here: what they bring in)


def _record_magic(m: Magic, where: str, base_dir: str, result: ScanResult) -> None:
    """Record what one magic or shell line installs, runs, writes or imports."""
    if m.kind == "shell":
        _record_pip(shell_pip(m.args, where), result)
        _record_shell_paths(m.args, where, result)
    elif m.kind == "cell":
        _record_cell_magic(m, where, base_dir, result)
    elif m.kind == "line":
        _record_line_magic(m, where, base_dir, result)


def _record_pip(line: PipLine | None, result: ScanResult) -> None:
    if line is not None:
        result.pip_lines.append(line)


def _record_cell_magic(m: Magic, where: str, base_dir: str, result: ScanResult) -> None:
    if m.name in ("writefile", "file"):
        toks = [t for t in m.args.split() if not t.startswith("-")]
        if toks:
            result.written.append((toks[0].strip("'\""), m.body, where))
    elif m.name in _SHELL_CELL_MAGICS:
        for ln in _join_continuations(m.body.splitlines()):
            _record_pip(shell_pip(ln, where), result)
            _record_shell_paths(ln, where, result)
    elif m.name not in _NON_PYTHON_CELL_MAGICS:  # %%time, %%capture...: the body is a cell
        body = f"{m.args}\n{m.body}" if m.name == "timeit" and m.args else m.body
        scan_cell(body, where, base_dir, result)


def _record_line_magic(m: Magic, where: str, base_dir: str, result: ScanResult) -> None:
    name, args = m.name, m.args
    if name in ("pip", "conda", "mamba", "micromamba", "uv"):
        _record_pip(shell_pip(f"{name} {args}", where), result)
    elif name in ("sx", "system"):
        _record_pip(shell_pip(args, where), result)
    elif name in ("load_ext", "reload_ext"):
        for mod in args.split():
            if re.match(r"^[A-Za-z_][\w.]*$", mod):
                result.imports.append(Found(mod, 0, (), where, m.line, kind="load_ext"))
    elif name == "run":
        toks = [t for t in _safe_split(args) if not t.startswith("-")]
        if toks:
            result.runs.append((toks[0], where))
    elif name == "matplotlib":
        result.imports.append(Found("matplotlib", 0, (), where, m.line, kind="matplotlib"))
    elif name == "cd":
        toks = _safe_split(args)
        if toks:
            result.chdirs.append((toks[-1], where))
    elif name in _STMT_LINE_MAGICS:  # %time import x: the statement runs in the namespace
        stmt = args
        if name == "timeit":
            stmt = re.sub(r"^(\s*-[nr]\s*\d+|\s*-[qpoc]\b|\s*-p\s*\d+)*", "", stmt).strip()
        try:
            ast.parse(stmt)
        except SyntaxError:
            return
        first = len(result.imports)
        _Visitor(where, result, base_dir, None).visit(ast.parse(stmt))
        for f in result.imports[first:]:
            f.line = m.line


def _record_shell_paths(cmd: str, where: str, result: ScanResult) -> None:
    """Path-looking arguments of a shell line (``!head data/x.csv``): data the notebook reads.
    Only existing paths count (checked later), so these never raise a missing-file warning."""
    for part in re.split(r"\s*(?:&&|;|\|\|?)\s*", cmd.strip()):
        toks = _safe_split(part)
        if not toks or toks[0] in _SHELL_NON_READERS or "=" in toks[0]:
            continue
        for tok in toks[1:]:
            if tok.startswith(("-", "$", "{", ">", "<")) or "://" in tok or tok in (".", ".."):
                continue
            if _looks_like_path(tok, loose=True):
                result.data.append(DataRef(tok, where, f"!{toks[0]}", False))


def _looks_like_path(v: str, *, loose: bool = False) -> bool:
    """A relative or absolute file-system path, not a URL, a format string or prose."""
    if not v or len(v) > 260 or "\n" in v or "://" in v or v.startswith(("{", "%", "-")):
        return False
    if re.search(r"[\s{}<>|\"']", v):
        return False
    if "/" in v or re.search(r"\.[A-Za-z0-9]{1,8}$", v):
        return True
    return loose and bool(re.match(r"^[\w.\-]+$", v))


def _join_continuations(lines: list[str]) -> list[str]:
    """Join shell lines continued with a trailing backslash."""
    res, i = [], 0
    while i < len(lines):
        ln, n = lines[i], 1
        while ln.rstrip().endswith("\\") and i + n < len(lines):
            ln = ln.rstrip()[:-1] + " " + lines[i + n].strip()
            n += 1
        res.append(ln)
        i += n
    return res


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
        self.import_handler = 0  # inside ``except ImportError``
        self.scope: list[str] = []  # enclosing function names

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
            fallback = bool(_handler_names(h) & _IMPORT_ERRORS)
            self.import_handler += fallback
            self.visit(h)
            self.import_handler -= fallback
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

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.decorator_list or node.name.startswith("__"):
            self.result.entry_points.add(node.name)  # called by a framework or by Python itself
        self.scope.append(node.name)
        self._nested(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_ClassDef = _nested

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Store):
            self.result.refs.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.result.refs.add(node.attr)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        v = node.value
        if (not self.scope and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(v, ast.Constant) and isinstance(v.value, str) and _looks_like_path(v.value)):
            self.result.consts[node.targets[0].id] = v.value
        self.generic_visit(node)
    visit_For = visit_AsyncFor = visit_While = visit_With = visit_AsyncWith = _nested
    visit_Lambda = _nested

    # imports --------------------------------------------------------------------------------
    def _add(self, module: str, level: int, names: tuple[str, ...], line: int, kind="import"):
        if self.type_checking:
            return
        py2 = bool(self.import_handler) and not level and module.split(".")[0] in PY2_ONLY
        self.result.imports.append(
            Found(
                module,
                level,
                names,
                self.where,
                line,
                optional=self.optional > 0 or py2,
                nested=self.nested > 0,
                kind=kind,
                scope=tuple(self.scope),
                py2_fallback=py2,
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
            else:
                self._data_ref(node, fn, full)
        self.generic_visit(node)

    def _data_ref(self, node: ast.Call, fn: str, full: str) -> None:
        last = fn.rsplit(".", 1)[-1]
        if last in _NOT_READS:
            return
        strong = last in _STRONG_READERS or last.startswith("read_") or last.startswith("open_")
        if not strong and last not in _WEAK_READERS:
            return
        if last == "open" and len(node.args) > 1:  # open(path, "w"): a write, not a read
            mode = node.args[1]
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax"):
                return
        args = node.args[:1] + [k.value for k in node.keywords if k.arg in _PATH_KWARGS]
        for a in args:
            if isinstance(a, ast.Name) and a.id in self.result.consts:
                value = self.result.consts[a.id]
            else:
                value = _eval_path(a, self.base_dir, self.file_dir)
            if isinstance(value, str) and _looks_like_path(value, loose=not strong):
                self.result.data.append(DataRef(value, self.where, full, strong))


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
    cell = transform_cell(source)
    for magic in cell.magics:
        _record_magic(magic, where, base_dir, result)
    if cell.python.strip():
        scan_python(cell.python, where, base_dir, None, result)

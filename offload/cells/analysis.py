"""Static analysis of one notebook cell: which global names it reads and which it binds.

``%%offload`` ships the values a cell reads and brings back the names it assigns, so it needs
both sets from the source alone (running the cell to find out is what we are trying to avoid).
The analysis follows Python's scoping rules by hand rather than through :mod:`symtable`, because
it must be *flow-sensitive* at the top level (``x = 1; print(x)`` does not read ``x`` from the
namespace) and because :mod:`symtable` changed shape when comprehensions were inlined (3.12).

It errs on the side of reading too much: a name that *might* be unbound when it is used is a
read (a branch that may not run, a function body that runs later). Shipping an unneeded value
costs bytes; missing a needed one breaks the cell. ``--push``/``--pull`` override the result.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from offload.errors import UsageError
from offload.notebook import to_python

__all__ = ["CellAnalysis", "analyze_cell", "to_python"]


@dataclass
class CellAnalysis:
    """What a cell does to the global namespace, in first-seen order."""

    reads: list[str] = field(default_factory=list)  # may be read while not bound by the cell
    writes: list[str] = field(default_factory=list)  # bound at module level (or via ``global``)
    deleted: list[str] = field(default_factory=list)  # unbound by ``del`` and not bound again
    star_imports: list[str] = field(default_factory=list)  # modules of ``from m import *``


def analyze_cell(source: str) -> CellAnalysis:
    """Analyse a cell's source (IPython syntax allowed); raise UsageError on a syntax error."""
    code = to_python(source)
    try:
        tree = ast.parse(code, "<cell>", "exec")
    except SyntaxError as exc:
        raise UsageError(
            f"the cell has a syntax error at line {exc.lineno}: {exc.msg}",
            hint="fix the cell; it would fail the same way locally",
        ) from None
    flow = _ModuleFlow()
    flow.block(tree.body)
    deleted = [n for n in flow.deleted if n not in flow.rebound_after_del]
    return CellAnalysis(
        reads=list(dict.fromkeys(flow.reads)),
        writes=list(dict.fromkeys(flow.writes)),
        deleted=list(dict.fromkeys(deleted)),
        star_imports=list(dict.fromkeys(flow.star_imports)),
    )


# ------------------------------------------------------------------------------------------------
# Binding collection for nested scopes (flow-insensitive: Python decides locality per scope).


def _target_names(target: ast.AST) -> Iterable[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def _pattern_names(pattern: ast.AST) -> Iterable[str]:
    for node in ast.walk(pattern):
        name = getattr(node, "name", None)
        if isinstance(node, (ast.MatchAs, ast.MatchStar)) and name:
            yield name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest


_CODE_MAGICS = ("time", "timeit", "prun")
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _scope_bindings(body: Iterable[ast.AST]) -> tuple[set[str], set[str], set[str]]:
    """(bound, declared global, declared nonlocal) for the scope whose statements are ``body``.

    Does not descend into nested scopes, except that a walrus inside a comprehension binds in
    the enclosing function scope (PEP 572).
    """
    bound: set[str] = set()
    glob: set[str] = set()
    nonloc: set[str] = set()
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            if not isinstance(node, ast.ClassDef):
                stack.extend(_arg_defaults_and_annotations(node.args))
                if node.returns:
                    stack.append(node.returns)
            else:
                stack.extend(node.bases)
                stack.extend(k.value for k in node.keywords)
            continue
        if isinstance(node, ast.Lambda):
            stack.extend(_arg_defaults_and_annotations(node.args))
            continue
        if isinstance(node, _COMPS):
            # Only the first iterator and walrus targets belong to this scope.
            stack.append(node.generators[0].iter)
            for sub in ast.walk(node):
                if isinstance(sub, ast.NamedExpr):
                    bound.update(_target_names(sub.target))
            continue
        if isinstance(node, ast.Global):
            glob.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            nonloc.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.pattern):
            bound.update(_pattern_names(node))
        stack.extend(ast.iter_child_nodes(node))
    return bound - glob - nonloc, glob, nonloc


def _arg_names(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        every.append(args.vararg)
    if args.kwarg:
        every.append(args.kwarg)
    return {a.arg for a in every}


def _arg_defaults_and_annotations(args: ast.arguments) -> list[ast.AST]:
    out: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if a is not None and a.annotation is not None:
            out.append(a.annotation)
    return out


class _NestedScope:
    """Free-name resolution for code that runs later, in its own scope (function, lambda...).

    ``chain`` holds the local names of the enclosing *function* scopes (class scopes are not
    visible to nested functions). A load that no enclosing function binds is a global read.
    """

    def __init__(self, module: _ModuleFlow, chain: tuple[frozenset[str], ...]):
        self.module = module
        self.chain = chain

    def resolve_load(self, name: str, local: set[str], glob: set[str]) -> None:
        if name in glob:
            self.module.nested_read(name)
        elif name in local:
            return
        elif any(name in scope for scope in self.chain):
            return
        else:
            self.module.nested_read(name)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        bound, glob, nonloc = _scope_bindings(body)
        local = bound | _arg_names(node.args)
        for name in glob:
            if any(isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)) and n.id == name
                   for stmt in body for n in ast.walk(stmt)):
                self.module.writes.append(name)
        inner = _NestedScope(self.module, (*self.chain, frozenset(local | nonloc)))
        for stmt in body:
            inner.visit(stmt, local, glob)

    def klass(self, node: ast.ClassDef, outer_local: set[str], outer_glob: set[str]) -> None:
        bound, glob, _ = _scope_bindings(node.body)
        # The class body resolves names like its enclosing scope, plus its own bindings; the
        # functions inside it do not see the class's names.
        inner = _NestedScope(self.module, self.chain)
        for stmt in node.body:
            inner.visit(stmt, bound | outer_local, glob | outer_glob, class_body=True)

    def comprehension(self, node: ast.AST, local: set[str], glob: set[str], *, first_done: bool) -> None:
        gens = node.generators  # type: ignore[attr-defined]
        comp_local: set[str] = set()
        for gen in gens:
            comp_local.update(_target_names(gen.target))
        scope_local = local | comp_local
        for i, gen in enumerate(gens):
            if i > 0 or not first_done:
                self.visit(gen.iter, scope_local if i else local, glob)
            for cond in gen.ifs:
                self.visit(cond, scope_local, glob)
            self.visit(gen.target, scope_local, glob)
        elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]  # type: ignore[attr-defined]
        for elt in elts:
            self.visit(elt, scope_local, glob)

    def visit(self, node: ast.AST, local: set[str], glob: set[str], class_body: bool = False) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in [*node.decorator_list, *_arg_defaults_and_annotations(node.args)]:
                self.visit(sub, local, glob)
            if node.returns:
                self.visit(node.returns, local, glob)
            # Class names never leak into the functions defined in the class body.
            chain = self.chain if class_body else (*self.chain, frozenset(local))
            _NestedScope(self.module, chain).function(node)
            return
        if isinstance(node, ast.Lambda):
            for sub in _arg_defaults_and_annotations(node.args):
                self.visit(sub, local, glob)
            chain = self.chain if class_body else (*self.chain, frozenset(local))
            _NestedScope(self.module, chain).function(node)
            return
        if isinstance(node, ast.ClassDef):
            for sub in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self.visit(sub, local, glob)
            chain = self.chain if class_body else (*self.chain, frozenset(local))
            _NestedScope(self.module, chain).klass(node, set(), set())
            return
        if isinstance(node, _COMPS):
            self.visit(node.generators[0].iter, local, glob)
            chain = self.chain if class_body else (*self.chain, frozenset(local))
            _NestedScope(self.module, chain).comprehension(node, set(), glob, first_done=True)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            self.resolve_load(node.id, local, glob)
            return
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            self.resolve_load(node.target.id, local, glob)
        for child in ast.iter_child_nodes(node):
            self.visit(child, local, glob, class_body)


# ------------------------------------------------------------------------------------------------
# The top level: flow-sensitive ("definitely bound before this point").


class _ModuleFlow:
    def __init__(self) -> None:
        self.defined: set[str] = set()
        self.reads: list[str] = []
        self.writes: list[str] = []
        self.deleted: list[str] = []
        self.rebound_after_del: set[str] = set()
        self.star_imports: list[str] = []

    # recording -------------------------------------------------------------------------------
    def load(self, name: str) -> None:
        if name not in self.defined:
            self.reads.append(name)

    def nested_read(self, name: str) -> None:
        # Runs later (when called), so "defined before the def" is only a heuristic; still, a
        # name bound before the definition is almost always the one meant.
        if name not in self.defined:
            self.reads.append(name)

    def bind(self, name: str, definite: bool = True) -> None:
        self.writes.append(name)
        if name in self.deleted:
            self.rebound_after_del.add(name)
        if definite:
            self.defined.add(name)

    def unbind(self, name: str) -> None:
        self.load(name)  # ``del x`` needs x to exist
        self.deleted.append(name)
        self.rebound_after_del.discard(name)
        self.defined.discard(name)

    # expressions -----------------------------------------------------------------------------
    def expr(self, node: ast.AST | None) -> None:
        if node is None:
            return
        chain: tuple[frozenset[str], ...] = ()
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id)
            return
        if isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            for n in _target_names(node.target):
                self.bind(n)
            return
        if isinstance(node, ast.Lambda):
            for sub in _arg_defaults_and_annotations(node.args):
                self.expr(sub)
            _NestedScope(self, chain).function(node)
            return
        if isinstance(node, _COMPS):
            self.expr(node.generators[0].iter)
            # Walrus targets in a comprehension bind at module level, maybe (not definitely).
            for sub in ast.walk(node):
                if isinstance(sub, ast.NamedExpr):
                    for n in _target_names(sub.target):
                        self.bind(n, definite=False)
            _NestedScope(self, chain).comprehension(node, set(), set(), first_done=True)
            return
        if isinstance(node, (ast.BoolOp, ast.IfExp)):
            # Later operands may not run: a walrus there is not a definite binding.
            saved = set(self.defined)
            for child in ast.iter_child_nodes(node):
                self.expr(child)
            first = node.values[0] if isinstance(node, ast.BoolOp) else node.test
            keep = set(saved)
            tmp = _ModuleFlow()
            tmp.defined = set(saved)
            tmp.expr(first)
            keep |= tmp.defined
            self.defined = keep
            return
        if isinstance(node, ast.Call) and self._magic_code(node):
            return
        for child in ast.iter_child_nodes(node):
            self.expr(child)

    def _magic_code(self, node: ast.Call) -> bool:
        """``%time y = f(x)`` arrives as ``get_ipython().run_line_magic('time', 'y = f(x)')``:
        analyse the code string of the magics that run code in the user namespace."""
        fn = node.func
        if not (isinstance(fn, ast.Attribute) and fn.attr == "run_line_magic" and len(node.args) == 2):
            return False
        name, arg = node.args
        if not (isinstance(name, ast.Constant) and isinstance(arg, ast.Constant)):
            return False
        if name.value not in _CODE_MAGICS or not isinstance(arg.value, str):
            return False
        code = re.sub(r"^(\s*-[a-zA-Z]+(\s+(?!-)[^\s=]+)?(?=\s))*", "", arg.value) if name.value != "time" else arg.value
        try:
            inner = ast.parse(code.strip(), "<magic>", "exec")
        except SyntaxError:
            return False
        if name.value == "time":
            self.block(inner.body)
        else:  # timeit and prun run in a namespace of their own: their bindings stay there
            sub = _ModuleFlow()
            sub.defined = set(self.defined)
            sub.block(inner.body)
            self.reads.extend(sub.reads)
        return True

    def target(self, node: ast.AST, definite: bool = True) -> None:
        """An assignment target: names bind, attribute/subscript targets read their base."""
        if isinstance(node, ast.Name):
            self.bind(node.id, definite)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                self.target(elt, definite)
        elif isinstance(node, ast.Starred):
            self.target(node.value, definite)
        else:  # Attribute, Subscript
            self.expr(node)

    # statements ------------------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def branch(self, body: list[ast.stmt], start: set[str] | None = None) -> set[str]:
        """Run ``body`` as a branch that may or may not execute; return what it defines."""
        saved = set(self.defined)
        self.defined = set(saved if start is None else start)
        self.block(body)
        result = self.defined
        self.defined = saved
        return result

    def stmt(self, node: ast.stmt) -> None:  # noqa: C901 - one case per statement kind
        if isinstance(node, ast.Assign):
            self.expr(node.value)
            for t in node.targets:
                self.target(t)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self.load(node.target.id)
            self.expr(node.value)
            self.target(node.target)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.annotation)
            if node.value is not None:
                self.expr(node.value)
                self.target(node.target)
            elif not isinstance(node.target, ast.Name):
                self.expr(node.target)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter)
            saved = set(self.defined)
            for n in _target_names(node.target):
                self.bind(n, definite=False)
            if not isinstance(node.target, ast.Name):
                self.target(node.target, definite=False)
            inside = set(self.defined) | set(_target_names(node.target))
            self.branch(node.body, inside)
            self.defined = saved
            self.branch(node.orelse)
        elif isinstance(node, ast.While):
            self.expr(node.test)
            self.branch(node.body)
            self.branch(node.orelse)
        elif isinstance(node, ast.If):
            self.expr(node.test)
            a = self.branch(node.body)
            b = self.branch(node.orelse)
            self.defined |= a & b
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
            self.block(node.body)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            before = set(self.defined)
            body_defs = self.branch(node.body)
            saved = self.defined
            self.defined = body_defs
            self.block(node.orelse)
            ok_path = self.defined
            self.defined = saved
            outcomes = [ok_path]
            for h in node.handlers:
                self.expr(h.type)
                start = set(before)
                if h.name:
                    self.bind(h.name, definite=False)
                    start.add(h.name)
                out = self.branch(h.body, start)
                out.discard(h.name or "")
                outcomes.append(out)
            common = set.intersection(*outcomes) if node.handlers else ok_path
            self.defined = set(common)
            self.block(node.finalbody)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in [*node.decorator_list, *_arg_defaults_and_annotations(node.args)]:
                self.expr(sub)
            self.expr(node.returns)
            _NestedScope(self, ()).function(node)
            self.bind(node.name)
        elif isinstance(node, ast.ClassDef):
            for sub in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self.expr(sub)
            self._class_body(node)
            self.bind(node.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.bind(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    self.star_imports.append("." * node.level + (node.module or ""))
                else:
                    self.bind(alias.asname or alias.name)
        elif isinstance(node, ast.Delete):
            for t in node.targets:
                for n in _target_names(t):
                    self.unbind(n)
                if not isinstance(t, (ast.Name, ast.Tuple, ast.List)):
                    self.expr(t)
        elif isinstance(node, (ast.Global, ast.Nonlocal, ast.Pass, ast.Break, ast.Continue)):
            pass
        elif isinstance(node, getattr(ast, "Match", ())):
            self.expr(node.subject)
            outcomes = []
            for case in node.cases:
                start = set(self.defined)
                for n in _pattern_names(case.pattern):
                    self.bind(n, definite=False)
                    start.add(n)
                for sub in ast.walk(case.pattern):
                    if isinstance(sub, ast.expr) and not isinstance(sub, ast.Name):
                        continue
                    if isinstance(sub, ast.MatchValue):
                        self.expr(sub.value)
                    elif isinstance(sub, ast.MatchClass):
                        self.expr(sub.cls)
                saved = self.defined
                self.defined = start
                self.expr(case.guard)
                self.defined = saved
                outcomes.append(self.branch(case.body, start))
            # Without a catch-all case no branch is sure to run.
            self.defined |= set.intersection(*outcomes) if outcomes and _has_wildcard(node) else set()
        else:  # Expr, Return, Raise, Assert, and anything newer: read what it evaluates
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.branch([child])
                else:
                    self.expr(child)

    def _class_body(self, node: ast.ClassDef) -> None:
        """Loads in a class body read globals unless the class bound them first (flow-wise)."""
        outer = self.defined
        self.defined = set(outer)
        saved_writes, saved_deleted = self.writes, self.deleted
        self.writes, self.deleted = [], []
        # Functions inside the class do not see class names: analyse them against module scope.
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in [*stmt.decorator_list, *_arg_defaults_and_annotations(stmt.args)]:
                    self.expr(sub)
                self.expr(stmt.returns)
                inner_defined = self.defined
                self.defined = outer
                _NestedScope(self, ()).function(stmt)
                self.defined = inner_defined
                self.defined.add(stmt.name)
            else:
                self.stmt(stmt)
        # ``global`` inside methods is recorded straight into writes: keep those, drop class names.
        class_bound, glob, _ = _scope_bindings(node.body)
        kept = [w for w in self.writes if w not in class_bound or w in glob]
        self.writes = saved_writes + kept
        self.deleted = saved_deleted
        self.defined = outer


def _has_wildcard(node: ast.AST) -> bool:
    last = node.cases[-1] if node.cases else None  # type: ignore[attr-defined]
    return bool(last and isinstance(last.pattern, ast.MatchAs) and last.pattern.pattern is None and last.guard is None)

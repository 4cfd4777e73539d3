"""``Logger.makeRecord`` while log correlation is on: records get their fields as they are made.

``makeRecord`` is where a ``Logger`` makes its records: it calls the factory,
then adds the call's ``extra`` (raising KeyError for a name the record has).
While correlation is on and ``Logger.makeRecord`` is logging's own (checked by
compiling logging's source, the same in CPython 3.11 to 3.13, and comparing the
bytecode: a library that wrapped it, ddtrace does, is left alone and every
record then goes through the factory), it is replaced by a function that does
what it did, then sets the five fields after ``extra`` (an ``extra`` of a
field's name wins).

Why the replacement is generated, and compiled in logging's own namespace:
every bytecode instruction on this path costs a record about 25-30 machine
instructions on CPython 3.11 (valgrind, benchmarks/bench_logs.py), and a record
made outside any span needs only five attribute stores more. Measured, per
``logger.info`` outside a span, against logging's own (~45.5k instructions
with a handler that does nothing):

- the check that the factory in force is still ours (another one installed
  over ours must be used, as logging's own ``makeRecord`` would): as a global
  read in logging's namespace, the way ``makeRecord`` reads it, not a dict
  lookup from here; reading the context and testing that it is empty (outside
  every span and tenant scope; nothing else is read then): about 450 in all;
- the five stores: about 350;
- the record itself: calling the record class runs ``LogRecord.__init__`` in a
  frame of its own, behind ``type.__call__``. The replacement runs the body of
  the running ``LogRecord.__init__`` in its own frame instead (taken from its
  source, checked against its bytecode, names renamed), on an instance made by
  ``object.__new__``: about 1,100 fewer than logging's own ``makeRecord``.

So a correlated record made outside a span costs about as many instructions
as an uncorrelated one (-270 to +40 measured, with where objects land in memory;
see docs/logs-and-metrics.md). The body is checked, and compiled, the first
time the replacement is built; like ``_FilledLogRecord.__init__``, it does not
follow a later patch of ``LogRecord.__init__``. When the source of
``LogRecord.__init__`` cannot be read or does not match its bytecode, or a
factory was installed before ours, the record is made by calling the factory
(``_FilledLogRecord`` or a chain over the earlier factory) and only the
check, context read and stores are added. Records made in a span, or with
``extra``, are finished by ``_finish``, a plain function (one more call: these
cost more anyway).
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
import types
from collections.abc import Callable, Mapping
from typing import Any, Final

from tenantrace.observe._context import EMPTY, get_context
from tenantrace.observe._log_fields import (
    FIELD_SET,
    OTEL_SERVICE,
    SPAN_KEY_OR_EMPTY,
    TENANT_KEY_OR_EMPTY,
    context_fields,
    current_fields,
    fill,
)
from tenantrace.observe._log_records import _FilledLogRecord, filled_chained

# logging's module namespace: where the replacement is compiled, so that it
# reads ``_logRecordFactory`` (what ``setLogRecordFactory`` sets) and, in the
# inlined ``LogRecord.__init__``, ``time``, ``os``, ``logThreads``... exactly as
# logging's own code does.
_LOGGING: Final[dict[str, Any]] = vars(logging)

LOGGING_MAKE_RECORD: Final = '''
def makeRecord(self, name, level, fn, lno, msg, args, exc_info,
               func=None, extra=None, sinfo=None):
    """
    A factory method which can be overridden in subclasses to create
    specialized LogRecords.
    """
    rv = _logRecordFactory(name, level, fn, lno, msg, args, exc_info, func,
                         sinfo)
    if extra is not None:
        for key in extra:
            if (key in ["message", "asctime"]) or (key in rv.__dict__):
                raise KeyError("Attempt to overwrite %r in LogRecord" % key)
            rv.__dict__[key] = extra[key]
    return rv
'''

# The replacement. ``_tr_make_rv`` stands for the statements that make ``rv``:
# the body of ``LogRecord.__init__`` on ``_tr_new(_tr_cls)``, or one call of
# ``_tr_make``. The closure's names start with ``_tr_`` so that they never meet
# a name of logging's code. The no-span path is written out: it is the hot one.
_TEMPLATE: Final = """
def _tr_outer(_tr_installed, _tr_logging_make_record, _tr_new, _tr_cls, _tr_make,
              _tr_get_context, _tr_finish):
    def makeRecord(self, name, level, fn, lno, msg, args, exc_info,
                   func=None, extra=None, sinfo=None):
        if _logRecordFactory is not _tr_installed:
            return _tr_logging_make_record(
                self, name, level, fn, lno, msg, args, exc_info, func, extra, sinfo
            )
        _tr_make_rv
        if extra is None and not _tr_get_context():
            rv.trace_id = ""
            rv.span_id = ""
            rv.tenant_id = ""
            rv.service_name = ""
            rv.project_name = ""
            return rv
        return _tr_finish(rv, extra)
    return makeRecord
"""
_CALL_FACTORY: Final = "rv = _tr_make(name, level, fn, lno, msg, args, exc_info, func, sinfo)"
_NEW_RECORD: Final = "rv = _tr_new(_tr_cls)"
# ``LogRecord.__init__``'s parameters, and the names they have in ``makeRecord``.
_INIT_PARAMS: Final = (
    "self", "name", "level", "pathname", "lineno", "msg", "args", "exc_info", "func", "sinfo",
)  # fmt: skip
_RENAMED: Final = {"self": "rv", "pathname": "fn", "lineno": "lno"}
# Nodes after which the body would not mean the same in another function.
_UNSAFE: Final = (
    ast.Return, ast.Yield, ast.YieldFrom, ast.Await, ast.Global, ast.Nonlocal,
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
)  # fmt: skip


def _same_code(code: types.CodeType, reference: types.CodeType) -> bool:
    return (
        code.co_code == reference.co_code
        and code.co_names == reference.co_names
        and code.co_varnames == reference.co_varnames
        and code.co_consts[1:] == reference.co_consts[1:]  # [0] is the docstring
    )


def _first_function(module: types.CodeType) -> types.CodeType:
    return next(c for c in module.co_consts if isinstance(c, types.CodeType))


def is_logging_make_record(function: object) -> bool:
    """True when ``function`` is logging's own ``Logger.makeRecord``, unchanged."""
    if type(function) is not types.FunctionType or function.__globals__ is not _LOGGING:
        return False
    module = compile(LOGGING_MAKE_RECORD, "<makeRecord>", "exec", dont_inherit=True)
    return _same_code(function.__code__, _first_function(module))


def _init_function() -> ast.FunctionDef | None:
    """The source of the running ``LogRecord.__init__``, parsed; None when it is not
    at hand or does not compile to the code that runs (someone replaced it)."""
    init = logging.LogRecord.__init__
    if type(init) is not types.FunctionType or init.__globals__ is not _LOGGING:
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError, SyntaxError):  # pragma: no cover - no source shipped
        return None
    function = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(function, ast.FunctionDef):  # pragma: no cover - defensive
        return None
    # CPython 3.11 compiles ``time.time()`` differently when ``time`` is a name
    # the module imported: the names logging imported are imported here too.
    modules = [n for n in init.__code__.co_names if isinstance(_LOGGING.get(n), types.ModuleType)]
    prelude = ast.parse(f"import {', '.join(modules)}").body if modules else []
    checked = ast.Module(body=[*prelude, function], type_ignores=[])
    module = compile(checked, "<LogRecord.__init__>", "exec", dont_inherit=True)
    same = _same_code(init.__code__, _first_function(module))
    parameters = tuple(a.arg for a in function.args.args)
    return function if same and parameters == _INIT_PARAMS else None


def _init_body() -> list[ast.stmt] | None:
    """The statements of the running ``LogRecord.__init__``, renamed for ``makeRecord``;
    None when they are not at hand or could mean something else there."""
    function = _init_function()
    if function is None:
        return None
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    taken = {"rv", "fn", "lno", "extra", "kwargs", "super", "__class__"}
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, _UNSAFE):
            return None
        if isinstance(node, ast.Name):
            if node.id in taken or node.id.startswith("_tr_"):
                return None
            node.id = _RENAMED.get(node.id, node.id)
    return body


def _compile(record_statements: list[ast.stmt]) -> types.CodeType:
    """The code of ``_tr_outer`` with ``_tr_make_rv`` replaced by ``record_statements``."""
    tree = ast.parse(_TEMPLATE)
    outer = tree.body[0]
    assert isinstance(outer, ast.FunctionDef)
    inner = outer.body[0]
    assert isinstance(inner, ast.FunctionDef)
    at = next(i for i, s in enumerate(inner.body) if ast.unparse(s) == "_tr_make_rv")
    inner.body[at : at + 1] = record_statements
    ast.fix_missing_locations(tree)
    module = compile(tree, "<tenantrace: Logger.makeRecord with log correlation>", "exec")
    return _first_function(module)


_compiled: dict[bool, types.CodeType] = {}


def _outer_code(inline: bool) -> types.CodeType | None:
    code = _compiled.get(inline)
    if code is None:
        if inline:
            body = _init_body()
            if body is None:
                return None
            code = _compile([ast.parse(_NEW_RECORD).body[0], *body])
        else:
            code = _compile(ast.parse(_CALL_FACTORY).body)
        _compiled[inline] = code
    return code


# ------------------------------------------------------------------ the rest

# Set by ``install`` (under correlation's lock).
_over_foreign_factory: bool = False  # the factory before ours is not logging's own
_logging_make_record: Callable[..., logging.LogRecord] | None = None
_active: Callable[..., logging.LogRecord] | None = None  # the replacement in place


def _add_extra(values: dict[str, Any], extra: Mapping[str, object]) -> None:
    """Logging's own handling of ``extra`` (as its ``makeRecord``)."""
    for key in extra:
        if key in ("message", "asctime") or key in values:
            raise KeyError(f"Attempt to overwrite {key!r} in LogRecord")
        values[key] = extra[key]


def _finish(record: logging.LogRecord, extra: Mapping[str, object] | None) -> logging.LogRecord:
    """The replacement's other paths: a call with ``extra``, or a record made in a
    context that is not empty (a span, a tenant scope, baggage...).

    With an ``extra`` that names no field, the fields are set before it, as
    attribute stores: after it they would be added to the ``__dict__`` the
    extra materialised, which costs about 3,400 instructions more (they then
    come before the extra's keys in ``__dict__``, not after). An ``extra``
    naming a field, or a record from another factory, which may have fields of
    its own, gets logging's handling first, then the fields it did not set.
    """
    if extra is not None and not _over_foreign_factory and FIELD_SET.isdisjoint(extra):
        ctx = get_context()
        fields = context_fields(ctx) if ctx else EMPTY
        (
            record.trace_id,
            record.span_id,
            record.tenant_id,
            record.service_name,
            record.project_name,
        ) = fields
        _add_extra(record.__dict__, extra)
        return record
    if extra is not None:
        _add_extra(record.__dict__, extra)
        fill(record.__dict__, current_fields())  # where ``extra`` did not set them
        return record
    ctx = get_context()
    if ctx and (ctx.get(SPAN_KEY_OR_EMPTY) is not None or ctx.get(TENANT_KEY_OR_EMPTY) is not None):
        fields = context_fields(ctx)
        (
            record.trace_id,
            record.span_id,
            record.tenant_id,
            record.service_name,
            record.project_name,
        ) = fields
        if _over_foreign_factory and fields[3] and getattr(record, OTEL_SERVICE, None) == "":
            setattr(record, OTEL_SERVICE, fields[3])
    else:
        record.trace_id = ""
        record.span_id = ""
        record.tenant_id = ""
        record.service_name = ""
        record.project_name = ""
    return record


def _build(
    installed: Callable[..., logging.LogRecord],
    previous: Callable[..., logging.LogRecord],
    logging_make_record: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    inline = previous is logging.LogRecord
    code = _outer_code(inline) if inline else None
    if code is None:
        code = _outer_code(inline=False)
        assert code is not None
        inline = False
    make: Callable[..., logging.LogRecord] = (
        _FilledLogRecord if previous is logging.LogRecord else filled_chained(previous)
    )
    outer = types.FunctionType(code, {"__builtins__": __builtins__})
    inner = outer(
        installed,
        logging_make_record,
        object.__new__,
        _FilledLogRecord,
        make,
        get_context,
        _finish,
    )
    # The same code and closure, with logging's namespace for its globals.
    function = types.FunctionType(
        inner.__code__, _LOGGING, "makeRecord", inner.__defaults__, inner.__closure__
    )
    function.__qualname__ = "Logger.makeRecord"
    function.__module__ = __name__
    function.__doc__ = "logging's own ``Logger.makeRecord``, then the five correlation fields."
    function.inlined = inline  # type: ignore[attr-defined]
    return function


def install(
    installed: Callable[..., logging.LogRecord], previous: Callable[..., logging.LogRecord]
) -> bool:
    """Put the replacement in place when ``Logger.makeRecord`` is logging's own (or a
    replacement of ours); ``installed`` is correlation's factory, ``previous`` the
    one before it. True if it is in place."""
    global _logging_make_record, _over_foreign_factory, _active  # noqa: PLW0603 - under the lock
    current = logging.Logger.__dict__.get("makeRecord")
    if current is not None and current is _active:
        current = _logging_make_record
    if _LOGGING.get("_logRecordFactory") is not logging.getLogRecordFactory():
        return False  # logging keeps its factory elsewhere now: the factory alone does it
    if not SPAN_KEY_OR_EMPTY or not TENANT_KEY_OR_EMPTY or not is_logging_make_record(current):
        return False
    assert current is not None
    _logging_make_record = current
    _over_foreign_factory = previous is not logging.LogRecord
    _active = _build(installed, previous, current)
    logging.Logger.makeRecord = _active  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Put logging's own ``makeRecord`` back if the replacement is in place."""
    global _active  # noqa: PLW0603 - under the lock
    if _active is not None and logging.Logger.__dict__.get("makeRecord") is _active:
        logging.Logger.makeRecord = _logging_make_record  # type: ignore[method-assign,assignment]
    _active = None


def active() -> Callable[..., logging.LogRecord] | None:
    """The replacement in place, if any (for tests and diagnostics)."""
    if _active is not None and logging.Logger.__dict__.get("makeRecord") is _active:
        return _active
    return None

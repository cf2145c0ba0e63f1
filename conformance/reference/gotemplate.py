"""A small executor for Go ``text/template``, enough for Ollama model templates.

Ollama renders every prompt through the model's Go template (reference facts §22.2), and a
client can only observe that through the model's answer — which the reference server makes
exact for uploaded weights (see :mod:`.weights`). Supported: text with ``{{- -}}`` trimming,
comments, field chains (``.Messages``, ``$.System``, ``$m.Content``), variables (``$x :=``, ``=``),
literals, pipelines with ``|``, parenthesised calls, ``if``/``else if``/``with``/``range`` (with
``else``, ``break``, ``continue``) and the functions model templates use (``and or not len index
slice eq ne lt le gt ge print printf println json currentDate yesterdayDate``). ``define``,
``template`` and ``block`` are not supported and fail to parse.

Data is Python dicts/lists; a field ``.ToolCalls`` is looked up as ``ToolCalls``, then as the
JSON name ``tool_calls`` (Ollama passes Go structs whose JSON names are snake_case).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .gojson import dumps, format_float_v, go_quote

NO_VALUE = "<no value>"


class TemplateExecError(ValueError):
    """A template that cannot be parsed or executed (``template: :1: ...``)."""


# --- lexing ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*") | (?P<raw>`[^`]*`) | (?P<char>'(?:[^'\\]|\\.)+') |
    (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?) |
    (?P<var>\$\w*) | (?P<field>(?:\.\w+)+|\.) |
    (?P<decl>:=) | (?P<assign>=) | (?P<pipe>\|) | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,) |
    (?P<ident>[A-Za-z_]\w*)
    )""",
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str
    text: str


def _lex(body: str, line: int) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if not match or match.end() == pos:
            raise TemplateExecError(
                f"template: :{line}: unexpected {body[pos : pos + 10]!r} in command"
            )
        kind = match.lastgroup or ""
        text = match.group(kind)
        # A field directly after a value (e.g. "$m.Content", "(x).Y") chains onto it.
        tokens.append(_Tok(kind, text))
        pos = match.end()
    return tokens


# --- parsing ---------------------------------------------------------------------------------


@dataclass
class Node:
    line: int = 0


@dataclass
class Text(Node):
    text: str = ""


@dataclass
class Pipe(Node):
    decl: list[str] = field(default_factory=list)
    assign: bool = False
    cmds: list[list[Any]] = field(default_factory=list)  # each command: list of args


@dataclass
class Action(Node):
    pipe: Pipe = field(default_factory=Pipe)


@dataclass
class Branch(Node):
    kind: str = "if"  # if | with | range
    pipe: Pipe = field(default_factory=Pipe)
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


@dataclass
class Control(Node):
    kind: str = "break"


@dataclass
class _Field:
    base: Any  # None: dot; "$x": variable; Pipe: parenthesised
    names: list[str]


def _split_actions(text: str) -> list[tuple[str, str, int]]:
    """[(kind, content, line)] with kind "text" or "action"; trim markers applied."""
    parts: list[tuple[str, str, int]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            parts.append(("text", text[pos:], text.count("\n", 0, pos) + 1))
            break
        end = text.find("}}", start + 2)
        line = text.count("\n", 0, start) + 1
        if end < 0:
            raise TemplateExecError(f"template: :{line}: unclosed action")
        chunk = text[pos:start]
        inner = text[start + 2 : end]
        if (
            inner.startswith("- ")
            or inner == "-"
            or inner.startswith("-\n")
            or inner.startswith("-\t")
        ):
            chunk = chunk.rstrip()
            inner = inner[1:]
        trim_right = inner.endswith(" -") or inner.endswith("\n-") or inner.endswith("\t-")
        if trim_right:
            inner = inner[:-1]
        parts.append(("text", chunk, text.count("\n", 0, pos) + 1))
        parts.append(("action", inner.strip(), line))
        pos = end + 2
        if trim_right:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
    return parts


class _Parser:
    def __init__(self, text: str) -> None:
        self.parts = _split_actions(text)
        self.index = 0

    def parse(self) -> list[Node]:
        nodes, stop = self._list(())
        if stop is not None:
            raise TemplateExecError(f"template: :{stop[1]}: unexpected {{{{{stop[0]}}}}}")
        return nodes

    def _list(self, stops: tuple[str, ...]) -> tuple[list[Node], tuple[str, int, str] | None]:
        nodes: list[Node] = []
        while self.index < len(self.parts):
            kind, content, line = self.parts[self.index]
            self.index += 1
            if kind == "text":
                if content:
                    nodes.append(Text(line, content))
                continue
            if content.startswith("/*"):
                continue
            word = content.split(None, 1)[0] if content else ""
            rest = content[len(word) :].strip()
            if word in ("end", "else"):
                if word in stops:
                    return nodes, (word, line, rest)
                raise TemplateExecError(f"template: :{line}: unexpected {{{{{word}}}}}")
            if word in ("if", "with", "range"):
                nodes.append(self._branch(word, rest, line))
            elif word in ("break", "continue"):
                nodes.append(Control(line, word))
            elif word in ("define", "template", "block"):
                raise TemplateExecError(f"template: :{line}: {{{{{word}}}}} is not supported")
            elif not content:
                raise TemplateExecError(f"template: :{line}: missing value for command")
            else:
                nodes.append(Action(line, _pipe(content, line)))
        if stops:
            raise TemplateExecError(f"template: :{self._last_line()}: unexpected EOF")
        return nodes, None

    def _last_line(self) -> int:
        return self.parts[-1][2] if self.parts else 1

    def _branch(self, kind: str, rest: str, line: int) -> Branch:
        node = Branch(line, kind, _pipe(rest, line))
        body, stop = self._list(("end", "else"))
        node.body = body
        if stop is not None and stop[0] == "else":
            else_rest = stop[2]
            if else_rest.startswith(("if ", "with ")):
                sub_kind, sub_rest = else_rest.split(None, 1)
                node.orelse = [self._branch(sub_kind, sub_rest, stop[1])]
                return node
            orelse, stop = self._list(("end",))
            node.orelse = orelse
        return node


def _pipe(content: str, line: int) -> Pipe:
    tokens = _lex(content, line)
    pipe = Pipe(line)
    # Declarations: $x := ..., $i, $v := ..., $x = ...
    decl_end = next((i for i, t in enumerate(tokens) if t.kind in ("decl", "assign")), -1)
    if decl_end > 0 and all(t.kind in ("var", "comma") for t in tokens[:decl_end]):
        pipe.decl = [t.text for t in tokens[:decl_end] if t.kind == "var"]
        pipe.assign = tokens[decl_end].kind == "assign"
        tokens = tokens[decl_end + 1 :]
    pipe.cmds, rest = _commands(tokens, line)
    if rest:
        raise TemplateExecError(f"template: :{line}: unexpected {rest[0].text!r} in command")
    if not pipe.cmds:
        raise TemplateExecError(f"template: :{line}: missing value for command")
    return pipe


def _commands(tokens: list[_Tok], line: int) -> tuple[list[list[Any]], list[_Tok]]:
    cmds: list[list[Any]] = [[]]
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "rp":
            return [c for c in cmds if c], tokens[i:]
        if tok.kind == "pipe":
            cmds.append([])
            i += 1
            continue
        if tok.kind == "lp":
            inner, rest = _commands(tokens[i + 1 :], line)
            if not rest or rest[0].kind != "rp":
                raise TemplateExecError(f"template: :{line}: unclosed left paren")
            i = len(tokens) - len(rest) + 1
            arg: Any = Pipe(line, cmds=inner)
            while i < len(tokens) and tokens[i].kind == "field" and tokens[i].text != ".":
                arg = _Field(arg, tokens[i].text.split(".")[1:])
                i += 1
            cmds[-1].append(arg)
            continue
        cmds[-1].append(_arg(tok, tokens, i))
        i += 1
        if (
            tok.kind == "var"
            and i < len(tokens)
            and tokens[i].kind == "field"
            and tokens[i].text != "."
        ):
            cmds[-1][-1] = _Field(tok.text, tokens[i].text.split(".")[1:])
            i += 1
    return [c for c in cmds if c], []


def _arg(tok: _Tok, tokens: list[_Tok], index: int) -> Any:
    kind, text = tok.kind, tok.text
    if kind == "str":
        return (
            "lit",
            bytes(text[1:-1], "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8"),
        )
    if kind == "raw":
        return ("lit", text[1:-1])
    if kind == "char":
        return ("lit", ord(bytes(text[1:-1], "utf-8").decode("unicode_escape")))
    if kind == "num":
        return ("lit", float(text) if any(c in text for c in ".eE") else int(text))
    if kind == "field":
        return _Field(None, [] if text == "." else text.split(".")[1:])
    if kind == "var":
        return _Field(text, [])
    if kind == "ident":
        if text in ("true", "false"):
            return ("lit", text == "true")
        if text == "nil":
            return ("lit", None)
        return ("fn", text)
    raise TemplateExecError(f"unexpected {text!r}")


# --- execution -------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def truthy(value: Any) -> bool:
    """Go's notion of a true value in ``if``/``with``."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def _go_print(value: Any) -> str:
    if value is None:
        return NO_VALUE
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float_v(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(_go_print(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_go_print(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _snake(name: str) -> str:
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return out.replace("I_D", "ID").lower().replace("_i_d", "_id")


def lookup(value: Any, name: str) -> Any:
    """``.Name`` on a dict: Go name first, then its JSON (snake_case) spelling."""
    if isinstance(value, Mapping):
        if name in value:
            return value[name]
        snake = _snake(name)
        if snake in value:
            return value[snake]
        lowered = name[:1].lower() + name[1:]
        return value.get(lowered)
    return None


def _printf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    values = list(args)
    pos = 0
    for match in re.finditer(r"%([-+# 0]*\d*(?:\.\d+)?)([vsdqtfgx%])", fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        verb = match.group(2)
        if verb == "%":
            out.append("%")
            continue
        value = values.pop(0) if values else None
        if verb == "q":
            out.append(go_quote(str(value)))
        elif verb == "d" and isinstance(value, int | float):
            out.append(str(int(value)))
        elif verb in ("f", "g") and isinstance(value, int | float):
            out.append(format(float(value), match.group(1) + verb))
        else:
            out.append(_go_print(value))
    out.append(fmt[pos:])
    return "".join(out)


def _compare(op: str, a: Any, *rest: Any) -> bool:
    if op == "eq":
        return any(a == b for b in rest)
    b = rest[0] if rest else None
    try:
        return {
            "ne": lambda: a != b,
            "lt": lambda: a < b,
            "le": lambda: a <= b,
            "gt": lambda: a > b,
            "ge": lambda: a >= b,
        }[op]()
    except TypeError:
        raise TemplateExecError(f"error calling {op}: incompatible types for comparison") from None


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            if isinstance(value, Mapping):
                return None
            raise TemplateExecError("error calling index: index out of range") from None
    return value


def _slice(value: Any, *bounds: Any) -> Any:
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(value)
    if not 0 <= start <= end <= len(value):
        raise TemplateExecError(f"error calling slice: index out of range: {start}")
    return value[start:end]


def _json(value: Any) -> str:
    return dumps(value).decode("utf-8")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "not": lambda v: not truthy(v),
    "len": lambda v: len(v) if v is not None else 0,
    "index": _index,
    "slice": _slice,
    "print": lambda *a: "".join(_go_print(v) for v in a),
    "println": lambda *a: " ".join(_go_print(v) for v in a) + "\n",
    "printf": _printf,
    "json": _json,
    "html": lambda v: _go_print(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
    "urlquery": lambda *a: "".join(_go_print(v) for v in a),
    "js": lambda v: _go_print(v),
    "currentDate": lambda: _dt.date.today().isoformat(),
    "yesterdayDate": lambda: (_dt.date.today() - _dt.timedelta(days=1)).isoformat(),
    "toTypeScriptType": lambda v: _go_print(v),
    "call": lambda f, *a: f(*a),
}


class _Exec:
    def __init__(self, data: Any, cut_at_response: bool) -> None:
        self.root = data
        self.out: list[str] = []
        self.cut_at_response = cut_at_response
        self.cut = False

    def emit(self, text: str) -> None:
        if not self.cut:
            self.out.append(text)

    def run(self, nodes: Sequence[Node], dot: Any, scope: dict[str, Any]) -> None:
        for node in nodes:
            if self.cut:
                return
            if isinstance(node, Text):
                self.emit(node.text)
            elif isinstance(node, Action):
                value = self.pipe(node.pipe, dot, scope)
                if not node.pipe.decl:
                    self.emit(_go_print(value))
            elif isinstance(node, Control):
                raise _Break() if node.kind == "break" else _Continue()
            elif isinstance(node, Branch):
                self.branch(node, dot, scope)

    def branch(self, node: Branch, dot: Any, scope: dict[str, Any]) -> None:
        inner = dict(scope)
        value = self.pipe(node.pipe, dot, inner)
        if node.kind == "range":
            items: list[tuple[Any, Any]]
            if isinstance(value, Mapping):
                items = sorted(value.items())
            elif isinstance(value, int) and not isinstance(value, bool):
                items = [(i, i) for i in range(value)]
            else:
                items = list(enumerate(value or []))
            if not items:
                self.run(node.orelse, dot, scope)
                return
            for key, item in items:
                local = dict(scope)
                if len(node.pipe.decl) == 2:
                    local[node.pipe.decl[0]], local[node.pipe.decl[1]] = key, item
                elif node.pipe.decl:
                    local[node.pipe.decl[0]] = item
                try:
                    self.run(node.body, item, local)
                except _Continue:
                    continue
                except _Break:
                    break
            return
        if truthy(value):
            self.run(node.body, value if node.kind == "with" else dot, inner)
        else:
            self.run(node.orelse, dot, scope)

    def pipe(self, pipe: Pipe, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = None
        for index, cmd in enumerate(pipe.cmds):
            extra = [value] if index else []
            value = self.command(cmd, dot, scope, extra)
        for name in pipe.decl:
            scope[name] = value
        return value

    def command(self, cmd: list[Any], dot: Any, scope: dict[str, Any], extra: list[Any]) -> Any:
        head = cmd[0]
        if isinstance(head, tuple) and head[0] == "fn":
            name = head[1]
            if name in ("and", "or"):
                result: Any = None
                for arg in [*cmd[1:], *([("lit", extra[0])] if extra else [])]:
                    result = self.arg(arg, dot, scope)
                    if truthy(result) is (name == "or"):
                        return result
                return result
            args = [self.arg(a, dot, scope) for a in cmd[1:]] + extra
            if name in ("eq", "ne", "lt", "le", "gt", "ge"):
                return _compare(name, *args)
            func = FUNCTIONS.get(name)
            if func is None:
                raise TemplateExecError(f'template: :1: function "{name}" not defined')
            try:
                return func(*args)
            except TemplateExecError:
                raise
            except Exception as exc:
                raise TemplateExecError(f"error calling {name}: {exc}") from None
        if len(cmd) > 1 or extra:
            raise TemplateExecError("template: :1: can't give argument to non-function")
        return self.arg(head, dot, scope)

    def arg(self, arg: Any, dot: Any, scope: dict[str, Any]) -> Any:
        if isinstance(arg, tuple):
            if arg[0] == "lit":
                return arg[1]
            return self.command([arg], dot, scope, [])
        if isinstance(arg, Pipe):
            return self.pipe(arg, dot, dict(scope))
        if isinstance(arg, _Field):
            if arg.base is None:
                value = dot
            elif isinstance(arg.base, str):
                if arg.base == "$":
                    value = self.root
                elif arg.base in scope:
                    value = scope[arg.base]
                else:
                    raise TemplateExecError(f'template: :1: undefined variable "{arg.base}"')
            else:
                value = self.arg(arg.base, dot, scope)
            for name in arg.names:
                value = lookup(value, name)
                if name == "Response" and self.cut_at_response:
                    self.cut = True
            return value
        return arg


@dataclass
class GoTemplate:
    """A parsed template, executable many times."""

    source: str
    nodes: list[Node]

    @classmethod
    def parse(cls, source: str) -> GoTemplate:
        return cls(source, _Parser(source).parse())

    def execute(self, data: Any, *, cut_at_response: bool = False) -> str:
        """Render ``data``; ``cut_at_response`` stops output at the ``.Response`` field (Ollama
        renders the last turn of a legacy template only up to where the answer goes)."""
        runner = _Exec(data, cut_at_response)
        try:
            runner.run(self.nodes, data, {"$": data})
        except (_Break, _Continue):
            pass
        except RecursionError:
            raise TemplateExecError("template: :1: exceeded maximum template depth") from None
        return "".join(runner.out)

    def uses(self, name: str) -> bool:
        """Whether the template mentions the field ``name`` anywhere (``Template.Vars``)."""
        return re.search(r"\.\b" + re.escape(name) + r"\b", self.source) is not None

"""The two lark grammars (LALR, so a malformed file fails fast with the offending line)."""

from __future__ import annotations

from functools import cache
from typing import Any

from lark import Lark, Token, Transformer

from lvs_cli.importer.diagnostics import Diagnostics
from lvs_cli.importer.syntax import Directive, parse_with, unquote

# Piranha / pulse lvs.cf (lvs.cf(5)): global `key = value...` settings, then sections such as
# `virtual NAME { ... }` holding settings and `server NAME { ... }` sections. A value runs to the end
# of its line and may be several words (`address = 192.0.2.10 eth0:1`) or a quoted string with
# nanny's backslash escapes (`send = "GET / HTTP/1.0\r\n\r\n"`).
LVS_CF_GRAMMAR = r"""
start: (_NL | _item)*
_item: setting | section | include
setting: KEY EQUAL _value* _NL
section: KEY NAME LBRACE (_NL | _item)* RBRACE
include: INCLUDE _value+ _NL
_value: VALUE | STRING

INCLUDE.3: /include(?=[ \t])/
KEY: /[A-Za-z_][A-Za-z0-9_.-]*/
NAME: /[^\s{}="#!]+/
VALUE: /[^\s"{}#!][^\s"{}]*/
STRING: /"(\\.|[^"\\\n])*"/
EQUAL: "="
LBRACE.2: /[ \t]*(\r?\n[ \t]*)*\{/
RBRACE: "}"
_NL: /(\r?\n[ \t]*)+/
COMMENT.4: /[#!][^\n]*/

%ignore /[ \t]+/
%ignore /\\[ \t]*\r?\n/
%ignore COMMENT
"""

# keepalived.conf (keepalived.conf(5)): `keyword args...` lines and `keyword args... { ... }` blocks,
# nested (virtual_server > real_server > HTTP_GET > url). The opening brace may sit on the next line,
# and the last statement of a block may share the line of its closing brace (`url { path / }`).
KEEPALIVED_GRAMMAR = r"""
start: (_NL | _statement)*
_statement: simple | block
simple: WORD _arg* _NL
block: WORD _arg* LBRACE (_NL | _statement)* last? RBRACE
last: WORD _arg*
_arg: WORD | STRING

WORD: /[^\s{}"#!][^\s{}"]*/
STRING: /"(\\.|[^"\\\n])*"/
LBRACE.2: /[ \t]*(\r?\n[ \t]*)*\{/
RBRACE: "}"
_NL: /(\r?\n[ \t]*)+/
COMMENT.4: /[#!][^\n]*/

%ignore /[ \t]+/
%ignore /\\[ \t]*\r?\n/
%ignore COMMENT
"""


class _LvsCfBuilder(Transformer[Token, Any]):
    """Builds Directives while the LALR parser reduces (no intermediate parse tree)."""

    def start(self, items: list[Directive]) -> tuple[Directive, ...]:
        return tuple(items)

    def setting(self, children: list[Token]) -> Directive:
        head = children[0]
        values = tuple(unquote(str(token)) for token in children if token.type in {"VALUE", "STRING"})
        return Directive(str(head), values, head.line or 0)

    def include(self, children: list[Token]) -> Directive:
        return Directive(
            "include", tuple(unquote(str(token)) for token in children[1:]), children[0].line or 0
        )

    def section(self, children: list[Token | Directive]) -> Directive:
        head, name = children[0], children[1]
        assert isinstance(head, Token) and isinstance(name, Token)
        items = tuple(child for child in children if isinstance(child, Directive))
        return Directive(str(head), (str(name),), head.line or 0, items)


class _KeepalivedBuilder(Transformer[Token, Any]):
    def start(self, items: list[Directive]) -> tuple[Directive, ...]:
        return tuple(items)

    def simple(self, children: list[Token]) -> Directive:
        head = children[0]
        args = tuple(unquote(str(token)) for token in children[1:] if token.type in {"WORD", "STRING"})
        return Directive(str(head), args, head.line or 0)

    last = simple

    def block(self, children: list[Token | Directive]) -> Directive:
        head = children[0]
        assert isinstance(head, Token)
        args = tuple(
            unquote(str(child))
            for child in children[1:]
            if isinstance(child, Token) and child.type in {"WORD", "STRING"}
        )
        items = tuple(child for child in children if isinstance(child, Directive))
        return Directive(str(head), args, head.line or 0, items)


@cache
def lvs_cf_parser() -> Lark:
    return Lark(LVS_CF_GRAMMAR, parser="lalr", maybe_placeholders=False, transformer=_LvsCfBuilder())


@cache
def keepalived_parser() -> Lark:
    return Lark(KEEPALIVED_GRAMMAR, parser="lalr", maybe_placeholders=False, transformer=_KeepalivedBuilder())


def parse_lvs_cf(text: str, diagnostics: Diagnostics) -> tuple[Directive, ...]:
    """Parse an lvs.cf file into directives (`key = a b` becomes keyword `key`, args `a`, `b`)."""
    directives: tuple[Directive, ...] = parse_with(lvs_cf_parser(), text, diagnostics)
    return directives


def parse_keepalived(text: str, diagnostics: Diagnostics) -> tuple[Directive, ...]:
    """Parse a keepalived.conf file into directives."""
    directives: tuple[Directive, ...] = parse_with(keepalived_parser(), text, diagnostics)
    return directives

"""The two lark grammars (LALR, so a malformed file fails fast with the offending line)."""

from __future__ import annotations

from functools import cache

from lark import Lark, Token, Tree

from lvs_cli.importer.diagnostics import Diagnostics
from lvs_cli.importer.syntax import Directive, child_trees, parse_with, unquote

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


@cache
def lvs_cf_parser() -> Lark:
    return Lark(LVS_CF_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@cache
def keepalived_parser() -> Lark:
    return Lark(KEEPALIVED_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse_lvs_cf(text: str, diagnostics: Diagnostics) -> tuple[Directive, ...]:
    """Parse an lvs.cf file into directives (`key = a b` becomes keyword `key`, args `a`, `b`)."""
    tree = parse_with(lvs_cf_parser(), text, diagnostics)
    return tuple(_lvs_cf_directive(item) for item in child_trees(tree))


def _lvs_cf_directive(tree: Tree[Token]) -> Directive:
    tokens = [child for child in tree.children if isinstance(child, Token)]
    head = tokens[0]
    line = head.line or 0
    if tree.data == "setting":
        values = tuple(unquote(str(token)) for token in tokens if token.type in {"VALUE", "STRING"})
        return Directive(str(head), values, line)
    if tree.data == "include":
        values = tuple(unquote(str(token)) for token in tokens[1:])
        return Directive("include", values, line)
    name = next(token for token in tokens if token.type == "NAME")
    children = tuple(_lvs_cf_directive(child) for child in child_trees(tree))
    return Directive(str(head), (str(name),), line, children)


def parse_keepalived(text: str, diagnostics: Diagnostics) -> tuple[Directive, ...]:
    """Parse a keepalived.conf file into directives."""
    tree = parse_with(keepalived_parser(), text, diagnostics)
    return tuple(_keepalived_directive(item) for item in child_trees(tree))


def _keepalived_directive(tree: Tree[Token]) -> Directive:
    tokens = [child for child in tree.children if isinstance(child, Token)]
    head = tokens[0]
    args = tuple(unquote(str(token)) for token in tokens[1:] if token.type in {"WORD", "STRING"})
    if tree.data in {"simple", "last"}:
        return Directive(str(head), args, head.line or 0)
    children = tuple(_keepalived_directive(child) for child in child_trees(tree))
    return Directive(str(head), args, head.line or 0, children)

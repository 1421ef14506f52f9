"""The syntax tree both legacy formats parse into, and the lark plumbing shared by both grammars.

``lvs.cf`` (``key = value`` lines and ``virtual NAME { }`` sections) and ``keepalived.conf``
(``keyword args`` lines and ``keyword args { }`` blocks) differ in surface syntax but have the same
shape: a tree of directives, each a keyword, its arguments and an optional block of children. Each
grammar builds that tree; the interpreters (``piranha.py``, ``keepalived.py``) give it meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from lvs_cli.importer.diagnostics import Diagnostics


@dataclass(frozen=True)
class Directive:
    """One statement of a config file: ``keyword args...`` or ``keyword args... { children }``."""

    keyword: str
    args: tuple[str, ...]
    line: int
    children: tuple[Directive, ...] | None = None

    @property
    def is_block(self) -> bool:
        return self.children is not None

    @property
    def value(self) -> str:
        """All arguments as one space-joined string (``address = 192.0.2.10 eth0:1``)."""
        return " ".join(self.args)

    def blocks(self) -> tuple[Directive, ...]:
        return self.children or ()


def shifted(directive: Directive, offset: int) -> Directive:
    """The same directive with every line number moved by ``offset`` (files imported together)."""
    children = None if directive.children is None else tuple(shifted(c, offset) for c in directive.children)
    return Directive(directive.keyword, directive.args, directive.line + offset, children)


def unquote(text: str) -> str:
    """Strip the quotes of a quoted token; escapes stay as written (nanny and keepalived read them)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type in {"_NL", "NEWLINE"}:
        return "end of line"
    return repr(str(token))


def parse_with(parser: Lark, text: str, diagnostics: Diagnostics) -> Any:
    """Run ``parser`` (its inline transformer builds the result); turn every lark error into a
    ConfigError naming the line."""
    if not text.endswith("\n"):
        text += "\n"  # the grammars end statements at a newline
    try:
        return parser.parse(text)
    except UnexpectedEOF as eof:
        raise diagnostics.error(
            _last_line(text), _unclosed_message(parser, text) or "unexpected end of file"
        ) from eof
    except UnexpectedToken as unexpected:
        token = unexpected.token
        if token.type == "$END":
            unclosed = _unclosed_message(parser, text)
            raise diagnostics.error(_last_line(text), unclosed or "unexpected end of file") from unexpected
        line = token.line if token.line is not None else _last_line(text)
        if token.type == "RBRACE":
            raise diagnostics.error(line, "'}' without a matching '{'") from unexpected
        expected = _expected_words(unexpected.expected)
        raise diagnostics.error(
            line, f"unexpected {describe_token(token)}; expected {expected}"
        ) from unexpected
    except UnexpectedCharacters as unexpected:
        position = unexpected.pos_in_stream or 0
        char = text[position] if position < len(text) else ""
        what = "unterminated quoted string" if char == '"' else f"unexpected character {char!r}"
        raise diagnostics.error(unexpected.line, what) from unexpected
    except UnexpectedInput as unexpected:  # any other lark parse error
        raise diagnostics.error(
            unexpected.line or _last_line(text), str(unexpected).splitlines()[0]
        ) from unexpected


_TERMINAL_WORDS = {
    "RBRACE": "'}'",
    "LBRACE": "'{'",
    "EQUAL": "'='",
    "_NL": "end of line",
    "KEY": "a setting name",
    "NAME": "a name",
    "WORD": "a keyword or value",
    "VALUE": "a value",
    "STRING": "a quoted string",
    "INCLUDE": "'include'",
}


def _expected_words(expected: set[str]) -> str:
    if expected == {"LBRACE"}:  # lvs.cf: `key value` without '=' reads as a section header
        return "'{' to open a section (settings are written `key = value`)"
    words = sorted({_TERMINAL_WORDS.get(name, name) for name in expected})
    return " or ".join(words) if words else "something else"


def _last_line(text: str) -> int:
    return max(1, text.rstrip("\n").count("\n") + 1)


def _unclosed_message(parser: Lark, text: str) -> str | None:
    """Name the line of the '{' that never got its '}' (the parser only knows the file ended)."""
    open_lines: list[int] = []
    try:
        for token in parser.lex(text):
            if token.type == "LBRACE":
                # the token may start with the newlines before the brace: count the brace's own line
                open_lines.append((token.line or 1) + str(token).count("\n"))
            elif token.type == "RBRACE" and open_lines:
                open_lines.pop()
    except UnexpectedInput:
        return None
    if not open_lines:
        return None
    return f"unexpected end of file: the block opened at line {open_lines[-1]} is not closed with '}}'"

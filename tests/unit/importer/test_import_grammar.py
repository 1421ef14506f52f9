"""Both lark grammars: the directive trees they build, and syntax errors that name the line."""

from __future__ import annotations

import pytest
from lvs_cli.importer.diagnostics import ConfigError, Diagnostics
from lvs_cli.importer.grammars import parse_keepalived, parse_lvs_cf
from lvs_cli.importer.syntax import Directive


def lvs_cf(text: str) -> tuple[Directive, ...]:
    return parse_lvs_cf(text, Diagnostics("lvs.cf"))


def keepalived(text: str) -> tuple[Directive, ...]:
    return parse_keepalived(text, Diagnostics("keepalived.conf"))


def error_of(parse: object, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text)  # type: ignore[operator]
    return caught.value


# --- lvs.cf -------------------------------------------------------------------------------------------


def test_lvs_cf_settings_sections_and_lines() -> None:
    text = (
        "# header comment\n"
        "serial_no = 3\n"
        "\n"
        "nat_router = 10.0.0.1 eth1:1   # trailing comment\n"
        "virtual web.example {\n"
        "    address = 192.0.2.10 eth0:1\n"
        "    server s-1 {\n"
        "        weight = 2\n"
        "    }\n"
        "}\n"
    )
    tree = lvs_cf(text)
    assert tree == (
        Directive("serial_no", ("3",), 2),
        Directive("nat_router", ("10.0.0.1", "eth1:1"), 4),
        Directive(
            "virtual",
            ("web.example",),
            5,
            (
                Directive("address", ("192.0.2.10", "eth0:1"), 6),
                Directive("server", ("s-1",), 7, (Directive("weight", ("2",), 8),)),
            ),
        ),
    )


def test_lvs_cf_quoted_strings_keep_nanny_escapes_and_hashes() -> None:
    tree = lvs_cf('send = "GET / HTTP/1.0\\r\\n\\r\\n"\nexpect = "# not a comment"\nsend_program = ""\n')
    assert tree[0].args == ("GET / HTTP/1.0\\r\\n\\r\\n",)
    assert tree[1].args == ("# not a comment",)
    assert tree[2].args == ("",)


def test_lvs_cf_brace_on_next_line_crlf_and_no_final_newline() -> None:
    tree = lvs_cf("virtual a\r\n{\r\n  port = 80\r\n}")
    assert tree == (Directive("virtual", ("a",), 1, (Directive("port", ("80",), 3),)),)


def test_lvs_cf_empty_value_and_include_line() -> None:
    tree = lvs_cf("backup =\ninclude /etc/sysconfig/ha/extra.cf\n")
    assert tree == (Directive("backup", (), 1), Directive("include", ("/etc/sysconfig/ha/extra.cf",), 2))


def test_lvs_cf_include_is_a_keyword_only_before_whitespace() -> None:
    assert lvs_cf("include_dir = x\n") == (Directive("include_dir", ("x",), 1),)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("virtual a {\n  port = 80\n", 2, "the block opened at line 1 is not closed"),
        ("port = 80\n}\n", 2, "'}' without a matching '{'"),
        ('serial_no = 1\nsend = "GET /\n', 2, "unterminated quoted string"),
        (
            "serial_no = 1\nprimary 192.0.2.1 x\n",
            2,
            "unexpected 'x'; expected '{' to open a section (settings are written `key = value`)",
        ),
        ("virtual {\n}\n", 1, "unexpected '{'"),
        ("a = 1\nvirtual x {\n  server y {\n  }\n", 4, "the block opened at line 2 is not closed"),
        ("a = 1\n= 2\n", 2, "unexpected '='; expected 'include' or '}' or a setting name or end of line"),
    ],
)
def test_lvs_cf_syntax_errors_name_the_line(text: str, line: int, message: str) -> None:
    error = error_of(lvs_cf, text)
    assert error.location.line == line
    assert message in error.message
    assert str(error).startswith(f"lvs.cf:{line}: error: ")


# --- keepalived.conf ----------------------------------------------------------------------------------


def test_keepalived_nested_blocks_comments_and_quotes() -> None:
    text = (
        "! Configuration File for keepalived\n"
        "virtual_server 192.0.2.10 80 {   # the web VIP\n"
        "    delay_loop 6\n"
        "    real_server 198.51.100.11 80 {\n"
        "        MISC_CHECK {\n"
        '            misc_path "/bin/check --url http://x/#top"\n'
        "        }\n"
        "    }\n"
        "}\n"
    )
    assert keepalived(text) == (
        Directive(
            "virtual_server",
            ("192.0.2.10", "80"),
            2,
            (
                Directive("delay_loop", ("6",), 3),
                Directive(
                    "real_server",
                    ("198.51.100.11", "80"),
                    4,
                    (
                        Directive(
                            "MISC_CHECK",
                            (),
                            5,
                            (Directive("misc_path", ("/bin/check --url http://x/#top",), 6),),
                        ),
                    ),
                ),
            ),
        ),
    )


def test_keepalived_brace_on_next_line_and_statements_sharing_the_closing_line() -> None:
    text = (
        "virtual_ipaddress\n{\n  192.0.2.1/24 dev eth0\n}\n"
        "HTTP_GET { url { path /x\n status_code 200 } connect_timeout 3 }\n"
    )
    tree = keepalived(text)
    assert tree[0] == Directive("virtual_ipaddress", (), 1, (Directive("192.0.2.1/24", ("dev", "eth0"), 3),))
    assert tree[1] == Directive(
        "HTTP_GET",
        (),
        5,
        (
            Directive("url", (), 5, (Directive("path", ("/x",), 5), Directive("status_code", ("200",), 6))),
            Directive("connect_timeout", ("3",), 6),
        ),
    )


def test_keepalived_empty_block_and_bang_comment_after_words() -> None:
    assert keepalived("global_defs {\n}\nweight 1 ! one\n") == (
        Directive("global_defs", (), 1, ()),
        Directive("weight", ("1",), 3),
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("virtual_server 192.0.2.1 80 {\n  delay_loop 6\n", 2, "the block opened at line 1 is not closed"),
        ("delay_loop 6\n}\n", 2, "'}' without a matching '{'"),
        ('global_defs {\n  router_id "lvs\n}\n', 2, "unterminated quoted string"),
        ("a {\n  b { c }\n  }\n}\n", 4, "'}' without a matching '{'"),
    ],
)
def test_keepalived_syntax_errors_name_the_line(text: str, line: int, message: str) -> None:
    error = error_of(keepalived, text)
    assert error.location.line == line
    assert message in error.message

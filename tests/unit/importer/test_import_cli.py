"""`lvs-operator import`: stdout/stderr/exit codes, the YAML it prints, and robustness on bad input."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from import_helpers import DATA
from lvs_api.models.pool import RealServerPool
from lvs_api.models.vippool import VIPPool
from lvs_api.models.virtualservice import VirtualService
from lvs_cli.__main__ import build_parser, main
from lvs_cli.importer import ConfigError, convert, detect_format

MODELS = {"VirtualService": VirtualService, "RealServerPool": RealServerPool, "VIPPool": VIPPool}
SAMPLES = ["nat-lvs.cf", "direct-routing-lvs.cf", "keepalived.conf", "keepalived-ipv6.conf"]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["import", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("sample", SAMPLES)
def test_output_is_multi_document_yaml_that_the_models_accept(
    sample: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli([str(DATA / sample)], capsys)
    assert code == 0
    assert out.startswith(f"# Converted from {DATA / sample}")
    documents = [doc for doc in yaml.safe_load_all(out) if doc is not None]
    assert documents
    counts: dict[str, int] = {}
    for document in documents:
        MODELS[document["kind"]].model_validate(document)  # raises on anything the API would refuse
        counts[document["kind"]] = counts.get(document["kind"], 0) + 1
    summary = err.strip().splitlines()[-1]
    assert summary.startswith(
        f"{DATA / sample}: {counts['VirtualService']} VirtualService, "
        f"{counts['RealServerPool']} RealServerPool, "
        f"{counts.get('VIPPool', 0)} VIPPool, "
    )
    warnings = [line for line in err.splitlines() if ": warning: " in line]
    assert summary.endswith(f"{len(warnings)} warning(s)")
    assert f"{len(warnings)} warning(s) on stderr" in out.splitlines()[1]
    # every pool a service names is in the same output
    pools = {d["metadata"]["name"] for d in documents if d["kind"] == "RealServerPool"}
    assert {d["spec"]["poolRef"]["name"] for d in documents if d["kind"] == "VirtualService"} <= pools


def test_each_manifest_has_a_comment_naming_its_source_line(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli([str(DATA / "nat-lvs.cf")], capsys)
    chunks = out.split("---\n")[1:]
    assert "kind: VIPPool" in chunks[0]  # the pool that admits the VIPs comes before what claims them
    assert chunks[2].startswith(f"# {DATA / 'nat-lvs.cf'}:21: virtual webserver\n")
    assert chunks[1].startswith(f"# {DATA / 'nat-lvs.cf'}:21: real servers of virtual webserver\n")


def test_malformed_input_exits_2_with_the_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "lvs.cf"
    bad.write_text("serial_no = 1\nvirtual web {\n    address = 192.0.2.10\n    port = 80\n")
    code, out, err = run_cli([str(bad)], capsys)
    assert code == 2
    assert out == ""
    assert (
        err == f"{bad}:4: error: unexpected end of file: the block opened at line 2 is not closed with '}}'\n"
    )


def test_bad_value_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "keepalived.conf"
    bad.write_text(
        "virtual_server 192.0.2.10 80 {\n    real_server 198.51.100.1 80 {\n        weight -1\n    }\n}\n"
    )
    code, _, err = run_cli([str(bad)], capsys)
    assert code == 2
    assert err == f"{bad}:3: error: 'weight' must be 0..65535, got -1\n"


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli([str(tmp_path / "nope.cf")], capsys)
    assert (code, out) == (2, "")
    assert "cannot read" in err and "nope.cf" in err


def test_stdin_output_file_format_namespace_and_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((DATA / "keepalived.conf").read_text()))
    target = tmp_path / "out.yaml"
    code, out, err = run_cli(
        ["-", "--format", "keepalived", "-n", "lb", "--director-label", "role=director", "-o", str(target)],
        capsys,
    )
    assert code == 0
    assert out == ""
    assert err.splitlines()[0].startswith("<stdin>:2: warning: global_defs")
    documents = list(yaml.safe_load_all(target.read_text()))
    services = [d for d in documents if d and d["kind"] == "VirtualService"]
    assert services and all(d["metadata"]["namespace"] == "lb" for d in services)
    assert all(d["spec"]["directorSelector"] == {"matchLabels": {"role": "director"}} for d in services)
    assert next(d for d in documents if d and d["kind"] == "VIPPool")["spec"]["namespaces"] == ["lb"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--director-label", "novalue"], "--director-label must be a Kubernetes label KEY=VALUE"),
        (["--director-label", "bad key=x"], "--director-label must be a Kubernetes label KEY=VALUE"),
        (
            ["--director-label", "lvs.io/director=not ok"],
            "--director-label must be a Kubernetes label KEY=VALUE",
        ),
        (["-n", "Not_A_Namespace"], "is not a valid namespace name"),
    ],
)
def test_bad_options_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([str(DATA / "nat-lvs.cf"), *argv], capsys)
    assert code == 2
    assert message in err


def test_format_detection() -> None:
    assert detect_format("/etc/sysconfig/ha/lvs.cf", "") == "lvs.cf"
    assert detect_format("/etc/keepalived/keepalived.conf", "") == "keepalived"
    assert detect_format("dump.txt", "! x\nvirtual_server 192.0.2.1 80 {\n}\n") == "keepalived"
    assert detect_format("dump.txt", "# x\nserial_no = 4\nvirtual a {\n}\n") == "lvs.cf"
    with pytest.raises(ConfigError) as caught:
        detect_format("dump.txt", "hello\n")
    assert "pass --format" in caught.value.message


def test_console_script_runs_as_a_process() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "lvs_cli", "import", str(DATA / "direct-routing-lvs.cf")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "kind: VirtualService" in completed.stdout
    assert "Traceback" not in completed.stderr


def test_subcommand_registry_is_extensible() -> None:
    parser = build_parser()
    args = parser.parse_args(["import", "lvs.cf"])
    assert args.command == "import"
    assert args.file == ["lvs.cf"]
    with pytest.raises(SystemExit):
        parser.parse_args([])


# Fragments of both languages, glued at random: the importer must either convert or raise ConfigError.
_FRAGMENTS = [
    "virtual a {",
    "virtual b {",
    "server s {",
    "}",
    "{",
    "\n",
    " ",
    "=",
    "address = 192.0.2.10",
    "port = 80",
    "port = 0",
    "weight = 5",
    "fwmark = 3",
    "persistent = 30",
    "pmask = 24",
    'send = "GET / HTTP/1.0\\r\\n"',
    'expect = "HTTP"',
    "address = 198.51.100.1",
    "protocol = udp",
    "scheduler = mh",
    '"',
    "#",
    "!",
    "virtual_server 192.0.2.1 80 {",
    "virtual_server fwmark 2 {",
    "virtual_server group G {",
    "virtual_server_group G {",
    "real_server 198.51.100.2 80 {",
    "real_server 2001:db8::1 80 {",
    "HTTP_GET {",
    "url {",
    "path /",
    "status_code 200-202",
    "TCP_CHECK {",
    "MISC_CHECK {",
    "misc_path /bin/true",
    "lb_kind DR",
    "lvs_method TUN type gue port 6080",
    "delay_loop 0.1",
    "connect_timeout 9",
    "weight 0",
    "vrrp_instance V {",
    "virtual_ipaddress {",
    "192.0.2.1/24",
    "sorry_server 192.0.2.9 80",
    "ops",
    "network = direct",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=40),
    st.sampled_from(["lvs.cf", "keepalived.conf"]),
)
def test_random_input_converts_or_fails_cleanly(pieces: list[str], name: str) -> None:
    text = " ".join(pieces).replace(" \n ", "\n")
    try:
        result, _ = convert(name, text)
    except ConfigError as error:
        assert error.location.line >= 1
        assert str(error).startswith(f"{name}:{error.location.line}: error: ")
        return
    for manifest in result.manifests:
        MODELS[manifest.kind].model_validate(manifest.body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.lists(
        st.tuples(st.sampled_from(["drop", "repeat", "swap", "cut"]), st.integers(0, 10_000)), max_size=6
    ),
)
def test_mutated_samples_convert_or_fail_cleanly(sample: str, edits: list[tuple[str, int]]) -> None:
    lines = (DATA / sample).read_text().splitlines()
    for operation, position in edits:
        if not lines:
            break
        index = position % len(lines)
        if operation == "drop":
            del lines[index]
        elif operation == "repeat":
            lines.insert(index, lines[index])
        elif operation == "swap":
            other = (index * 7 + 3) % len(lines)
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines[index] = lines[index][: len(lines[index]) // 2]
    try:
        result, _ = convert(sample, "\n".join(lines))
    except ConfigError as error:
        assert 1 <= error.location.line <= max(1, len(lines))
        return
    for manifest in result.manifests:
        MODELS[manifest.kind].model_validate(manifest.body)


def test_latin1_comments_do_not_stop_the_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lvs.cf"
    config.write_bytes((DATA / "nat-lvs.cf").read_bytes().replace(b"# kept for", b"# d\xe9j\xe0 kept for"))
    code, out, _ = run_cli([str(config)], capsys)
    assert code == 0
    assert "kind: VirtualService" in out


def test_unwritable_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        [str(DATA / "nat-lvs.cf"), "-o", str(tmp_path / "missing-dir" / "out.yaml")], capsys
    )
    assert code == 2
    assert "cannot write" in err
    assert "Traceback" not in err

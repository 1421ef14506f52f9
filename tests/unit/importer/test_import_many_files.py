"""Several files imported as one config (a keepalived.conf and the files its `include` names): definitions
in one file serve the others, and every warning, error and comment names the right file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from import_helpers import has_warning, spec_of
from lvs_cli.__main__ import main
from lvs_cli.importer import ConfigError, convert_files

MAIN = """! main file
vrrp_instance VI_1 {
    state MASTER
    virtual_ipaddress {
        203.0.113.10
    }
}
virtual_server_group WEB {
    203.0.113.10 80
    203.0.113.10 443
}
include /etc/keepalived/conf.d/*.conf
"""

WEB = """! conf.d/web.conf
virtual_server group WEB {
    lb_kind DR
    real_server 198.51.100.11 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server fwmark 9 {
    lb_kind DR
    real_server 198.51.100.12 0 {
        frobnicate
    }
}
"""


def test_groups_and_vrrp_vips_of_one_file_serve_the_others() -> None:
    result, warnings = convert_files([("keepalived.conf", MAIN), ("conf.d/web.conf", WEB)])
    web = spec_of(result, "VirtualService", "web")
    assert web["vip"] == "203.0.113.10"
    assert web["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]
    assert web["vipGroup"] == "vi-1"
    assert spec_of(result, "VirtualService", "fwmark-9")["vip"] == "203.0.113.10"
    # warnings name their own file and line, in file order
    assert [(w.location.path, w.location.line) for w in warnings] == sorted(
        ((w.location.path, w.location.line) for w in warnings),
        key=lambda item: (["keepalived.conf", "conf.d/web.conf"].index(item[0]), item[1]),
    )
    assert has_warning(warnings, 12, "include of '/etc/keepalived/conf.d/*.conf' not followed")
    assert any(
        w.location.path == "conf.d/web.conf"
        and w.location.line == 14
        and "unknown keyword 'frobnicate'" in w.message
        for w in warnings
    )
    assert any(
        w.location.path == "conf.d/web.conf" and w.location.line == 11 and "fwmark 9" in w.message
        for w in warnings
    )
    comments = {m.name: m.comments[0] for m in result.manifests}
    assert comments["web"] == "conf.d/web.conf:2: virtual_server group WEB"
    assert (
        result.header[0]
        == "Converted from keepalived.conf, conf.d/web.conf (keepalived.conf) by `lvs-operator import`."
    )
    assert "vrrp_instance VI_1: MASTER, VIPs 203.0.113.10 (keepalived.conf:2)" in "\n".join(result.header)


def test_errors_name_the_file_they_are_in() -> None:
    with pytest.raises(ConfigError) as caught:
        convert_files(
            [("keepalived.conf", MAIN), ("conf.d/web.conf", WEB.replace("weight 2", "weight lots"))]
        )
    assert (caught.value.location.path, caught.value.location.line) == ("conf.d/web.conf", 5)
    with pytest.raises(ConfigError) as caught:
        convert_files([("keepalived.conf", MAIN), ("conf.d/web.conf", WEB + "}\n")])
    assert (caught.value.location.path, caught.value.location.line) == ("conf.d/web.conf", 17)
    # without the main file the group is unknown
    with pytest.raises(ConfigError) as caught:
        convert_files([("conf.d/web.conf", WEB)])
    assert "virtual_server_group 'WEB' is not defined" in caught.value.message


def test_formats_cannot_be_mixed() -> None:
    with pytest.raises(ConfigError) as caught:
        convert_files([("keepalived.conf", MAIN), ("lvs.cf", "serial_no = 1\n")])
    assert caught.value.location.path == "lvs.cf"
    assert "import them separately" in caught.value.message


def test_cli_takes_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main_file, web_file = tmp_path / "keepalived.conf", tmp_path / "web.conf"
    main_file.write_text(MAIN)
    web_file.write_text(WEB)
    assert main(["import", str(main_file), str(web_file)]) == 0
    captured = capsys.readouterr()
    kinds = [doc["kind"] for doc in yaml.safe_load_all(captured.out) if doc]
    assert kinds == ["VIPPool", "RealServerPool", "VirtualService", "RealServerPool", "VirtualService"]
    assert f"{web_file}:14: warning: " in captured.err
    assert main(["import", "-", str(web_file)]) == 2
    assert "cannot be combined" in capsys.readouterr().err

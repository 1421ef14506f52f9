"""lvs.cf (Piranha / pulse) -> manifests: every construct, every warning, every error with its line."""

from __future__ import annotations

import pytest
from import_helpers import by_kind_and_name, convert_sample, convert_text, has_warning, spec_of, warning_lines
from lvs_cli.importer import ConfigError

DIRECTOR = {"matchLabels": {"lvs.io/director": "true"}}


def test_nat_sample_objects() -> None:
    result, _ = convert_sample("nat-lvs.cf")
    assert [(m.kind, m.name) for m in result.manifests] == [
        ("VIPPool", "nat-lvs-vips"),
        ("RealServerPool", "webserver-pool"),
        ("VirtualService", "webserver"),
        ("RealServerPool", "mail-pool"),
        ("VirtualService", "mail"),
        ("RealServerPool", "dns-pool"),
        ("VirtualService", "dns"),
    ]


def test_nat_sample_web_service_http_check_persistence_quiesce_sorry_server() -> None:
    result, _ = convert_sample("nat-lvs.cf")
    assert spec_of(result, "VirtualService", "webserver") == {
        "vip": "192.0.2.10",
        "ports": [{"port": 80, "protocol": "TCP"}],
        "scheduler": {"name": "wlc"},
        "forwarding": "NAT",
        "natGateway": {"address": "10.11.12.1"},  # nat_router: follows the active director
        "persistence": {"timeoutSeconds": 300, "netmask": "255.255.255.0"},
        # send "GET /healthz ... Host:", expect "HTTP/1.1 200 OK";
        # at one probe per 2 s: timeout 6 -> fall 3, reentry 15 -> rise 8
        "healthCheck": {
            "type": "HTTP",
            "intervalSeconds": 2,
            "timeoutSeconds": 2,
            "rise": 8,
            "fall": 3,
            "http": {"path": "/healthz", "host": "www.example.com"},
        },
        "onFailure": "Quiesce",
        "poolRef": {"name": "webserver-pool"},
        "fallback": [{"address": "198.51.100.99", "port": 8080}],
        "directorSelector": DIRECTOR,
        "vipGroup": "nat-lvs",
    }
    # web3 is active = 0: left out
    assert spec_of(result, "RealServerPool", "webserver-pool") == {
        "members": [{"address": "198.51.100.11", "weight": 1}, {"address": "198.51.100.12", "weight": 2}]
    }


def test_nat_sample_tcp_connect_check_and_remove() -> None:
    result, _ = convert_sample("nat-lvs.cf")
    assert spec_of(result, "VirtualService", "mail") == {
        "vip": "192.0.2.11",
        "ports": [{"port": 25, "protocol": "TCP"}],
        "scheduler": {"name": "wrr"},
        "forwarding": "NAT",
        "natGateway": {"address": "10.11.12.1"},  # nat_router: follows the active director
        "healthCheck": {"type": "TCP", "intervalSeconds": 2, "timeoutSeconds": 2, "rise": 15, "fall": 5},
        "onFailure": "Remove",
        "poolRef": {"name": "mail-pool"},
        "directorSelector": DIRECTOR,
        "vipGroup": "nat-lvs",
    }
    assert spec_of(result, "RealServerPool", "mail-pool") == {
        "members": [{"address": "198.51.100.21", "weight": 3}, {"address": "198.51.100.22", "weight": 1}]
    }


def test_nat_sample_udp_send_expect() -> None:
    result, _ = convert_sample("nat-lvs.cf")
    spec = spec_of(result, "VirtualService", "dns")
    assert spec["ports"] == [{"port": 53, "protocol": "UDP"}]
    assert spec["scheduler"] == {"name": "rr"}
    # nanny's "\n" escapes become the real characters; expect is a literal prefix, so an anchored regex
    assert spec["healthCheck"] == {
        "type": "UDP",
        "intervalSeconds": 2,
        "timeoutSeconds": 2,
        "rise": 4,
        "fall": 2,
        "udp": {"send": "\n", "expect": "^\\\n"},
    }


def test_nat_sample_vip_pool_covers_every_vip() -> None:
    result, _ = convert_sample("nat-lvs.cf")
    assert by_kind_and_name(result)[("VIPPool", "nat-lvs-vips")] == {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VIPPool",
        "metadata": {"name": "nat-lvs-vips"},
        "spec": {"addresses": ["192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32"], "namespaces": ["default"]},
    }


def test_nat_sample_warnings_are_exactly_these() -> None:
    _, warnings = convert_sample("nat-lvs.cf")
    assert [(line, message.split(":")[0].split(" (")[0]) for line, message in warning_lines(warnings)] == [
        (3, "serial_no = 47"),
        (5, "primary_private = 10.0.0.2"),
        (9, "backup_private = 10.0.0.3"),
        (11, "heartbeat_port = 539"),
        (12, "director failover timing"),
        (15, "nat_router 10.11.12.1"),
        (17, "debug_level = NONE"),
        (19, "connection synchronisation is set on the agent DaemonSet, not per service"),
        (20, "tcp_timeout = 900"),
        (24, "vip_nmask = 255.255.255.0"),
        (48, "server 'web3' is inactive"),
        (57, "vip_nmask = 255.255.255.0"),
        (59, "load_monitor = uptime"),
        (98, "virtual 'legacy-portal' is inactive"),
    ]
    assert has_warning(warnings, 12, "heartbeat every 2 s, dead after 6 s")
    assert has_warning(warnings, 12, "--heartbeat-interval 2 --missed 3 reproduces it")
    assert has_warning(warnings, 5, "--peer <primary-node>=10.0.0.2 on the other director")
    assert has_warning(warnings, 98, "not converted")


def test_direct_routing_sample_fwmark_exec_check() -> None:
    result, warnings = convert_sample("direct-routing-lvs.cf")
    assert spec_of(result, "VirtualService", "shop") == {
        "vip": "203.0.113.10",
        "firewallMark": 80,
        "scheduler": {"name": "lblc"},
        "forwarding": "DirectRouting",
        # pmask 255.255.255.255 is the default (each client on its own): left implicit
        "persistence": {"timeoutSeconds": 1800},
        "healthCheck": {
            "type": "Exec",
            "intervalSeconds": 2,
            "timeoutSeconds": 2,
            "rise": 5,
            "fall": 3,
            "port": 80,
            "exec": {"command": ["/bin/sh", "-c", '/usr/local/sbin/check_shop --host "$MEMBER_ADDRESS"']},
        },
        "onFailure": "Quiesce",
        "poolRef": {"name": "shop-pool"},
        "directorSelector": DIRECTOR,
        "vipGroup": "direct-routing-lvs",
    }
    # direct routing: no member port (the kernel keeps the packet's); the check port is healthCheck.port
    assert spec_of(result, "RealServerPool", "shop-pool") == {
        "members": [{"address": "203.0.113.21", "weight": 10}, {"address": "203.0.113.22", "weight": 10}]
    }
    assert spec_of(result, "VIPPool", "direct-routing-lvs-vips")["allowExecHealthChecks"] is True
    assert has_warning(warnings, 23, "$MEMBER_ADDRESS")
    assert has_warning(warnings, 23, "allowExecHealthChecks: true")
    assert has_warning(warnings, 24, "exit status")


def test_direct_routing_sample_head_request_and_send_expect_on_tcp() -> None:
    result, warnings = convert_sample("direct-routing-lvs.cf")
    api = spec_of(result, "VirtualService", "api")
    assert api["forwarding"] == "DirectRouting"
    assert api["scheduler"] == {"name": "sh"}
    assert api["healthCheck"] == {
        "type": "HTTP",
        "intervalSeconds": 2,
        "timeoutSeconds": 2,
        "rise": 3,
        "fall": 2,
        "http": {"method": "HEAD", "path": "/status"},
    }
    assert has_warning(warnings, 47, "accepted any HTTP answer")
    cache = spec_of(result, "VirtualService", "cache")
    assert cache["healthCheck"] == {"type": "TCP", "intervalSeconds": 2, "timeoutSeconds": 2}
    assert has_warning(warnings, 67, "the TCP check only connects")
    assert has_warning(warnings, 77, "failover service 'ftp'")
    assert has_warning(warnings, 13, "monitor_links = 1")
    assert has_warning(warnings, 14, "reservation_conflict_action")


def test_director_selection_header_names_primary_and_backup() -> None:
    result, _ = convert_sample("direct-routing-lvs.cf", director_label=("example.com/lvs-router", "yes"))
    header = "\n".join(result.header)
    assert "primary router 203.0.113.2" in header
    assert "backup router 203.0.113.3" in header
    assert "kubectl label node <node-name> example.com/lvs-router=yes" in header
    for manifest in result.manifests:
        if manifest.kind == "VirtualService":
            assert manifest.body["spec"]["directorSelector"] == {
                "matchLabels": {"example.com/lvs-router": "yes"}
            }


def test_agent_flags_in_the_header() -> None:
    result, _ = convert_sample("nat-lvs.cf")
    path = result.config.path
    assert result.header[
        result.header.index(
            "Agent (DaemonSet lvs-agent) flags reproducing director-level settings of this file:"
        )
        + 1 :
    ] == [
        f"  --peer <primary-node>=10.0.0.2    # {path}:5",
        f"  --peer <backup-node>=10.0.0.3    # {path}:9",
        f"  --heartbeat-port 539    # {path}:11",
        f"  --heartbeat-interval 2    # {path}:12",
        f"  --missed 3    # {path}:12",
    ]
    # without private heartbeat addresses, the routers' own addresses are the peers
    result, _ = convert_sample("direct-routing-lvs.cf")
    header = "\n".join(result.header)
    assert "--peer <primary-node>=203.0.113.2" in header
    assert "--peer <backup-node>=203.0.113.3" in header
    assert "--heartbeat-interval 6" in header


# --- single constructs --------------------------------------------------------------------------------

BASE = "primary = 192.0.2.2\nnetwork = {network}\n"


def one_virtual(body: str, network: str = "nat", extra: str = "") -> str:
    return (
        BASE.format(network=network)
        + extra
        + "virtual web {\n    address = 192.0.2.10 eth0:1\n"
        + body
        + "    server a {\n        address = 198.51.100.11\n        weight = 1\n    }\n}\n"
    )


def test_tunnel_network() -> None:
    result, _ = convert_text(one_virtual("    port = 80\n", network="tunnel"))
    assert spec_of(result, "VirtualService", "web")["forwarding"] == "Tunnel"
    assert "tunnel" not in spec_of(result, "VirtualService", "web")


def test_http_body_expectation_and_regex() -> None:
    text = one_virtual(
        '    port = 80\n    send = "GET /ping HTTP/1.0\\r\\n\\r\\n"\n'
        '    expect = "pong.*"\n    use_regex = 1\n'
    )
    result, warnings = convert_text(text)
    check = spec_of(result, "VirtualService", "web")["healthCheck"]
    assert check["http"] == {"path": "/ping", "bodyRegex": "pong.*"}
    assert has_warning(warnings, 7, "matched against the HTTP body")


def test_http_body_literal_is_escaped_without_use_regex() -> None:
    text = one_virtual('    port = 80\n    send = "GET / HTTP/1.0\\r\\n\\r\\n"\n    expect = "v1.2 (ok)"\n')
    result, _ = convert_text(text)
    assert spec_of(result, "VirtualService", "web")["healthCheck"]["http"]["bodyRegex"] == r"v1\.2\ \(ok\)"


def test_http_status_line_other_than_200() -> None:
    text = one_virtual(
        '    port = 80\n    send = "GET / HTTP/1.1\\r\\n\\r\\n"\n    expect = "HTTP/1.1 301"\n'
    )
    result, _ = convert_text(text)
    assert spec_of(result, "VirtualService", "web")["healthCheck"]["http"] == {
        "path": "/",
        "expectStatus": [301],
    }


def test_send_program_without_placeholder_is_plain_argv() -> None:
    result, warnings = convert_text(
        one_virtual('    port = 80\n    send_program = "/usr/bin/check --quick"\n')
    )
    assert spec_of(result, "VirtualService", "web")["healthCheck"]["exec"] == {
        "command": ["/usr/bin/check", "--quick"]
    }
    assert not any("MEMBER_ADDRESS" in w.message for w in warnings)


def test_udp_without_send_expect_has_no_check() -> None:
    result, warnings = convert_text(one_virtual("    port = 53\n    protocol = udp\n"))
    assert spec_of(result, "VirtualService", "web")["healthCheck"] == {"type": "None"}
    assert has_warning(warnings, 3, "UDP without send/expect")


def test_persistence_prefix_and_pmask_without_persistent() -> None:
    result, _ = convert_text(one_virtual("    port = 80\n    persistent = 60\n    pmask = 24\n"))
    assert spec_of(result, "VirtualService", "web")["persistence"] == {"timeoutSeconds": 60, "netmask": 24}
    result, warnings = convert_text(one_virtual("    port = 80\n    pmask = 255.255.0.0\n"))
    assert "persistence" not in spec_of(result, "VirtualService", "web")
    assert has_warning(warnings, 6, "pmask without persistent")


def test_unknown_scheduler_falls_back_to_wlc() -> None:
    result, warnings = convert_text(one_virtual("    port = 80\n    scheduler = fancy\n"))
    assert spec_of(result, "VirtualService", "web")["scheduler"] == {"name": "wlc"}
    assert has_warning(warnings, 3, "'fancy' is not a kernel IPVS scheduler")


def test_real_server_port_translation_nat_and_dr() -> None:
    body = "    port = 80\n"
    text = one_virtual(body).replace("weight = 1\n", "weight = 1\n        port = 8080\n")
    result, _ = convert_text(text)
    assert spec_of(result, "RealServerPool", "web-pool")["members"] == [
        {"address": "198.51.100.11", "port": 8080, "weight": 1}
    ]
    result, warnings = convert_text(text.replace("network = nat", "network = direct"))
    assert spec_of(result, "RealServerPool", "web-pool")["members"] == [
        {"address": "198.51.100.11", "weight": 1}
    ]
    assert has_warning(warnings, 6, "DirectRouting cannot rewrite ports")


def test_names_are_made_dns_1123_safe_and_unique() -> None:
    text = one_virtual("    port = 80\n").replace("virtual web {", "virtual Web_Server.1 {")
    text += (
        text[text.index("virtual") :]
        .replace("Web_Server.1", "web-server.1")
        .replace("192.0.2.10", "192.0.2.11")
    )
    result, _ = convert_text(text)
    names = [(m.kind, m.name) for m in result.manifests]
    assert ("VirtualService", "web-server-1") in names
    assert ("VirtualService", "web-server-1-2") in names
    assert ("RealServerPool", "web-server-1-pool") in names
    assert ("RealServerPool", "web-server-1-pool-2") in names


def test_namespace_option_and_no_vip_pool() -> None:
    result, _ = convert_text(one_virtual("    port = 80\n"), namespace="shop", vip_pool=False)
    assert {m.kind for m in result.manifests} == {"VirtualService", "RealServerPool"}
    assert all(m.body["metadata"]["namespace"] == "shop" for m in result.manifests)


def test_unknown_settings_and_sections_warn_with_their_line() -> None:
    text = one_virtual("    port = 80\n    frobnicate = 1\n", extra="colour = blue\nwidget w {\n}\n")
    _, warnings = convert_text(text)
    assert has_warning(warnings, 3, "unknown global setting 'colour'")
    assert has_warning(warnings, 4, "unknown section 'widget w'")
    assert has_warning(warnings, 9, "unknown setting 'frobnicate' in virtual 'web'")


def test_fos_service_and_backup_inactive() -> None:
    text = one_virtual("    port = 80\n", extra="service = fos\nbackup = 192.0.2.3\nbackup_active = 0\n")
    result, warnings = convert_text(text)
    assert has_warning(warnings, 3, "service = fos")
    assert has_warning(warnings, 4, "backup_active = 0")
    assert "backup router" not in "\n".join(result.header)


def test_virtual_with_only_inactive_servers_is_skipped() -> None:
    text = one_virtual("    port = 80\n").replace("weight = 1\n", "weight = 1\n        active = 0\n")
    result, warnings = convert_text(text)
    assert result.count("VirtualService") == 0
    assert has_warning(warnings, 3, "has no (active) real servers")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "    port = 80\n    scheduler = rr\n    timeout = soon\n",
            7,
            "'timeout' needs a whole number, got 'soon'",
        ),
        ("    port = 70000\n", 5, "'port' must be 1..65535, got 70000"),
        ("    scheduler = rr\n", 3, "virtual 'web' has no 'port' (and no 'fwmark')"),
        ("    port = 80\n    protocol = sctp\n", 6, "protocol must be tcp or udp"),
        ("    port = 80\n    quiesce_server = maybe\n", 6, "'quiesce_server' must be 0 or 1"),
        ("    port = 80\n    pmask = 255.0.255.0\n", 6, "needs a netmask"),
    ],
)
def test_malformed_values_are_errors_with_their_line(body: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert_text(one_virtual(body))
    assert caught.value.location.line == line
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("network = bogus\n", 1, "network must be nat, direct or tunnel"),
        ("virtual a {\n  port = 80\n}\n", 1, "virtual 'a' has no 'address'"),
        (
            "virtual a {\n  address = www.example.com\n}\n",
            2,
            "'address' needs an IP address, got 'www.example.com'",
        ),
        (
            "virtual a {\n  address = 192.0.2.1\n  port = 80\n  server s {\n    weight = x\n  }\n}\n",
            5,
            "'weight' needs a whole number",
        ),
        (
            "virtual a {\n  address = 192.0.2.1\n  port = 80\n  server s {\n    weight = 1\n  }\n}\n",
            4,
            "server 's' has no 'address'",
        ),
        (
            "virtual a {\n address = 192.0.2.1\n port = 80\n server s {\n address = 198.51.100.1\n }\n}\n"
            "virtual a {\n address = 192.0.2.2\n port = 80\n server s {\n address = 198.51.100.1\n }\n}\n",
            8,
            "virtual server 'a' is defined twice",
        ),
        ("virtual a {\n address = 192.0.2.1 eth0 extra\n}\n", 2, "'address' takes 1 to 2 values"),
    ],
)
def test_malformed_files_are_errors_with_their_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert_text(text)
    assert caught.value.location.line == line
    assert message in caught.value.message


def many_virtuals(addresses: list[str]) -> str:
    blocks = [
        f"virtual v{n} {{\n  address = {address}\n  port = 80\n"
        "  server s {\n    address = 198.51.100.1\n  }\n}\n"
        for n, address in enumerate(addresses)
    ]
    return "primary = 192.0.2.2\n" + "".join(blocks)


def test_more_vips_than_one_vip_pool_holds() -> None:
    # 300 contiguous VIPs collapse into CIDR blocks: one pool
    contiguous = [f"10.0.{n // 256}.{n % 256}" for n in range(300)]
    result, _ = convert_text(many_virtuals(contiguous))
    pools = [m.body for m in result.manifests if m.kind == "VIPPool"]
    assert [pool["spec"]["addresses"] for pool in pools] == [
        ["10.0.0.0/24", "10.0.1.0/27", "10.0.1.32/29", "10.0.1.40/30"]
    ]
    # 300 scattered VIPs do not: two pools, every VIP covered exactly once
    scattered = [f"10.{n // 200}.{n % 200}.1" for n in range(300)]
    result, _ = convert_text(many_virtuals(scattered))
    pools = [m.body for m in result.manifests if m.kind == "VIPPool"]
    assert [pool["metadata"]["name"] for pool in pools] == ["lvs-vips-1", "lvs-vips-2"]
    covered = [address for pool in pools for address in pool["spec"]["addresses"]]
    assert sorted(covered) == sorted(f"{vip}/32" for vip in scattered)


def test_a_manifest_the_models_refuse_is_an_error_not_output() -> None:
    """The mapper validates every manifest with the controller's checks before printing (here the label
    value is too long; the CLI refuses such a label earlier, the library path relies on this)."""
    with pytest.raises(ConfigError) as caught:
        convert_text(one_virtual("    port = 80\n"), director_label=("lvs.io/director", "x" * 64))
    assert caught.value.location.line == 3
    assert (
        "cannot express this as a valid VirtualService: spec.directorSelector.matchLabels"
        in caught.value.message
    )


def test_udp_expect_with_use_regex_stays_a_regex() -> None:
    body = (
        '    port = 53\n    protocol = udp\n    send = "ping"\n    expect = "pong|PONG"\n    use_regex = 1\n'
    )
    result, _ = convert_text(one_virtual(body))
    assert spec_of(result, "VirtualService", "web")["healthCheck"]["udp"] == {
        "send": "ping",
        "expect": "pong|PONG",
    }
    result, _ = convert_text(one_virtual(body.replace("use_regex = 1", "use_regex = 0")))
    assert spec_of(result, "VirtualService", "web")["healthCheck"]["udp"]["expect"] == r"^pong\|PONG"

"""keepalived.conf -> manifests: virtual_server(_group), checkers, VRRP; warnings and errors by line."""

from __future__ import annotations

import pytest
from import_helpers import convert_sample, convert_text, has_warning, spec_of, warning_lines
from lvs_cli.importer import ConfigError

DIRECTOR = {"matchLabels": {"lvs.io/director": "true"}}


def test_sample_objects() -> None:
    result, warnings = convert_sample("keepalived.conf")
    assert [(m.kind, m.name) for m in result.manifests] == [
        ("VIPPool", "keepalived-vips"),  # first: what claims a VIP comes after what admits it
        ("RealServerPool", "web-pool"),
        ("VirtualService", "web-203-0-113-10"),
        ("VirtualService", "web-203-0-113-21"),
        ("VirtualService", "web-203-0-113-22"),
        ("RealServerPool", "vs-192-0-2-20-3306-pool"),
        ("VirtualService", "vs-192-0-2-20-3306"),
        ("RealServerPool", "fwmark-7-pool"),
        ("VirtualService", "fwmark-7"),
        ("RealServerPool", "vs-192-0-2-20-53-pool"),
        ("VirtualService", "vs-192-0-2-20-53"),
        ("RealServerPool", "vs-203-0-113-10-8443-pool"),
        ("VirtualService", "vs-203-0-113-10-8443"),
    ]
    assert len(warnings) == 18


def test_virtual_server_group_becomes_one_service_per_vip_sharing_a_pool() -> None:
    result, warnings = convert_sample("keepalived.conf")
    common = {
        "scheduler": {"name": "wrr"},
        "forwarding": "DirectRouting",
        "persistence": {"timeoutSeconds": 600, "netmask": "255.255.255.0"},
        # delay_loop 3, connect_timeout 2, nb_get_retry 2 -> fall 3; keepalived restores on one success
        "healthCheck": {
            "type": "HTTP",
            "intervalSeconds": 3,
            "timeoutSeconds": 2,
            "rise": 1,
            "fall": 3,
            "http": {"path": "/healthz"},
        },
        "onFailure": "Remove",
        "poolRef": {"name": "web-pool"},
        "directorSelector": DIRECTOR,
        "vipGroup": "vi-web",
    }
    assert spec_of(result, "VirtualService", "web-203-0-113-10") == {
        "vip": "203.0.113.10",
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
        **common,
    }
    for vip in ("203.0.113.21", "203.0.113.22"):
        spec = spec_of(result, "VirtualService", f"web-{vip.replace('.', '-')}")
        assert spec == {"vip": vip, "ports": [{"port": 80, "protocol": "TCP"}], **common}
    assert spec_of(result, "RealServerPool", "web-pool") == {
        "members": [{"address": "198.51.100.11", "weight": 3}, {"address": "198.51.100.12", "weight": 1}]
    }
    assert has_warning(warnings, 49, "address range 203.0.113.21-22 expanded into 2 addresses")
    assert has_warning(warnings, 52, "covers 3 address(es) and 0 firewall mark(s)")
    assert has_warning(warnings, 66, "url digest")
    assert has_warning(warnings, 70, "delay_before_retry dropped")


def test_nat_port_translation_thresholds_inhibit_and_sorry_server() -> None:
    result, _ = convert_sample("keepalived.conf")
    assert spec_of(result, "VirtualService", "vs-192-0-2-20-3306") == {
        "vip": "192.0.2.20",
        "ports": [{"port": 3306, "protocol": "TCP"}],
        "scheduler": {"name": "wlc"},
        "forwarding": "NAT",
        "healthCheck": {
            "type": "TCP",
            "intervalSeconds": 2,
            "timeoutSeconds": 1,
            "rise": 1,
            "fall": 4,
            "port": 3307,
        },
        "onFailure": "Quiesce",  # inhibit_on_failure
        "poolRef": {"name": "vs-192-0-2-20-3306-pool"},
        "fallback": [{"address": "192.0.2.99"}],  # sorry_server on the service port
        "directorSelector": DIRECTOR,
        "vipGroup": "vi-db",
    }
    assert spec_of(result, "RealServerPool", "vs-192-0-2-20-3306-pool") == {
        "members": [
            {
                "address": "10.20.0.11",
                "port": 3307,
                "weight": 1,
                "upperThreshold": 400,
                "lowerThreshold": 300,
            },
            {"address": "10.20.0.12", "port": 3307, "weight": 1},
        ]
    }


def test_fwmark_service_tunnel_options_scheduler_flags_misc_check() -> None:
    result, warnings = convert_sample("keepalived.conf")
    assert spec_of(result, "VirtualService", "fwmark-7") == {
        "vip": "203.0.113.10",  # the first VRRP VIP (warned)
        "firewallMark": 7,
        "scheduler": {"name": "mh", "flags": ["mh-port", "mh-fallback"]},
        "forwarding": "Tunnel",
        "tunnel": {"type": "GUE", "port": 6080, "checksum": "Checksum"},
        "healthCheck": {
            "type": "Exec",
            "intervalSeconds": 10,
            "timeoutSeconds": 5,
            "rise": 1,
            # each real server's script named its own address: one command with $MEMBER_ADDRESS
            "exec": {"command": ["/bin/sh", "-c", '/usr/local/bin/check_backend.sh "$MEMBER_ADDRESS"']},
        },
        "onFailure": "Remove",
        "poolRef": {"name": "fwmark-7-pool"},
        "directorSelector": DIRECTOR,
        "vipGroup": "vi-web",
    }
    # port 0 = "the port the packet had": no member port
    assert spec_of(result, "RealServerPool", "fwmark-7-pool") == {
        "members": [{"address": "198.51.100.51", "weight": 1}, {"address": "198.51.100.52", "weight": 1}]
    }
    assert has_warning(warnings, 116, "spec.vip set to VRRP VIP 203.0.113.10")
    assert has_warning(warnings, 126, "$MEMBER_ADDRESS")
    assert spec_of(result, "VIPPool", "keepalived-vips") == {
        "addresses": ["203.0.113.10/32", "203.0.113.21/32", "203.0.113.22/32", "192.0.2.20/32"],
        "namespaces": ["default"],
        "allowExecHealthChecks": True,
    }


def test_udp_dns_check_and_one_packet_scheduling() -> None:
    result, _ = convert_sample("keepalived.conf")
    spec = spec_of(result, "VirtualService", "vs-192-0-2-20-53")
    assert spec["ports"] == [{"port": 53, "protocol": "UDP"}]
    assert spec["onePacket"] is True
    assert spec["healthCheck"] == {
        "type": "DNS",
        "intervalSeconds": 5,
        "timeoutSeconds": 2,
        "rise": 1,
        "fall": 2,
        "dns": {"queryName": "example.com", "queryType": "SOA"},
    }


def test_ssl_get_status_range_virtualhost_and_sh_port() -> None:
    result, warnings = convert_sample("keepalived.conf")
    spec = spec_of(result, "VirtualService", "vs-203-0-113-10-8443")
    assert spec["scheduler"] == {"name": "sh", "flags": ["sh-port"]}
    assert spec["forwarding"] == "DirectRouting"
    assert spec["healthCheck"] == {
        "type": "HTTPS",
        "intervalSeconds": 5,
        "timeoutSeconds": 3,
        "rise": 1,
        "http": {
            "path": "/admin/ping",
            "host": "admin.example.com",
            "expectStatus": [200, 201, 202, 203, 204],
        },
    }
    assert has_warning(warnings, 190, "'notify_down' dropped")


def test_sample_vrrp_and_global_warnings() -> None:
    result, warnings = convert_sample("keepalived.conf")
    lines = [line for line, _ in warning_lines(warnings)]
    assert lines == sorted(lines)
    assert has_warning(warnings, 2, "global_defs: dropped")
    assert has_warning(warnings, 12, "vrrp_script chk_haproxy: dropped")
    assert has_warning(warnings, 20, "'virtual_router_id' dropped")
    assert has_warning(warnings, 23, "authentication dropped")
    assert has_warning(warnings, 28, "virtual_ipaddress 203.0.113.10: '/24 dev eth0 label eth0:1'")
    assert has_warning(warnings, 34, "heartbeat every 0.5 s, dead after 1.5 s, vrrp")
    assert has_warning(warnings, 43, "'notify_master' dropped")
    assert has_warning(warnings, 194, "include of '/etc/keepalived/conf.d/*.conf' not followed")
    header = "\n".join(result.header)
    assert "vrrp_instance VI_WEB: MASTER, priority 150, interface eth0" in header
    assert "vrrp_instance VI_DB: BACKUP, priority 100, interface eth1, VIPs 192.0.2.20" in header


# --- single constructs --------------------------------------------------------------------------------


def vs(body: str, head: str = "192.0.2.10 80", servers: str | None = None) -> str:
    servers = (
        servers
        if servers is not None
        else (
            "    real_server 198.51.100.11 80 {\n        weight 2\n"
            "        TCP_CHECK {\n            connect_timeout 1\n"
            "        }\n    }\n"
        )
    )
    return f"virtual_server {head} {{\n{body}{servers}}}\n"


def test_lvs_method_and_lb_kind_spellings() -> None:
    for keyword in ("lb_kind", "lvs_method"):
        result, _ = convert_text(vs(f"    {keyword} TUN\n"), name="keepalived.conf")
        spec = spec_of(result, "VirtualService", "vs-192-0-2-10-80")
        assert spec["forwarding"] == "Tunnel"
        assert "tunnel" not in spec


def test_no_checkers_means_check_type_none() -> None:
    servers = "    real_server 198.51.100.11 80 {\n        weight 1\n    }\n"
    result, warnings = convert_text(vs("    lb_algo rr\n", servers=servers), name="keepalived.conf")
    assert spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"] == {"type": "None"}
    assert has_warning(warnings, 1, "has no checkers: healthCheck type None")
    assert has_warning(warnings, 1, "is not in any vrrp_instance's virtual_ipaddress")


def test_differing_checkers_keep_the_most_common_and_warn() -> None:
    servers = (
        "".join(
            f"    real_server 198.51.100.{n} 80 {{\n        TCP_CHECK {{\n"
            f"            connect_timeout {t}\n        }}\n    }}\n"
            for n, t in ((11, 1), (12, 1), (13, 2))
        )
        + "    real_server 198.51.100.14 80 {\n    }\n"
    )
    result, warnings = convert_text(vs("", servers=servers), name="keepalived.conf")
    assert spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]["timeoutSeconds"] == 1
    assert has_warning(warnings, 13, "real_server 198.51.100.13: its TCP check differs")
    assert has_warning(warnings, 17, "real_server 198.51.100.14 has no checker")


def test_per_member_check_ports_become_check_port() -> None:
    servers = "".join(
        f"    real_server 198.51.100.{n} 80 {{\n        TCP_CHECK {{\n"
        f"            connect_port {p}\n        }}\n    }}\n"
        for n, p in ((11, 8081), (12, 8082))
    )
    result, _ = convert_text(vs("", servers=servers), name="keepalived.conf")
    assert "port" not in spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]
    assert spec_of(result, "RealServerPool", "vs-192-0-2-10-80-pool")["members"] == [
        {"address": "198.51.100.11", "weight": 1, "checkPort": 8081},
        {"address": "198.51.100.12", "weight": 1, "checkPort": 8082},
    ]


def test_timeout_longer_than_interval_is_lowered() -> None:
    servers = (
        "    real_server 198.51.100.11 80 {\n        TCP_CHECK {\n"
        "            connect_timeout 9\n        }\n    }\n"
    )
    result, warnings = convert_text(vs("    delay_loop 4\n", servers=servers), name="keepalived.conf")
    check = spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]
    assert (check["intervalSeconds"], check["timeoutSeconds"]) == (4, 4)
    assert has_warning(warnings, 4, "timeoutSeconds lowered to 4")


def test_fractional_delay_loop_is_kept() -> None:
    result, _ = convert_text(vs("    delay_loop 0.5\n"), name="keepalived.conf")
    check = spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]
    assert (check["intervalSeconds"], check["timeoutSeconds"]) == (0.5, 0.5)


def test_ops_on_tcp_and_foreign_scheduler_flag_are_dropped_with_warnings() -> None:
    result, warnings = convert_text(vs("    lb_algo wlc\n    ops\n    sh-port\n"), name="keepalived.conf")
    spec = spec_of(result, "VirtualService", "vs-192-0-2-10-80")
    assert "onePacket" not in spec
    assert spec["scheduler"] == {"name": "wlc"}
    assert has_warning(warnings, 1, "ops (one-packet scheduling) needs UDP")
    assert has_warning(warnings, 1, "scheduler flag sh-port does not apply to scheduler wlc")


def test_ipv6_service_with_prefix_granularity() -> None:
    servers = "    real_server 2001:db8::11 80 {\n        TCP_CHECK {\n        }\n    }\n"
    text = vs(
        "    persistence_timeout 120\n    persistence_granularity 64\n",
        head="2001:db8::10 80",
        servers=servers,
    )
    result, _ = convert_text(text, name="keepalived.conf")
    spec = spec_of(result, "VirtualService", "vs-2001-db8-10-80")
    assert spec["vip"] == "2001:db8::10"
    assert spec["persistence"] == {"timeoutSeconds": 120, "netmask": 64}
    assert spec_of(result, "VIPPool", "keepalived-vips")["addresses"] == ["2001:db8::10/128"]


def test_multiple_urls_and_http_regex() -> None:
    servers = (
        "    real_server 198.51.100.11 80 {\n        HTTP_GET {\n"
        '            url {\n                path /a\n                regex "^ok$"\n            }\n'
        "            url {\n                path /b\n            }\n"
        "        }\n    }\n"
    )
    result, warnings = convert_text(vs("", servers=servers), name="keepalived.conf")
    assert spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]["http"] == {
        "path": "/a",
        "bodyRegex": "^ok$",
    }
    assert has_warning(warnings, 8, "only the first url is checked")


def test_fwmark_without_any_vip_is_skipped() -> None:
    result, warnings = convert_text(vs("", head="fwmark 3"), name="keepalived.conf")
    assert result.count("VirtualService") == 0
    assert result.count("VIPPool") == 0
    assert has_warning(warnings, 1, "fwmark 3 service has no address and no vrrp_instance VIP")


def test_two_checkers_on_one_server_keep_the_first() -> None:
    servers = (
        "    real_server 198.51.100.11 80 {\n        TCP_CHECK {\n        }\n"
        "        PING_CHECK {\n        }\n"
        "        SMTP_CHECK {\n        }\n    }\n"
    )
    result, warnings = convert_text(vs("", servers=servers), name="keepalived.conf")
    assert spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]["type"] == "TCP"
    assert has_warning(warnings, 5, "PING_CHECK has no equivalent")
    assert has_warning(warnings, 7, "SMTP_CHECK converted to a TCP connect check")
    assert has_warning(warnings, 7, "2 checkers; only the first (TCP) is converted")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (vs("    lb_kind XDP\n"), 2, "'lb_kind' must be NAT, DR or TUN, got 'XDP'"),
        (vs("", head="group NOPE"), 1, "virtual_server_group 'NOPE' is not defined"),
        (vs("", head="192.0.2.10"), 1, "virtual_server needs 'ADDRESS PORT'"),
        (vs("", head="192.0.2.300 80"), 1, "needs an IP address, got '192.0.2.300'"),
        (vs("    delay_loop soon\n"), 2, "'delay_loop' needs a number of seconds"),
        (vs("    protocol ICMP\n"), 2, "protocol must be TCP, UDP or SCTP"),
        (vs("    lvs_method TUN type gue\n"), 1, "GUE tunnel needs 'port N'"),
        (vs("    lvs_method TUN type vxlan\n"), 2, "tunnel type must be ipip, gue or gre"),
        ("virtual_server_group G {\n  192.0.2.1-300 80\n}\n", 2, "bad address range"),
        ("virtual_server_group G {\n  192.0.2.1\n}\n", 2, "entry must be 'ADDRESS PORT'"),
        ("vrrp_instance V {\n  state LEADER\n}\n", 2, "state must be MASTER or BACKUP"),
        (
            vs("", servers="    real_server 198.51.100.11 80 {\n        MISC_CHECK {\n        }\n    }\n"),
            3,
            "MISC_CHECK needs misc_path",
        ),
        (
            vs("", servers="    real_server 198.51.100.11 80 {\n        HTTP_GET {\n        }\n    }\n"),
            3,
            "HTTP_GET needs a url block with a path",
        ),
        (
            vs("", servers="    real_server 198.51.100.11 80 {\n        weight heavy\n    }\n"),
            3,
            "'weight' needs a whole number",
        ),
        (
            vs(
                "",
                servers="    real_server 198.51.100.11 80 {\n  HTTP_GET {\n url {\n"
                " status_code 999\n }\n }\n }\n",
            ),
            5,
            "'status_code' must be 100..599",
        ),
    ],
)
def test_malformed_input_is_an_error_with_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert_text(text, name="keepalived.conf")
    assert caught.value.location.line == line
    assert message in caught.value.message


def test_vrrp_unicast_peers_and_sync_interface_become_agent_flags() -> None:
    text = (
        "vrrp_instance VI_1 {\n  state BACKUP\n  advert_int 2\n  lvs_sync_daemon_interface eth1\n"
        "  unicast_peer {\n    192.0.2.3\n  }\n  virtual_ipaddress {\n    192.0.2.10\n  }\n}\n"
    ) + vs("", head="192.0.2.10 80")
    result, warnings = convert_text(text, name="keepalived.conf")
    flags = result.header[
        result.header.index(
            "Agent (DaemonSet lvs-agent) flags reproducing director-level settings of this file:"
        )
        + 1 :
    ]
    assert flags == [
        "  --sync-interface eth1    # keepalived.conf:4",
        "  --peer <node-of-192.0.2.3>=192.0.2.3    # keepalived.conf:6",
        "  --heartbeat-interval 2    # keepalived.conf:1",
        "  --missed 3    # keepalived.conf:1",
    ]
    assert has_warning(warnings, 4, "--sync-interface IFACE")
    assert has_warning(warnings, 5, "unicast_peer becomes the agents' --peer flags")
    assert spec_of(result, "VirtualService", "vs-192-0-2-10-80")["vipGroup"] == "vi-1"


@pytest.mark.parametrize("keyword", ["virtual_server 192.0.2.1 80", "vrrp_instance V", "global_defs"])
def test_block_keywords_without_a_block_are_errors(keyword: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert_text(f"! header\n{keyword}\n", name="keepalived.conf")
    assert caught.value.location.line == 2
    assert "needs a { ... } block" in caught.value.message


def http_server(url_body: str) -> str:
    return (
        "    real_server 198.51.100.11 80 {\n        HTTP_GET {\n            url {\n"
        f"{url_body}            }}\n        }}\n    }}\n"
    )


def test_status_code_lists_ranges_and_default() -> None:
    text = vs(
        "", servers=http_server("                path /\n                status_code 200-202,301 404\n")
    )
    result, _ = convert_text(text, name="keepalived.conf")
    http = spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]["http"]
    assert http == {"path": "/", "expectStatus": [200, 201, 202, 301, 404]}

    result, warnings = convert_text(
        vs("", servers=http_server("                path /\n")), name="keepalived.conf"
    )
    assert spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]["http"] == {"path": "/"}
    assert has_warning(warnings, 3, "no status_code: keepalived accepted any 2xx answer")

    text = vs("", servers=http_server("                path /\n                status_code 200-299\n"))
    result, warnings = convert_text(text, name="keepalived.conf")
    http = spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]["http"]
    assert http["expectStatus"] == list(range(200, 216))
    assert has_warning(warnings, 3, "100 expected status codes; only 16 fit")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            vs("", head="2001:db8::10 80"),
            1,
            "VIP 2001:db8::10 and the real servers of '2001:db8::10-80' are of different address families",
        ),
        (
            vs("    sorry_server 2001:db8::99 80\n"),
            2,
            "sorry server 2001:db8::99 is not of the real servers'",
        ),
        (
            vs(
                "",
                servers="    real_server 198.51.100.11 80 {\n    }\n"
                "    real_server 2001:db8::1 80 {\n    }\n",
            ),
            1,
            "mixes IPv4 and IPv6 real servers",
        ),
    ],
)
def test_address_family_mismatches_are_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert_text(text, name="keepalived.conf")
    assert caught.value.location.line == line
    assert message in caught.value.message


def test_ipv6_sample() -> None:
    result, warnings = convert_sample("keepalived-ipv6.conf")
    assert spec_of(result, "VirtualService", "vs-2001-db8-0-10-80-443") == {
        "vip": "2001:db8:0:10::80",
        "ports": [{"port": 443, "protocol": "TCP"}],
        "scheduler": {"name": "sed"},
        "forwarding": "DirectRouting",
        "persistence": {"timeoutSeconds": 900, "netmask": 64},
        "healthCheck": {
            "type": "HTTPS",
            "intervalSeconds": 2,
            "timeoutSeconds": 1,
            "rise": 1,
            "fall": 3,
            "http": {"path": "/health"},
        },
        "onFailure": "Remove",
        "poolRef": {"name": "vs-2001-db8-0-10-80-443-pool"},
        "fallback": [{"address": "2001:db8:0:20::99"}],
        "directorSelector": DIRECTOR,
        "vipGroup": "vi-6",
    }
    dns = spec_of(result, "VirtualService", "vs-2001-db8-0-10-53-53")
    assert dns["healthCheck"] == {
        "type": "UDP",
        "intervalSeconds": 1,
        "timeoutSeconds": 1,
        "rise": 1,
        "fall": 3,
    }
    assert spec_of(result, "RealServerPool", "vs-2001-db8-0-10-53-53-pool")["members"] == [
        {"address": "2001:db8:0:30::53", "port": 5353, "weight": 1},
        {"address": "2001:db8:0:30::54", "port": 5353, "weight": 1},
    ]
    assert spec_of(result, "VIPPool", "keepalived-ipv6-vips")["addresses"] == [
        "2001:db8:0:10::80/128",
        "2001:db8:0:10::53/128",
    ]
    assert has_warning(warnings, 7, "--heartbeat-interval 0.1 --missed 3")
    assert has_warning(warnings, 13, "'nopreempt' dropped")
    assert has_warning(warnings, 15, "virtual_ipaddress 2001:db8:0:10::80: '/64'")
    assert result.manifests[2].comments == [f"{result.config.path}:20: virtual_server 2001:db8:0:10::80 443"]


def test_nat_group_members_keep_their_port_on_every_service_port() -> None:
    """keepalived adds `real_server IP 8080` to each service of the group: :80 and :443 both go to :8080,
    and a member on :80 still receives :443 traffic on :80."""
    text = (
        "virtual_server_group G {\n  192.0.2.10 80\n  192.0.2.10 443\n}\n"
        "virtual_server group G {\n  lb_kind NAT\n"
        "  real_server 198.51.100.11 8080 {\n  }\n  real_server 198.51.100.12 80 {\n  }\n}\n"
    )
    result, _ = convert_text(text, name="keepalived.conf")
    assert spec_of(result, "RealServerPool", "g-pool")["members"] == [
        {"address": "198.51.100.11", "port": 8080, "weight": 1},
        {"address": "198.51.100.12", "port": 80, "weight": 1},
    ]


def test_duplicate_real_server_is_dropped_with_a_warning() -> None:
    servers = (
        "    real_server 198.51.100.11 80 {\n    }\n"
        "    real_server 198.51.100.11 80 {\n        weight 9\n    }\n"
    )
    result, warnings = convert_text(vs("", servers=servers), name="keepalived.conf")
    assert spec_of(result, "RealServerPool", "vs-192-0-2-10-80-pool")["members"] == [
        {"address": "198.51.100.11", "weight": 1}
    ]
    assert has_warning(warnings, 4, "real server 198.51.100.11 listed twice")


def test_partial_inhibit_on_failure_and_granularity_without_timeout() -> None:
    servers = (
        "    real_server 198.51.100.11 80 {\n        inhibit_on_failure\n    }\n"
        "    real_server 198.51.100.12 80 {\n    }\n"
    )
    result, warnings = convert_text(
        vs("    persistence_granularity 24\n", servers=servers), name="keepalived.conf"
    )
    spec = spec_of(result, "VirtualService", "vs-192-0-2-10-80")
    assert spec["onFailure"] == "Quiesce"
    assert "persistence" not in spec
    assert has_warning(warnings, 3, "inhibit_on_failure on 1 of 2 real servers")
    assert has_warning(warnings, 2, "persistence_granularity without persistence_timeout: ignored")


def test_udp_check_hex_payload_and_reply() -> None:
    servers = (
        "    real_server 198.51.100.11 80 {\n        UDP_CHECK {\n            payload 70696e670a\n"
        "            require_reply 706f6e67\n        }\n    }\n"
        "    real_server 198.51.100.12 80 {\n        UDP_CHECK {\n"
        "            payload 00ff\n        }\n    }\n"
    )
    result, warnings = convert_text(vs("    protocol UDP\n", servers=servers), name="keepalived.conf")
    check = spec_of(result, "VirtualService", "vs-192-0-2-10-80")["healthCheck"]
    assert check["udp"] == {"send": "ping\n", "expect": "^pong"}
    assert has_warning(warnings, 11, "UDP_CHECK payload 00ff is not hex of printable text: dropped")


def test_a_split_group_warns_once() -> None:
    servers = (
        "    real_server 198.51.100.11 80 {\n        MISC_CHECK {\n"
        "            misc_path /bin/check 198.51.100.11\n        }\n    }\n"
    )
    text = "virtual_server_group G {\n  192.0.2.10 80\n  192.0.2.11 80\n}\n" + vs(
        "", head="group G", servers=servers
    )
    result, warnings = convert_text(text, name="keepalived.conf")
    assert result.count("VirtualService") == 2
    exec_warnings = [w for w in warnings if "allowExecHealthChecks" in w.message]
    assert len(exec_warnings) == 1
    assert len(warnings) == len(set(warnings))

"""Numbers from the kernel's ``include/uapi/linux/ip_vs.h`` and ``linux/netlink.h``.

Kept as plain ints (not enums) because they go straight into ``struct`` formats.
"""

from __future__ import annotations

from typing import Final

GENL_NAME: Final = "IPVS"
GENL_VERSION: Final = 1

# netlink header flags (linux/netlink.h)
NLM_F_REQUEST: Final = 0x0001
NLM_F_MULTI: Final = 0x0002
NLM_F_ACK: Final = 0x0004
NLM_F_DUMP_INTR: Final = 0x0010
NLM_F_ROOT: Final = 0x0100
NLM_F_MATCH: Final = 0x0200
NLM_F_DUMP: Final = NLM_F_ROOT | NLM_F_MATCH

# netlink control message types
NLMSG_NOOP: Final = 1
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
NLMSG_OVERRUN: Final = 4

# attribute header: top bits flag nesting / byte order, the rest is the type
NLA_F_NESTED: Final = 0x8000
NLA_F_NET_BYTEORDER: Final = 0x4000
NLA_TYPE_MASK: Final = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

# socket options (linux/netlink.h); not all are exported by Python's socket module
SOL_NETLINK: Final = 270
NETLINK_CAP_ACK: Final = 10
SO_SNDBUFFORCE: Final = 32
SO_RCVBUFFORCE: Final = 33

# IPVS generic netlink commands
IPVS_CMD_NEW_SERVICE: Final = 1
IPVS_CMD_SET_SERVICE: Final = 2
IPVS_CMD_DEL_SERVICE: Final = 3
IPVS_CMD_GET_SERVICE: Final = 4
IPVS_CMD_NEW_DEST: Final = 5
IPVS_CMD_SET_DEST: Final = 6
IPVS_CMD_DEL_DEST: Final = 7
IPVS_CMD_GET_DEST: Final = 8
IPVS_CMD_NEW_DAEMON: Final = 9
IPVS_CMD_DEL_DAEMON: Final = 10
IPVS_CMD_GET_DAEMON: Final = 11

# top-level attributes of an IPVS message
IPVS_CMD_ATTR_SERVICE: Final = 1
IPVS_CMD_ATTR_DEST: Final = 2
IPVS_CMD_ATTR_DAEMON: Final = 3

# attributes inside IPVS_CMD_ATTR_SERVICE
IPVS_SVC_ATTR_AF: Final = 1
IPVS_SVC_ATTR_PROTOCOL: Final = 2
IPVS_SVC_ATTR_ADDR: Final = 3
IPVS_SVC_ATTR_PORT: Final = 4
IPVS_SVC_ATTR_FWMARK: Final = 5
IPVS_SVC_ATTR_SCHED_NAME: Final = 6
IPVS_SVC_ATTR_FLAGS: Final = 7
IPVS_SVC_ATTR_TIMEOUT: Final = 8
IPVS_SVC_ATTR_NETMASK: Final = 9
IPVS_SVC_ATTR_STATS: Final = 10
IPVS_SVC_ATTR_PE_NAME: Final = 11
IPVS_SVC_ATTR_STATS64: Final = 12

# attributes inside IPVS_CMD_ATTR_DEST
IPVS_DEST_ATTR_ADDR: Final = 1
IPVS_DEST_ATTR_PORT: Final = 2
IPVS_DEST_ATTR_FWD_METHOD: Final = 3
IPVS_DEST_ATTR_WEIGHT: Final = 4
IPVS_DEST_ATTR_U_THRESH: Final = 5
IPVS_DEST_ATTR_L_THRESH: Final = 6
IPVS_DEST_ATTR_ACTIVE_CONNS: Final = 7
IPVS_DEST_ATTR_INACT_CONNS: Final = 8
IPVS_DEST_ATTR_PERSIST_CONNS: Final = 9
IPVS_DEST_ATTR_STATS: Final = 10
IPVS_DEST_ATTR_ADDR_FAMILY: Final = 11
IPVS_DEST_ATTR_STATS64: Final = 12
IPVS_DEST_ATTR_TUN_TYPE: Final = 13
IPVS_DEST_ATTR_TUN_PORT: Final = 14
IPVS_DEST_ATTR_TUN_FLAGS: Final = 15

# attributes inside IPVS_CMD_ATTR_DAEMON (SYNC_MAXLEN and after: kernel 4.3 and later)
IPVS_DAEMON_ATTR_STATE: Final = 1
IPVS_DAEMON_ATTR_MCAST_IFN: Final = 2
IPVS_DAEMON_ATTR_SYNC_ID: Final = 3
IPVS_DAEMON_ATTR_SYNC_MAXLEN: Final = 4
IPVS_DAEMON_ATTR_MCAST_GROUP: Final = 5
IPVS_DAEMON_ATTR_MCAST_GROUP6: Final = 6
IPVS_DAEMON_ATTR_MCAST_PORT: Final = 7
IPVS_DAEMON_ATTR_MCAST_TTL: Final = 8

# values of IPVS_DAEMON_ATTR_STATE (IP_VS_STATE_*)
IP_VS_STATE_MASTER: Final = 1
IP_VS_STATE_BACKUP: Final = 2

# IP_VS_IFNAME_MAXLEN: the interface name and its NUL
IP_VS_IFNAME_MAXLEN: Final = 16

# attributes inside IPVS_*_ATTR_STATS / _STATS64 (u32 / u64 resp., bytes always u64)
IPVS_STATS_ATTR_CONNS: Final = 1
IPVS_STATS_ATTR_INPKTS: Final = 2
IPVS_STATS_ATTR_OUTPKTS: Final = 3
IPVS_STATS_ATTR_INBYTES: Final = 4
IPVS_STATS_ATTR_OUTBYTES: Final = 5
IPVS_STATS_ATTR_CPS: Final = 6
IPVS_STATS_ATTR_INPPS: Final = 7
IPVS_STATS_ATTR_OUTPPS: Final = 8
IPVS_STATS_ATTR_INBPS: Final = 9
IPVS_STATS_ATTR_OUTBPS: Final = 10

# the mask user space sends with IPVS_SVC_ATTR_FLAGS so that every flag is set as given (as ipvsadm does)
ALL_FLAGS_MASK: Final = 0xFFFFFFFF

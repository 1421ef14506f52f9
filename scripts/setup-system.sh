#!/usr/bin/env bash
# Installs the Debian packages the kernel-guest tests and the demo need (root; Debian registry only).
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
command -v ipvsadm >/dev/null || need+=(ipvsadm)
command -v modprobe >/dev/null || need+=(kmod)
command -v ip >/dev/null || need+=(iproute2)
command -v cpio >/dev/null || need+=(cpio)
[ -x /bin/busybox ] && ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || need+=(busybox-static)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v nft >/dev/null || need+=(nftables)
command -v tc >/dev/null || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: need root to install: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "setup-system: installing ${need[*]}" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

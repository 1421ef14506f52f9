#!/usr/bin/env bash
# Installs the Debian packages the kernel-guest tests, benches and the demo need (root; Debian registry only).
# Idempotent: does nothing when everything is already there.
#
# The guest kernels themselves are not installed here: the harness (lvs_guest) fetches them with
# `apt-get download` into its cache (.cache/guest, or $LVS_GUEST_CACHE) on first use.
# Backends: User-Mode Linux is the default without real hardware virtualisation and needs no extra
# package; qemu (+ a static busybox for its initramfs) is installed when it will be used: with KVM on a
# CPU with VT-x/SVM, when LVS_GUEST_BACKEND=qemu, or with LVS_SETUP_ALL_BACKENDS=1 (to bench both).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ipvsadm || need+=(ipvsadm)             # the reference tool the kernel tests compare against
have modprobe || need+=(kmod)               # modprobe/insmod/depmod, on the host and inside the guest
have ip || need+=(iproute2)
have tc || need+=(iproute2)
have nft || need+=(nftables)
have mount || need+=(mount)
have openssl || need+=(openssl)             # the embedded API server's self-signed TLS certificate
have keepalived || need+=(keepalived)       # bench/failover_bench.py compares failover with its VRRP
have timeout || need+=(coreutils)          # test.sh caps each stage's wall-clock time
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)  # scripts/venv.sh makes .venv
have apt-get || { echo "setup-system: not a Debian system (no apt-get)" >&2; exit 1; }

real_kvm() {
  [ -c /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo
}
if [ "${LVS_GUEST_BACKEND:-}" = qemu ] || [ "${LVS_SETUP_ALL_BACKENDS:-0}" = 1 ] || real_kvm; then
  have qemu-system-x86_64 || need+=(qemu-system-x86)
  # Debian's `busybox` is dynamic; the initramfs has no libc. (ldd exits 1 on a static binary.)
  [[ "$(ldd /bin/busybox 2>&1 || true)" == *"not a dynamic"* ]] || need+=(busybox-static)
fi

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: need root to install: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A transient registry or network error should not fail CI: apt retries each download, and the whole
# step is tried again (after a pause) before giving up.
retry() {
  local attempt
  for attempt in 1 2 3; do
    "$@" && return 0
    [ "$attempt" -lt 3 ] || break
    echo "setup-system: '$*' failed (attempt $attempt of 3), retrying in $((attempt * 10)) s" >&2
    sleep $((attempt * 10))
  done
  return 1
}
apt_options=(-o Acquire::Retries=3 -o DPkg::Lock::Timeout=300)
echo "setup-system: installing ${need[*]}" >&2
retry apt-get "${apt_options[@]}" update -qq
retry apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null

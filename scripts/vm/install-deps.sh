#!/usr/bin/env bash
# Installs what the VM test tier needs on a Debian 12 host (idempotent; run as root):
#   qemu-system-x86   the emulator (TCG; KVM when the host really has it)
#   busybox-static    the guest's shell and init
#   kmod              depmod, for the unpacked kernel's modules.dep
#   linux-source-6.1 (of the guest kernel's version), linux-headers-<kernel>-amd64, gcc, make
#                     to rebuild vfio.ko with CONFIG_VFIO_NOIOMMU for the noiommu profile
#   qemu-system-common  ships /usr/bin/qemu-storage-daemon on Debian 12 (`dpkg -S`), the
#                     vhost-user-blk back-end the vhost-user test tier and bench start
#   libmnl0, libcap2  the libraries of iproute2's `vdpa` tool, copied into the vdpa profile's guest
#                     (its 6.12 kernel, headers, kbuild, linux-source-6.12 and iproute2 are fetched
#                     with `apt-get download` by scripts/vm/vdpa.mjs, never installed on the host)
# The guest kernel itself is not installed: scripts/vm/kernel.mjs fetches its .deb with
# `apt-get download` into .cache/vm/debs and unpacks it there (the host's /boot is never touched).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: run as root (apt-get install)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq

# The kernel the guest boots: the one the linux-image-amd64 metapackage depends on.
kver=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\(6\.1\.0-[0-9]*-amd64\).*/\1/p' | head -n1)
if [ -z "$kver" ]; then
  echo "install-deps.sh: cannot tell which 6.1 kernel linux-image-amd64 depends on" >&2
  exit 1
fi

pkgs=(qemu-system-x86 qemu-system-common qemu-utils busybox-static kmod "linux-headers-$kver" gcc make xz-utils zstd
  libmnl0 libcap2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# linux-source-6.1 of the guest kernel's own version: bookworm-security keeps several, and the
# newest source can run ahead of the image linux-image-amd64 depends on (as linux-source-6.12 did
# on 2026-12-02), so the candidate is not taken blindly. Without that version in the lists: the
# candidate, and noiommu.mjs builds the few vfio files it needs from it.
versions_of() { apt-cache madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'; }
kernel_debver=$(versions_of "linux-image-$kver" | head -n1)
source_pkg=linux-source-6.1
if [ -n "$kernel_debver" ] && versions_of linux-source-6.1 | grep -qxF "$kernel_debver"; then
  source_pkg="linux-source-6.1=$kernel_debver"
  [ "$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)" = "$kernel_debver" ] || missing+=("$source_pkg")
else
  dpkg-query -W -f='${Status}' linux-source-6.1 2>/dev/null | grep -q 'install ok installed' || missing+=(linux-source-6.1)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends --allow-downgrades "${missing[@]}"
fi
# The vdpa profile's kernel: the newest 6.12 from bookworm-security (scripts/vm/vdpa.mjs downloads it).
v612=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(6\.12\.[0-9]*+deb[0-9]*-amd64\).*/\1/p' | head -n1)
[ -n "$v612" ] || echo "install-deps.sh: warning: no linux-image-6.12-amd64 in the apt lists (bookworm-security): the vdpa profile cannot be built" >&2
echo "install-deps.sh: ready (guest kernel $kver; vdpa profile kernel ${v612:-none})"

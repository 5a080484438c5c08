#!/usr/bin/env bash
# build-cpu-base.sh - a CPU base image for the trainer Dockerfile, made without a registry:
# Debian (debootstrap, minbase) plus torch's CPU wheel in a venv on PATH, imported into podman.
#
#   image/build-cpu-base.sh            # prints the image name last, e.g. localhost/kctl-cpu-base:2.13.0
#   podman build --format docker --build-arg BASE_IMAGE=localhost/kctl-cpu-base:2.13.0 \
#       --build-arg TORCH_VERSION=2.13.0 -t localhost/kctl-trainer:cpu .
#
# Cached: the image carries the label kctl.cpu-base.inputs, a hash of this script and of the
# settings below; when an image of that name has the same hash, nothing is built. Needs root
# (debootstrap, chroot), debootstrap and podman. torch and its dependencies are downloaded on the
# host with its own pip and its configuration (here: the CPU wheel on disk and the PyPI mirror;
# elsewhere e.g. PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu), then installed in the
# chroot from those files only, so nothing in the chroot needs network or certificates.
#
# Env knobs:
#   TORCH_VERSION   torch release, CPU build (default 2.13.0); it must suit Debian's Python 3.11
#   SUITE           Debian release (default bookworm)
#   DEBIAN_MIRROR   debootstrap's mirror (default: the first one apt is configured with)
#   BASE_IMAGE      the image's name (default localhost/kctl-cpu-base:$TORCH_VERSION)
#   PYTHON          the host Python whose pip downloads the wheels (default python3)
#   ENGINE          container engine (default podman; honours CONTAINERS_CONF)
set -euo pipefail

TORCH_VERSION=${TORCH_VERSION:-2.13.0}
SUITE=${SUITE:-bookworm}
BASE_IMAGE=${BASE_IMAGE:-localhost/kctl-cpu-base:${TORCH_VERSION}}
PYTHON=${PYTHON:-python3}
ENGINE=${ENGINE:-podman}
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
LABEL=kctl.cpu-base.inputs

log() { echo "[build-cpu-base] $*" >&2; }
die() { echo "build-cpu-base.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot)"
for tool in debootstrap "$ENGINE" "$PYTHON"; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

inputs=$( { cat "$0"; echo "$TORCH_VERSION $SUITE $PACKAGES"; } | sha256sum | cut -c1-16)
have=$("$ENGINE" image inspect --format "{{ index .Labels \"$LABEL\" }}" "$BASE_IMAGE" 2>/dev/null || true)
if [ "$have" = "$inputs" ]; then
  log "$BASE_IMAGE is up to date ($LABEL=$inputs)"
  echo "$BASE_IMAGE"
  exit 0
fi

mirror() { # the first Debian archive apt uses (deb822 .sources or one-line sources.list)
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' \
                           /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(mirror)}

WORK=$(mktemp -d /var/tmp/kctl-cpu-base.XXXXXX)
ROOTFS=$WORK/rootfs
cleanup() {
  for mnt in "$ROOTFS/wheels" "$ROOTFS/proc" "$ROOTFS/dev"; do
    if mountpoint -q "$mnt" 2>/dev/null; then umount -l "$mnt" || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "debootstrap $SUITE from $DEBIAN_MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR" \
  > "$WORK/debootstrap.log" 2>&1 || die "debootstrap failed: $(tail -n1 "$WORK/debootstrap.log")"

log "downloading torch==$TORCH_VERSION+cpu and its dependencies"
"$PYTHON" -m pip download --quiet --only-binary=:all: "torch==$TORCH_VERSION+cpu" -d "$WORK/wheels" \
  > "$WORK/pip.log" 2>&1 || die "pip download torch==$TORCH_VERSION+cpu failed: $(tail -n1 "$WORK/pip.log")"

log "installing them into /opt/venv"
mkdir -p "$ROOTFS/wheels"
mount --bind "$WORK/wheels" "$ROOTFS/wheels"
mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"
chroot "$ROOTFS" /bin/sh -ec "
  python3 -m venv /opt/venv
  /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --find-links /wheels 'torch==$TORCH_VERSION+cpu'
  /opt/venv/bin/python -c 'import torch'
" > "$WORK/chroot.log" 2>&1 || die "installing torch in the chroot failed: $(tail -n1 "$WORK/chroot.log")"
umount "$ROOTFS/wheels" "$ROOTFS/proc" "$ROOTFS/dev"
rmdir "$ROOTFS/wheels"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/root/.cache

log "importing $BASE_IMAGE"
tar -C "$ROOTFS" --numeric-owner -c . | "$ENGINE" import \
  --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL $LABEL=$inputs" \
  --change "LABEL org.opencontainers.image.description=\"Debian $SUITE, torch $TORCH_VERSION (CPU) in /opt/venv\"" \
  --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" > "$WORK/import.log" 2>&1 \
  || die "$ENGINE import failed: $(tail -n1 "$WORK/import.log")"
echo "$BASE_IMAGE"

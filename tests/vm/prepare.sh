#!/usr/bin/env bash
# Prepares what tests/v4l2_vm.rs boots: QEMU, a static busybox and cpio from
# Debian, and Debian's own kernel with its media modules (vivid and what it
# needs), unpacked into target/vm/kernel/. Idempotent; scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=target/vm/kernel
sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# The initramfs needs a static busybox (ldd fails on a static binary).
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need+=(busybox-static); fi
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The modules vivid needs, in load order (TESTING.md).
modules="rc-core mc cec videodev videobuf2-common videobuf2-memops videobuf2-v4l2 videobuf2-vmalloc
videobuf2-dma-contig v4l2-tpg v4l2-dv-timings vivid"
if [ ! -s "$dir/vmlinuz" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
  [ -n "$pkg" ] || { $sudo_cmd apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -1); }
  echo "unpacking $pkg into $dir"
  work=$(mktemp -d)
  (cd "$work" && apt-get download "$pkg" 2>/dev/null)
  dpkg-deb -x "$work"/*.deb "$work/x"
  mkdir -p "$dir/modules"
  for m in $modules; do
    found=$(find "$work/x/lib/modules" -name "$m.ko" | head -1)
    [ -n "$found" ] || { echo "$pkg has no $m.ko"; exit 1; }
    cp "$found" "$dir/modules/"
  done
  echo "$modules" | tr -s ' \n' ' ' > "$dir/modules/order"
  cp "$work"/x/boot/vmlinuz-* "$dir/vmlinuz.tmp" && mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
  rm -rf "$work"
fi

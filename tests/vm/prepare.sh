#!/usr/bin/env bash
# Prepares what tests/v4l2_vm.rs boots: QEMU, a static busybox and cpio from
# Debian, and Debian's own kernel with its media modules (vivid and what it
# needs), unpacked into target/vm/kernel/, plus the codec test drivers
# Debian's config leaves out (v4l2-mem2mem, vicodec), built from Debian's
# kernel source against the headers of that same kernel (TESTING.md).
# Idempotent; scripts/test.sh runs it.
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
# A kernel unpacked before the codec drivers were built here has no record of its package: redo it.
[ -s "$dir/package" ] || rm -rf "$dir"
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
  echo "$pkg" > "$dir/package"
  rm -rf "$work"
fi

# vicodec (a stateful V4L2 M2M encoder and decoder) and v4l2-mem2mem, built
# for exactly the kernel above: its headers package, and the driver sources
# from Debian's kernel source tarball.
if [ ! -s "$dir/modules/vicodec.ko" ]; then
  kver=$(sed 's/^linux-image-//' "$dir/package")
  headers=/usr/src/linux-headers-$kver
  if [ ! -d "$headers" ]; then
    echo "installing linux-headers-$kver"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "linux-headers-$kver"
  fi
  series=$(echo "$kver" | cut -d. -f1,2)
  work=$(mktemp -d)
  echo "building vicodec for $kver from linux-source-$series"
  (cd "$work" && apt-get download "linux-source-$series" 2>/dev/null)
  dpkg-deb --fsys-tarfile "$work"/linux-source-*.deb | tar -x -C "$work" --wildcards '*.tar.xz'
  src=linux-source-$series
  tar -xJf "$work"/usr/src/$src.tar.xz -C "$work" \
    "$src/drivers/media/test-drivers/vicodec" "$src/drivers/media/v4l2-core/v4l2-mem2mem.c"
  mkdir -p "$work/m"
  cp "$work/$src"/drivers/media/test-drivers/vicodec/*.[ch] "$work/$src/drivers/media/v4l2-core/v4l2-mem2mem.c" "$work/m/"
  cat > "$work/m/Kbuild" <<'KBUILD'
obj-m += v4l2-mem2mem.o vicodec.o
vicodec-objs := codec-fwht.o codec-v4l2-fwht.o vicodec-core.o
ccflags-y += -DCONFIG_V4L2_MEM2MEM_DEV -DCONFIG_MEDIA_CONTROLLER
KBUILD
  make -s -C "$headers" M="$work/m" modules >/dev/null
  cp "$work/m/v4l2-mem2mem.ko" "$work/m/vicodec.ko" "$dir/modules/"
  echo "$(cat "$dir/modules/order") v4l2-mem2mem vicodec" > "$dir/modules/order"
  rm -rf "$work"
fi

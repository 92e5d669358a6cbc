//! V4L2 capture against a real kernel driver. The host test boots Debian's
//! kernel under QEMU (tests/vm/prepare.sh fetches it) with an initramfs
//! holding busybox, the `vivid` driver, the `eyrie` binary and this very test
//! binary; inside, the init script loads the modules and runs the `vm_*`
//! tests below (ignored on the host), then reports their exit status on the
//! serial console.
//!
//! vivid is loaded twice over: `/dev/video0` single-planar, `/dev/video1`
//! multi-planar (the Jetson and Raspberry Pi style), capture nodes only.
//! vicodec (built by tests/vm/prepare.sh) is loaded multi-planar: its
//! stateful encoder and decoder are the M2M codec devices the `v4l2m2m`
//! backend drives.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eyrie::capture::v4l2::{Device, V4l2Error, Want, fourcc, fourcc_name};
use eyrie::media::{Fps, MemoryKind, bytes_copied};

const MARKER: &str = "EYRIE-VM-RESULT";
/// The whole VM run: boot (≈ 5 s), module loading and the tests under TCG.
const VM_TIMEOUT: Duration = Duration::from_secs(420);

fn shared_libs(exe: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(exe).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from))
        .collect()
}

/// Copies `file` into `root` at its own absolute path.
fn copy_into(root: &Path, file: &Path) {
    let to = root.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(file, &to).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

#[test]
fn v4l2_in_a_real_kernel() {
    let kernel = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vm/kernel");
    assert!(
        kernel.join("vmlinuz").exists(),
        "no kernel in {}: run tests/vm/prepare.sh (scripts/test.sh does)",
        kernel.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for sub in ["bin", "proc", "sys", "dev", "tmp", "modules"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("a static /bin/busybox (busybox-static)");
    let order = std::fs::read_to_string(kernel.join("modules/order")).unwrap();
    for m in order.split_whitespace() {
        std::fs::copy(
            kernel.join(format!("modules/{m}.ko")),
            root.join(format!("modules/{m}.ko")),
        )
        .unwrap();
    }
    let test_exe = std::env::current_exe().unwrap();
    let eyrie = PathBuf::from(env!("CARGO_BIN_EXE_eyrie"));
    // Without their debug information (hundreds of MB since the detector
    // arrived), so the initramfs unpacks in the VM's memory.
    copy_stripped(&test_exe, &root.join("t"));
    copy_stripped(&eyrie, &root.join("eyrie"));
    for exe in [&test_exe, &eyrie] {
        for lib in shared_libs(exe) {
            copy_into(&root, &lib);
        }
    }
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n\
         for m in {order}; do\n\
           case $m in vivid) args='n_devs=2 multiplanar=1,2 node_types=0x1,0x1' ;; vicodec) args='multiplanar=1' ;; *) args= ;; esac\n\
           insmod /modules/$m.ko $args || echo \"insmod $m failed\"\n\
         done\n\
         cd /tmp\n\
         EYRIE_BIN=/eyrie RUST_BACKTRACE=1 /t --ignored --test-threads=1 vm_\n\
         echo \"{MARKER} $?\"\n\
         poweroff -f\n",
        order = order.trim()
    );
    std::fs::write(root.join("init"), init).unwrap();
    std::fs::set_permissions(root.join("init"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let initrd = dir.path().join("initrd.cpio");
    let packed = Command::new("sh")
        .arg("-c")
        .arg(format!("find . | cpio -o -H newc --quiet > '{}'", initrd.display()))
        .current_dir(&root)
        .status()
        .expect("cpio");
    assert!(packed.success(), "cpio failed");

    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            "1",
            "-m",
            "1024",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(kernel.join("vmlinuz"))
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-x86_64 (package qemu-system-x86; tests/vm/prepare.sh installs it)");
    let pid = qemu.id();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < VM_TIMEOUT {
            std::thread::sleep(Duration::from_millis(200));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return false;
            }
        }
        // SAFETY: kills the QEMU child this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        true
    });
    let mut result = None;
    for line in BufReader::new(qemu.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        println!("vm| {line}");
        if let Some(code) = line.trim().strip_prefix(MARKER) {
            result = code.trim().parse::<i32>().ok();
        }
    }
    qemu.wait().unwrap();
    let timed_out = watchdog.join().unwrap();
    assert!(!timed_out, "the VM did not finish within {VM_TIMEOUT:?}");
    println!("VM run: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(result, Some(0), "the tests inside the VM failed (output above)");
}

// ---- inside the VM ----

/// The vivid capture node of instance `n` (looked up by name, not number).
fn vivid(n: u32) -> PathBuf {
    let want = format!("vivid-{n:03}-vid-cap");
    for entry in std::fs::read_dir("/sys/class/video4linux").expect("sysfs") {
        let entry = entry.unwrap();
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim() == want {
            return Path::new("/dev").join(entry.file_name());
        }
    }
    panic!("no {want} device");
}

/// `code` at `width`×`height`, 25 fps (vivid's most at 640×480).
fn want(code: &str, width: u32, height: u32) -> Want {
    Want {
        fourcc: fourcc(code).unwrap(),
        width,
        height,
        fps: Some(Fps::new(25, 1).unwrap()),
    }
}

/// Captures 100 frames and checks them: sizes, sequence without gaps, leases
/// on driver memory with a DMABUF export, and no byte copied. At 15 fps with
/// 8 buffers, so that an emulated CPU under load never leaves the driver
/// without a buffer (which it would rightly count as a gap).
fn capture(device: &Path, code: &str) {
    let dev = Device::open(device).unwrap();
    let negotiated = dev
        .configure(&Want {
            fps: Some(Fps::new(15, 1).unwrap()),
            ..want(code, 640, 480)
        })
        .unwrap();
    assert_eq!((negotiated.width, negotiated.height), (640, 480));
    assert_eq!(fourcc_name(negotiated.fourcc), code);
    assert_eq!(negotiated.fps, Some(Fps::new(15, 1).unwrap()));
    let mut stream = dev.stream(8).unwrap();
    let copied = bytes_copied();
    let mut last: Option<u32> = None;
    let mut frames = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while frames < 100 {
        assert!(Instant::now() < deadline, "{frames} frames in 60 s");
        let Some(c) = stream.next(Duration::from_millis(500)).unwrap() else {
            continue;
        };
        assert!(!c.corrupted);
        assert!(c.timestamp_ns.is_some(), "vivid stamps buffers with CLOCK_MONOTONIC");
        if let Some(prev) = last {
            assert_eq!(c.sequence, prev + 1, "a gap in the sequence after {prev}");
        }
        last = Some(c.sequence);
        assert_eq!(c.bytes().len(), negotiated.size_image as usize);
        let buffer = c.into_buffer();
        assert_eq!(buffer.kind(), MemoryKind::Mmap);
        assert!(buffer.dmabuf_fd().is_some(), "EXPBUF gives a DMABUF for each buffer");
        frames += 1;
    }
    assert_eq!(bytes_copied(), copied, "capture copied frame bytes");
    assert_eq!(stream.requeue_failures(), 0);
}

#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_capture_yuyv_single_planar() {
    let dev = vivid(0);
    let info = Device::open(&dev).unwrap().info().clone();
    assert!(info.roles().contains(&"capture"), "{:?}", info.roles());
    capture(&dev, "YUYV");
}

#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_capture_nv12_multi_planar() {
    let dev = vivid(1);
    let info = Device::open(&dev).unwrap().info().clone();
    assert!(info.roles().contains(&"capture (multi-planar)"), "{:?}", info.roles());
    capture(&dev, "NV12");
}

#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_held_buffers_make_drops_and_capture_recovers() {
    let dev = Device::open(&vivid(0)).unwrap();
    dev.configure(&want("YUYV", 640, 480)).unwrap();
    let mut stream = dev.stream(4).unwrap();
    let mut held = Vec::new();
    let mut last = 0;
    while held.len() < stream.buffer_count() {
        if let Some(c) = stream.next(Duration::from_millis(500)).unwrap() {
            last = c.sequence;
            held.push(c.into_buffer());
        }
    }
    // Every buffer is downstream: nothing comes, and nothing blocks.
    let t = Instant::now();
    for _ in 0..5 {
        assert!(stream.next(Duration::from_millis(100)).unwrap().is_none());
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(held);
    let next = loop {
        if let Some(c) = stream.next(Duration::from_millis(500)).unwrap() {
            break c.sequence;
        }
    };
    assert!(
        next > last + 1,
        "frames the driver had no buffer for show as a gap ({last} → {next})"
    );
    for _ in 0..10 {
        while stream.next(Duration::from_millis(500)).unwrap().is_none() {}
    }
}

#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_a_dropped_stream_frees_the_device_while_its_frames_are_still_held() {
    let dev = Device::open(&vivid(0)).unwrap();
    dev.configure(&want("YUYV", 640, 480)).unwrap();
    let mut stream = dev.stream(4).unwrap();
    let held = loop {
        if let Some(c) = stream.next(Duration::from_millis(500)).unwrap() {
            break c.into_buffer();
        }
    };
    drop(stream);
    // A new owner configures another size and streams while the old frame lives on.
    let dev = Device::open(&vivid(0)).unwrap();
    dev.configure(&want("YUYV", 640, 360)).unwrap();
    let mut stream = dev.stream(4).unwrap();
    for _ in 0..5 {
        while stream.next(Duration::from_millis(500)).unwrap().is_none() {}
    }
    assert_eq!(held.len(), 640 * 480 * 2, "the held frame keeps its memory");
    drop(held);
}

#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_impossible_formats_list_what_the_device_can_do() {
    let dev = Device::open(&vivid(0)).unwrap();
    let err = dev.configure(&want("ABCD", 640, 480)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, V4l2Error::Unsupported { .. }), "{text}");
    assert!(text.contains("cannot capture ABCD 640x480"), "{text}");
    assert!(text.contains("it can capture YUYV, UYVY,"), "{text}");
    let err = dev.configure(&want("YUYV", 641, 480)).unwrap_err().to_string();
    assert!(err.contains("cannot capture YUYV 641x480"), "{err}");
    assert!(
        err.contains("YUYV YUYV 4:2:2") && err.contains("640x480 @ 1, 2, 4, 5, 10, 25/2, 15, 25 fps"),
        "{err}"
    );
    let err = dev
        .configure(&Want {
            fps: Some(Fps::new(7, 3).unwrap()),
            ..want("YUYV", 640, 480)
        })
        .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("cannot capture YUYV 640x480 at 7/3 fps") && err.contains("640x480 @ 1,"),
        "{err}"
    );
}

#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_probe_lists_vivid_formats() {
    let out = Command::new(std::env::var("EYRIE_BIN").unwrap())
        .arg("probe")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for needle in ["vivid", "capture (multi-planar)", "YUYV", "NV12", "640x480 @ "] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
}

/// Waits up to `within` for `n` frames from `sub`, checking each; returns
/// their (pts, seq). (Frames are not kept: each holds one of 4 driver buffers.)
fn frames(sub: &eyrie::hub::Subscription, n: usize, within: Duration) -> Vec<(i64, u64)> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{} of {n} frames within {within:?}", got.len());
        if let Ok(eyrie::hub::Item::Frame(f)) = sub.recv_timeout(left) {
            assert_eq!(f.buffer.kind(), MemoryKind::Mmap, "frames lease the driver's buffers");
            assert_eq!((f.info.width, f.info.height), (640, 480));
            got.push((f.pts, f.seq));
        }
    }
    got
}

/// A server with one `v4l2` node `cam` on vivid (YUYV 640x480 at 25 fps) and `extra` keys.
fn vivid_node(extra: &str) -> eyrie::server::Server {
    let text = format!(
        "[[node]]\nname = \"cam\"\nkind = \"v4l2\"\ndevice = \"{}\"\nformat = \"YUYV\"\n\
         width = 640\nheight = 480\nfps = 25\n{extra}\n",
        vivid(0).display()
    );
    eyrie::server::Server::start(eyrie::config::Config::parse(&text, "<vm>").unwrap()).unwrap()
}

#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_node_publishes_frames_and_survives_an_unplug() {
    use eyrie::hub::SubscribeOptions;
    use eyrie::server::NodeState;
    let server = vivid_node("retry_max_secs = 1");
    let sub = server.hub().subscribe("cam", SubscribeOptions::leaky(2));
    let copied = bytes_copied();
    let first = frames(&sub, 20, Duration::from_secs(20));
    assert!(
        first.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1),
        "{first:?}"
    );
    assert_eq!(bytes_copied(), copied);

    // Unplug: the driver goes away under the open device, then comes back.
    let driver = Path::new("/sys/bus/platform/drivers/vivid");
    std::fs::write(driver.join("unbind"), "vivid.0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.stats().nodes[0].reconnects == 0 {
        assert!(Instant::now() < deadline, "the node did not notice the unplug");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(driver.join("bind"), "vivid.0").unwrap();
    while sub.try_recv().is_ok() {}
    frames(&sub, 10, Duration::from_secs(30));
    let stats = server.shutdown();
    let cam = &stats.nodes[0];
    assert!(cam.reconnects >= 1 && cam.error.is_none(), "{cam:?}");
    assert_eq!(cam.state, NodeState::Stopped);
    assert_eq!(stats.bytes_copied, copied);
}

/// A reader that holds every frame it is given (a stalled leaky queue of 16)
/// on a 4-buffer driver pool: capture keeps its rate for the other reader,
/// copying only while the driver is short of buffers; once the holder lets
/// go, no more is copied.
#[test]
#[ignore = "runs inside the VM (v4l2_in_a_real_kernel)"]
fn vm_a_reader_holding_frames_never_stops_capture() {
    use eyrie::hub::SubscribeOptions;
    let server = vivid_node("buffers = 4");
    let stuck = server.hub().subscribe("cam", SubscribeOptions::leaky(16));
    let sub = server.hub().subscribe("cam", SubscribeOptions::leaky(4));
    let count = |sub: &eyrie::hub::Subscription, secs: u64| {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut n = 0;
        while Instant::now() < end {
            if let Ok(eyrie::hub::Item::Frame(_)) = sub.recv_timeout(Duration::from_millis(100)) {
                n += 1;
            }
        }
        n
    };
    count(&sub, 1);
    let held = count(&sub, 4);
    let copied = bytes_copied();
    assert!(
        held >= 4 * 25 * 9 / 10,
        "{held} frames in 4 s at 25 fps while a reader holds frames"
    );
    assert!(
        copied > 0,
        "the held frames were not copied: capture would have stopped"
    );
    drop(stuck);
    count(&sub, 1);
    let copied = bytes_copied();
    let free = count(&sub, 2);
    assert!(free >= 2 * 25 * 9 / 10, "{free} frames in 2 s");
    assert_eq!(bytes_copied(), copied, "nothing copied once no reader holds frames");
    let stats = server.shutdown();
    let cam = &stats.nodes[0];
    assert!(cam.pool.is_some(), "the copy pool shows in the stats: {cam:?}");
}

/// The device node whose V4L2 name is `name` (vicodec's are `stateful-encoder`, ...).
fn node_named(name: &str) -> PathBuf {
    for entry in std::fs::read_dir("/sys/class/video4linux").unwrap() {
        let entry = entry.unwrap();
        if std::fs::read_to_string(entry.path().join("name"))
            .unwrap_or_default()
            .trim()
            == name
        {
            return Path::new("/dev").join(entry.file_name());
        }
    }
    panic!("no V4L2 device named {name}");
}

/// vicodec's stateful encoder: 60 frames encoded, a quality change and a
/// forced keyframe while running, drained with `V4L2_ENC_CMD_STOP`; its
/// stateful decoder gives back 60 frames within 30 dB of the sources.
#[test]
#[ignore = "runs inside the VM"]
fn vm_vicodec_encodes_and_decodes_with_changes_while_running() {
    use eyrie::encode::{Backend, Change, EncoderSettings, open_decoder, open_encoder};
    use eyrie::media::{Codec, PixelFormat};

    // vicodec's smallest picture is 640x360, in steps of 8.
    let frames = common::testsrc_frames(PixelFormat::I420, 640, 480, 60);
    let info = frames[0].info;
    let settings = EncoderSettings {
        codec: Codec::Fwht,
        encoder: Backend::V4l2M2m(node_named("stateful-encoder")),
        // vicodec's longest GOP.
        keyint: 16,
        qp: 40,
        ..EncoderSettings::default()
    };
    let mut enc = open_encoder(&settings, &info).unwrap();
    assert_eq!(enc.name(), "v4l2m2m");
    let mut packets = Vec::new();
    for f in &frames {
        match f.seq {
            30 => enc.apply(Change::Qp(5)).unwrap(),
            45 => enc.apply(Change::ForceKeyframe).unwrap(),
            _ => {}
        }
        enc.encode(f, &mut packets).unwrap();
    }
    enc.flush(&mut packets).unwrap();
    assert_eq!(packets.len(), 60, "one packet per frame, drained to the end");
    assert!(
        packets
            .iter()
            .enumerate()
            .all(|(i, p)| p.seq == i as u64 && p.codec == Codec::Fwht)
    );
    let keys: Vec<u64> = packets.iter().filter(|p| p.keyframe).map(|p| p.seq).collect();
    assert_eq!(keys, [0, 16, 32, 45], "keyframes: every 16 frames, and the forced one");
    let mean = |r: std::ops::Range<usize>| packets[r.clone()].iter().map(|p| p.data.len()).sum::<usize>() / r.len();
    let (coarse, fine) = (mean(5..30), mean(31..45));
    assert!(
        fine > coarse * 3 / 2,
        "qp 40 → 5 must cost bits: {coarse} → {fine} bytes per frame"
    );
    println!("vicodec: {coarse} bytes/frame at qp 40, {fine} at qp 5");
    drop(enc);

    // Decoded pictures are leases on the decoder's buffers: each is judged
    // and dropped as it comes, as a pipeline that keeps up does.
    let mut dec = open_decoder(Codec::Fwht, &Backend::V4l2M2m(node_named("stateful-decoder"))).unwrap();
    let mut decoded = Vec::new();
    let mut seqs = Vec::new();
    let copied = bytes_copied();
    for p in packets.iter().map(Some).chain([None]) {
        match p {
            Some(p) => dec.decode(p, &mut decoded).unwrap(),
            None => dec.flush(&mut decoded).unwrap(),
        }
        for d in decoded.drain(..) {
            let s = &frames[d.seq as usize];
            assert_eq!(
                (d.info.format, d.info.width, d.info.height),
                (PixelFormat::I420, 640, 480)
            );
            assert_eq!(d.buffer.kind(), MemoryKind::Mmap, "a lease on the decoder's buffer");
            let db = common::psnr_db(d.plane(0), s.plane(0));
            assert!(db >= 30.0, "frame {}: {db:.2} dB", d.seq);
            seqs.push(d.seq);
        }
    }
    assert_eq!(bytes_copied(), copied, "decoded pictures are not copied out");
    assert_eq!(
        seqs,
        (0..60).collect::<Vec<u64>>(),
        "every frame decodes back, in order"
    );
    assert_eq!(dec.dropped(), 0);
}

/// The same as nodes: a `v4l2` camera and an `encode` node on vicodec
/// publish packets with no frame byte copied anywhere in the process.
#[test]
#[ignore = "runs inside the VM"]
fn vm_capture_node_into_an_m2m_encode_node_copies_nothing() {
    use eyrie::config::Config;
    use eyrie::hub::SubscribeOptions;
    // The counter is the process's: other tests in the VM copy on purpose.
    let copied = bytes_copied();
    use eyrie::server::Server;
    let text = format!(
        "[[node]]\nname = \"cam\"\nkind = \"v4l2\"\ndevice = \"{}\"\nformat = \"NV12\"\n\
         width = 640\nheight = 480\nfps = 15\n\
         [[node]]\nname = \"fwht\"\nkind = \"encode\"\nlisten_to = \"cam\"\ncodec = \"fwht\"\n\
         encoder = \"v4l2m2m:{}\"\nkeyint = 8\n",
        vivid(1).display(),
        node_named("stateful-encoder").display()
    );
    let server = Server::start(Config::parse(&text, "<vm>").unwrap()).unwrap();
    let sub = server.hub().subscribe("fwht", SubscribeOptions::blocking(64));
    let mut packets = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while packets < 30 {
        assert!(
            Instant::now() < deadline,
            "{packets} packets in 60 s: {:?}",
            server.stats()
        );
        if let Ok(eyrie::hub::Item::Packet(_)) = sub.recv_timeout(Duration::from_secs(1)) {
            packets += 1;
        }
    }
    drop(sub);
    let stats = server.shutdown();
    for n in &stats.nodes {
        assert_ne!(n.state, eyrie::server::NodeState::Failed, "{n:?}");
        assert_eq!(n.bytes_copied, 0, "{n:?}");
    }
    assert_eq!(
        stats.bytes_copied - copied,
        0,
        "capture through encode copies no frame byte"
    );
}

/// vivid (multi-planar NV12) into vicodec's encoder by DMABUF: the capture
/// buffers are imported, not copied (0 bytes copied from capture through
/// encode), each held until the encoder gives it back; the stream decodes
/// back to ≥ 30 dB of what was captured. Then a consumer that holds every
/// decoded picture: the decoder drops (to the next keyframe, counted)
/// instead of stalling, and decodes again once pictures are given back.
#[test]
#[ignore = "runs inside the VM"]
fn vm_vivid_into_vicodec_by_dmabuf_copies_nothing() {
    use eyrie::encode::{Backend, EncoderSettings, open_decoder, open_encoder};
    use eyrie::media::{Codec, Frame, FrameMeta, PixelFormat, VideoInfo};
    use std::sync::Arc;

    let dev = Device::open(&vivid(1)).unwrap();
    let n = dev
        .configure(&Want {
            fps: Some(Fps::new(15, 1).unwrap()),
            ..want("NV12", 640, 480)
        })
        .unwrap();
    let info = VideoInfo::with_line_stride(
        PixelFormat::Nv12,
        640,
        480,
        Fps::new(15, 1).unwrap(),
        n.bytes_per_line as usize,
        n.size_image as usize,
    )
    .unwrap();
    let mut stream = dev.stream(6).unwrap();
    let settings = EncoderSettings {
        codec: Codec::Fwht,
        encoder: Backend::V4l2M2m(node_named("stateful-encoder")),
        keyint: 8,
        qp: 10,
        ..EncoderSettings::default()
    };
    let mut enc = open_encoder(&settings, &info).unwrap();
    let source: Arc<str> = Arc::from("vivid");
    let (mut packets, mut luma) = (Vec::new(), Vec::new());
    let copied = bytes_copied();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seq = 0;
    while seq < 40 {
        assert!(Instant::now() < deadline, "{seq} frames in 60 s");
        let Some(c) = stream.next(Duration::from_millis(500)).unwrap() else {
            continue;
        };
        let frame = Frame {
            info,
            pts: seq as i64 * 66_666_667,
            duration: 66_666_667,
            capture_utc: std::time::SystemTime::now(),
            seq,
            source: Arc::clone(&source),
            meta: Arc::new(FrameMeta::default()),
            buffer: c.into_buffer(),
        };
        assert!(frame.buffer.dmabuf_fd().is_some());
        // The test's own reference copy (not Eyrie's: not counted).
        luma.push(frame.plane(0).to_vec());
        enc.encode(&frame, &mut packets).unwrap();
        drop(frame);
        seq += 1;
    }
    enc.flush(&mut packets).unwrap();
    assert_eq!(bytes_copied(), copied, "capture into the encoder copied frame bytes");
    assert_eq!(packets.len(), 40);
    assert_eq!(stream.requeue_failures(), 0, "every imported buffer went back to vivid");
    drop(enc);

    let mut dec = open_decoder(Codec::Fwht, &Backend::V4l2M2m(node_named("stateful-decoder"))).unwrap();
    let (mut out, mut judged) = (Vec::new(), 0);
    for p in &packets[..16] {
        dec.decode(p, &mut out).unwrap();
        for d in out.drain(..) {
            let db = common::psnr_db(d.plane(0), &luma[d.seq as usize]);
            assert!(db >= 30.0, "frame {}: {db:.2} dB against the capture", d.seq);
            judged += 1;
        }
    }
    assert_eq!((judged, dec.dropped()), (16, 0));
    // Now hold every picture: the decoder has 4 buffers.
    let mut held = Vec::new();
    for p in &packets[16..28] {
        dec.decode(p, &mut held).unwrap();
    }
    assert!(held.len() <= 4, "no more pictures than buffers: {}", held.len());
    assert!(dec.dropped() > 0, "the decoder drops instead of stalling");
    let dropped = dec.dropped();
    held.clear();
    let mut resumed = Vec::new();
    for p in &packets[28..] {
        dec.decode(p, &mut out).unwrap();
        resumed.extend(out.drain(..).map(|d| d.seq));
    }
    dec.flush(&mut out).unwrap();
    resumed.extend(out.drain(..).map(|d| d.seq));
    // Keyframes every 8: 32 is the first after the hold; nothing before it decodes.
    assert_eq!(
        resumed.first(),
        Some(&32),
        "decoding resumes at the next keyframe: {resumed:?}"
    );
    assert_eq!(resumed.len(), 8, "{resumed:?}");
    println!("held pictures: {dropped} packets dropped, decoding resumed at frame 32");
}

/// Copies an executable without its debug sections (`strip`, from binutils),
/// or as it is where `strip` is missing.
fn copy_stripped(from: &Path, to: &Path) {
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(to)
        .arg(from)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(from, to).unwrap();
    }
}

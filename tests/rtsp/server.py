#!/usr/bin/python3
"""A real RTSP server for Eyrie's RTSP tests and benchmark: GStreamer's
GstRtspServer, bound to 127.0.0.1, serving test-pattern mounts encoded live.

    server.py --port P [--frames N] [--gop K] [--size WxH] [--fps F]
              [--user U --password W] [--file NAME=PATH ...] [--shared]

Mounts: /h264, /h265 and /mjpeg (a live test pattern, N frames then end of
stream when --frames is given), plus /NAME for each --file (an H.264
Matroska file sent at its own pace, without re-encoding).

For each client session it prints one JSON line to stdout when its encoder
has sent the last frame: {"mount": "/h264", "frames": 90, "keyframes": [0, 30, 60]}.
It prints "ready <port>" once it listens.
"""
import argparse
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96",
    # High profile with two B-frames: pictures arrive out of presentation order.
    "h264b": "x264enc speed-preset=ultrafast key-int-max={gop} bframes=2 b-adapt=false ! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph265pay name=pay0 pt=96",
    "mjpeg": "jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26",
}


def counter(mount):
    """A pad probe that counts coded frames and their keyframes, reporting at end of stream."""
    state = {"frames": 0, "keyframes": []}

    def probe(pad, info):
        if info.type & Gst.PadProbeType.BUFFER:
            buf = info.get_buffer()
            if not buf.has_flags(Gst.BufferFlags.DELTA_UNIT):
                state["keyframes"].append(state["frames"])
            state["frames"] += 1
        elif info.type & Gst.PadProbeType.EVENT_FLUSH:
            # PLAY seeks (flushing): what came before was never sent.
            if info.get_event().type == Gst.EventType.FLUSH_STOP:
                state.update(frames=0, keyframes=[])
        elif info.type & Gst.PadProbeType.EVENT_DOWNSTREAM:
            if info.get_event().type == Gst.EventType.EOS:
                print(json.dumps({"mount": mount, **state}), flush=True)
        return Gst.PadProbeReturn.OK

    return probe


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--frames", type=int, default=-1)
    ap.add_argument("--gop", type=int, default=30)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--shared", action="store_true")
    args = ap.parse_args()
    Gst.init(None)
    width, height = args.size.split("x")

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    factories = []
    for name, enc in ENCODERS.items():
        launch = (
            f"( videotestsrc is-live=true num-buffers={args.frames} pattern=smpte "
            f"! video/x-raw,width={width},height={height},framerate={args.fps}/1,format=I420 "
            f"! {enc.format(gop=args.gop)} )"
        )
        factories.append((f"/{name}", launch))
    for spec in args.file:
        name, path = spec.split("=", 1)
        launch = f"( filesrc location={path} ! matroskademux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        factories.append((f"/{name}", launch))

    for mount, launch in factories:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(args.shared)

        def configure(_factory, media, mount=mount):
            pay = media.get_element().get_by_name("pay0")
            pay.get_static_pad("sink").add_probe(
                Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM | Gst.PadProbeType.EVENT_FLUSH,
                counter(mount),
            )

        factory.connect("media-configure", configure)
        if args.user:
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )
            )
        mounts.add_factory(mount, factory)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_digest(args.user, args.password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)

    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print(f"ready {args.port}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

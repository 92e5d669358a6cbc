//! Checks every V4L2 definition of `eyrie_sys::v4l2` against the system's
//! `<linux/videodev2.h>`: a C program built with the system compiler prints
//! the header's sizes, offsets and ioctl numbers, and each must equal ours.
//! (A C compiler and the kernel uapi headers are build requirements anyway.)

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use eyrie_sys::v4l2::*;

/// `(name, C expression)`; the name is what our side reports under.
const EXPRS: &[(&str, &str)] = &[
    ("capability", "sizeof(struct v4l2_capability)"),
    (
        "capability.device_caps",
        "offsetof(struct v4l2_capability, device_caps)",
    ),
    ("fmtdesc", "sizeof(struct v4l2_fmtdesc)"),
    ("fmtdesc.pixelformat", "offsetof(struct v4l2_fmtdesc, pixelformat)"),
    ("frmsizeenum", "sizeof(struct v4l2_frmsizeenum)"),
    ("frmsizeenum.u", "offsetof(struct v4l2_frmsizeenum, discrete)"),
    ("frmivalenum", "sizeof(struct v4l2_frmivalenum)"),
    ("frmivalenum.u", "offsetof(struct v4l2_frmivalenum, discrete)"),
    ("pix_format", "sizeof(struct v4l2_pix_format)"),
    ("pix_format.xfer_func", "offsetof(struct v4l2_pix_format, xfer_func)"),
    ("plane_pix_format", "sizeof(struct v4l2_plane_pix_format)"),
    ("pix_format_mplane", "sizeof(struct v4l2_pix_format_mplane)"),
    (
        "pix_format_mplane.num_planes",
        "offsetof(struct v4l2_pix_format_mplane, num_planes)",
    ),
    ("format", "sizeof(struct v4l2_format)"),
    ("format.fmt", "offsetof(struct v4l2_format, fmt)"),
    ("requestbuffers", "sizeof(struct v4l2_requestbuffers)"),
    ("plane", "sizeof(struct v4l2_plane)"),
    ("plane.m", "offsetof(struct v4l2_plane, m)"),
    ("plane.data_offset", "offsetof(struct v4l2_plane, data_offset)"),
    ("buffer", "sizeof(struct v4l2_buffer)"),
    ("buffer.timestamp", "offsetof(struct v4l2_buffer, timestamp)"),
    ("buffer.timecode", "offsetof(struct v4l2_buffer, timecode)"),
    ("buffer.sequence", "offsetof(struct v4l2_buffer, sequence)"),
    ("buffer.m", "offsetof(struct v4l2_buffer, m)"),
    ("buffer.length", "offsetof(struct v4l2_buffer, length)"),
    ("buffer.request_fd", "offsetof(struct v4l2_buffer, request_fd)"),
    ("exportbuffer", "sizeof(struct v4l2_exportbuffer)"),
    ("exportbuffer.fd", "offsetof(struct v4l2_exportbuffer, fd)"),
    ("streamparm", "sizeof(struct v4l2_streamparm)"),
    ("streamparm.parm", "offsetof(struct v4l2_streamparm, parm)"),
    (
        "captureparm.timeperframe",
        "offsetof(struct v4l2_captureparm, timeperframe)",
    ),
    ("VIDIOC_QUERYCAP", "VIDIOC_QUERYCAP"),
    ("VIDIOC_ENUM_FMT", "VIDIOC_ENUM_FMT"),
    ("VIDIOC_G_FMT", "VIDIOC_G_FMT"),
    ("VIDIOC_S_FMT", "VIDIOC_S_FMT"),
    ("VIDIOC_REQBUFS", "VIDIOC_REQBUFS"),
    ("VIDIOC_QUERYBUF", "VIDIOC_QUERYBUF"),
    ("VIDIOC_QBUF", "VIDIOC_QBUF"),
    ("VIDIOC_EXPBUF", "VIDIOC_EXPBUF"),
    ("VIDIOC_DQBUF", "VIDIOC_DQBUF"),
    ("VIDIOC_STREAMON", "VIDIOC_STREAMON"),
    ("VIDIOC_STREAMOFF", "VIDIOC_STREAMOFF"),
    ("VIDIOC_G_PARM", "VIDIOC_G_PARM"),
    ("VIDIOC_S_PARM", "VIDIOC_S_PARM"),
    ("VIDIOC_TRY_FMT", "VIDIOC_TRY_FMT"),
    ("VIDIOC_ENUM_FRAMESIZES", "VIDIOC_ENUM_FRAMESIZES"),
    ("VIDIOC_ENUM_FRAMEINTERVALS", "VIDIOC_ENUM_FRAMEINTERVALS"),
    ("V4L2_CAP_VIDEO_CAPTURE_MPLANE", "V4L2_CAP_VIDEO_CAPTURE_MPLANE"),
    ("V4L2_CAP_VIDEO_M2M_MPLANE", "V4L2_CAP_VIDEO_M2M_MPLANE"),
    ("V4L2_CAP_STREAMING", "V4L2_CAP_STREAMING"),
    ("V4L2_CAP_DEVICE_CAPS", "V4L2_CAP_DEVICE_CAPS"),
    ("V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC", "V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC"),
    ("V4L2_BUF_FLAG_LAST", "V4L2_BUF_FLAG_LAST"),
    ("V4L2_PIX_FMT_MJPEG", "V4L2_PIX_FMT_MJPEG"),
    ("V4L2_PIX_FMT_HEVC", "V4L2_PIX_FMT_HEVC"),
    ("V4L2_PIX_FMT_NV12M", "V4L2_PIX_FMT_NV12M"),
    ("V4L2_PIX_FMT_FWHT", "V4L2_PIX_FMT_FWHT"),
    ("V4L2_PIX_FMT_VP9", "V4L2_PIX_FMT_VP9"),
    ("control", "sizeof(struct v4l2_control)"),
    ("encoder_cmd", "sizeof(struct v4l2_encoder_cmd)"),
    ("decoder_cmd", "sizeof(struct v4l2_decoder_cmd)"),
    ("event_subscription", "sizeof(struct v4l2_event_subscription)"),
    ("event", "sizeof(struct v4l2_event)"),
    ("event.u", "offsetof(struct v4l2_event, u)"),
    ("event.pending", "offsetof(struct v4l2_event, pending)"),
    ("event.timestamp", "offsetof(struct v4l2_event, timestamp)"),
    ("event.id", "offsetof(struct v4l2_event, id)"),
    ("VIDIOC_G_CTRL", "VIDIOC_G_CTRL"),
    ("VIDIOC_S_CTRL", "VIDIOC_S_CTRL"),
    ("VIDIOC_ENCODER_CMD", "VIDIOC_ENCODER_CMD"),
    ("VIDIOC_DQEVENT", "VIDIOC_DQEVENT"),
    ("VIDIOC_SUBSCRIBE_EVENT", "VIDIOC_SUBSCRIBE_EVENT"),
    ("VIDIOC_DECODER_CMD", "VIDIOC_DECODER_CMD"),
    ("V4L2_ENC_CMD_STOP", "V4L2_ENC_CMD_STOP"),
    ("V4L2_DEC_CMD_STOP", "V4L2_DEC_CMD_STOP"),
    ("V4L2_EVENT_EOS", "V4L2_EVENT_EOS"),
    ("V4L2_EVENT_SOURCE_CHANGE", "V4L2_EVENT_SOURCE_CHANGE"),
    ("V4L2_CID_MPEG_VIDEO_GOP_SIZE", "V4L2_CID_MPEG_VIDEO_GOP_SIZE"),
    ("V4L2_CID_MPEG_VIDEO_BITRATE_MODE", "V4L2_CID_MPEG_VIDEO_BITRATE_MODE"),
    ("V4L2_CID_MPEG_VIDEO_BITRATE", "V4L2_CID_MPEG_VIDEO_BITRATE"),
    (
        "V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME",
        "V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME",
    ),
    ("V4L2_CID_FWHT_I_FRAME_QP", "V4L2_CID_FWHT_I_FRAME_QP"),
    ("V4L2_CID_FWHT_P_FRAME_QP", "V4L2_CID_FWHT_P_FRAME_QP"),
    (
        "V4L2_CID_MPEG_VIDEO_H264_I_FRAME_QP",
        "V4L2_CID_MPEG_VIDEO_H264_I_FRAME_QP",
    ),
    (
        "V4L2_CID_MPEG_VIDEO_H264_P_FRAME_QP",
        "V4L2_CID_MPEG_VIDEO_H264_P_FRAME_QP",
    ),
    ("V4L2_CID_MPEG_VIDEO_H264_LEVEL", "V4L2_CID_MPEG_VIDEO_H264_LEVEL"),
    ("V4L2_CID_MPEG_VIDEO_H264_PROFILE", "V4L2_CID_MPEG_VIDEO_H264_PROFILE"),
];

fn ours() -> HashMap<&'static str, u64> {
    let v = |x: usize| x as u64;
    HashMap::from([
        ("capability", v(size_of::<v4l2_capability>())),
        ("capability.device_caps", v(offset_of!(v4l2_capability, device_caps))),
        ("fmtdesc", v(size_of::<v4l2_fmtdesc>())),
        ("fmtdesc.pixelformat", v(offset_of!(v4l2_fmtdesc, pixelformat))),
        ("frmsizeenum", v(size_of::<v4l2_frmsizeenum>())),
        ("frmsizeenum.u", v(offset_of!(v4l2_frmsizeenum, u))),
        ("frmivalenum", v(size_of::<v4l2_frmivalenum>())),
        ("frmivalenum.u", v(offset_of!(v4l2_frmivalenum, u))),
        ("pix_format", v(size_of::<v4l2_pix_format>())),
        ("pix_format.xfer_func", v(offset_of!(v4l2_pix_format, xfer_func))),
        ("plane_pix_format", v(size_of::<v4l2_plane_pix_format>())),
        ("pix_format_mplane", v(size_of::<v4l2_pix_format_mplane>())),
        (
            "pix_format_mplane.num_planes",
            v(offset_of!(v4l2_pix_format_mplane, num_planes)),
        ),
        ("format", v(size_of::<v4l2_format>())),
        ("format.fmt", v(offset_of!(v4l2_format, fmt))),
        ("requestbuffers", v(size_of::<v4l2_requestbuffers>())),
        ("plane", v(size_of::<v4l2_plane>())),
        ("plane.m", v(offset_of!(v4l2_plane, m))),
        ("plane.data_offset", v(offset_of!(v4l2_plane, data_offset))),
        ("buffer", v(size_of::<v4l2_buffer>())),
        ("buffer.timestamp", v(offset_of!(v4l2_buffer, timestamp))),
        ("buffer.timecode", v(offset_of!(v4l2_buffer, timecode))),
        ("buffer.sequence", v(offset_of!(v4l2_buffer, sequence))),
        ("buffer.m", v(offset_of!(v4l2_buffer, m))),
        ("buffer.length", v(offset_of!(v4l2_buffer, length))),
        ("buffer.request_fd", v(offset_of!(v4l2_buffer, request_fd))),
        ("exportbuffer", v(size_of::<v4l2_exportbuffer>())),
        ("exportbuffer.fd", v(offset_of!(v4l2_exportbuffer, fd))),
        ("streamparm", v(size_of::<v4l2_streamparm>())),
        ("streamparm.parm", v(offset_of!(v4l2_streamparm, parm))),
        (
            "captureparm.timeperframe",
            v(offset_of!(v4l2_captureparm, timeperframe)),
        ),
        ("V4L2_PIX_FMT_FWHT", eyrie_sys::pix_fmt::FWHT.into()),
        ("V4L2_PIX_FMT_VP9", eyrie_sys::pix_fmt::VP9.into()),
        ("control", v(size_of::<v4l2_control>())),
        ("encoder_cmd", v(size_of::<v4l2_encoder_cmd>())),
        ("decoder_cmd", v(size_of::<v4l2_decoder_cmd>())),
        ("event_subscription", v(size_of::<v4l2_event_subscription>())),
        ("event", v(size_of::<v4l2_event>())),
        ("event.u", v(offset_of!(v4l2_event, u))),
        ("event.pending", v(offset_of!(v4l2_event, pending))),
        ("event.timestamp", v(offset_of!(v4l2_event, timestamp))),
        ("event.id", v(offset_of!(v4l2_event, id))),
        ("VIDIOC_G_CTRL", VIDIOC_G_CTRL.into()),
        ("VIDIOC_S_CTRL", VIDIOC_S_CTRL.into()),
        ("VIDIOC_ENCODER_CMD", VIDIOC_ENCODER_CMD.into()),
        ("VIDIOC_DQEVENT", VIDIOC_DQEVENT.into()),
        ("VIDIOC_SUBSCRIBE_EVENT", VIDIOC_SUBSCRIBE_EVENT.into()),
        ("VIDIOC_DECODER_CMD", VIDIOC_DECODER_CMD.into()),
        ("V4L2_ENC_CMD_STOP", cmd::ENC_STOP.into()),
        ("V4L2_DEC_CMD_STOP", cmd::DEC_STOP.into()),
        ("V4L2_EVENT_EOS", event::EOS.into()),
        ("V4L2_EVENT_SOURCE_CHANGE", event::SOURCE_CHANGE.into()),
        ("V4L2_CID_MPEG_VIDEO_GOP_SIZE", cid::GOP_SIZE.into()),
        ("V4L2_CID_MPEG_VIDEO_BITRATE_MODE", cid::BITRATE_MODE.into()),
        ("V4L2_CID_MPEG_VIDEO_BITRATE", cid::BITRATE.into()),
        ("V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME", cid::FORCE_KEY_FRAME.into()),
        ("V4L2_CID_FWHT_I_FRAME_QP", cid::FWHT_I_FRAME_QP.into()),
        ("V4L2_CID_FWHT_P_FRAME_QP", cid::FWHT_P_FRAME_QP.into()),
        ("V4L2_CID_MPEG_VIDEO_H264_I_FRAME_QP", cid::H264_I_FRAME_QP.into()),
        ("V4L2_CID_MPEG_VIDEO_H264_P_FRAME_QP", cid::H264_P_FRAME_QP.into()),
        ("V4L2_CID_MPEG_VIDEO_H264_LEVEL", cid::H264_LEVEL.into()),
        ("V4L2_CID_MPEG_VIDEO_H264_PROFILE", cid::H264_PROFILE.into()),
        ("VIDIOC_QUERYCAP", VIDIOC_QUERYCAP.into()),
        ("VIDIOC_ENUM_FMT", VIDIOC_ENUM_FMT.into()),
        ("VIDIOC_G_FMT", VIDIOC_G_FMT.into()),
        ("VIDIOC_S_FMT", VIDIOC_S_FMT.into()),
        ("VIDIOC_REQBUFS", VIDIOC_REQBUFS.into()),
        ("VIDIOC_QUERYBUF", VIDIOC_QUERYBUF.into()),
        ("VIDIOC_QBUF", VIDIOC_QBUF.into()),
        ("VIDIOC_EXPBUF", VIDIOC_EXPBUF.into()),
        ("VIDIOC_DQBUF", VIDIOC_DQBUF.into()),
        ("VIDIOC_STREAMON", VIDIOC_STREAMON.into()),
        ("VIDIOC_STREAMOFF", VIDIOC_STREAMOFF.into()),
        ("VIDIOC_G_PARM", VIDIOC_G_PARM.into()),
        ("VIDIOC_S_PARM", VIDIOC_S_PARM.into()),
        ("VIDIOC_TRY_FMT", VIDIOC_TRY_FMT.into()),
        ("VIDIOC_ENUM_FRAMESIZES", VIDIOC_ENUM_FRAMESIZES.into()),
        ("VIDIOC_ENUM_FRAMEINTERVALS", VIDIOC_ENUM_FRAMEINTERVALS.into()),
        ("V4L2_CAP_VIDEO_CAPTURE_MPLANE", cap::VIDEO_CAPTURE_MPLANE.into()),
        ("V4L2_CAP_VIDEO_M2M_MPLANE", cap::VIDEO_M2M_MPLANE.into()),
        ("V4L2_CAP_STREAMING", cap::STREAMING.into()),
        ("V4L2_CAP_DEVICE_CAPS", cap::DEVICE_CAPS.into()),
        (
            "V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC",
            buf_flag::TIMESTAMP_MONOTONIC.into(),
        ),
        ("V4L2_BUF_FLAG_LAST", buf_flag::LAST.into()),
        ("V4L2_PIX_FMT_MJPEG", eyrie_sys::pix_fmt::MJPEG.into()),
        ("V4L2_PIX_FMT_HEVC", eyrie_sys::pix_fmt::HEVC.into()),
        ("V4L2_PIX_FMT_NV12M", eyrie_sys::pix_fmt::NV12M.into()),
    ])
}

#[test]
fn definitions_match_the_system_header() {
    let dir = std::env::temp_dir().join(format!("eyrie-v4l2-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut c =
        String::from("#include <stddef.h>\n#include <stdio.h>\n#include <linux/videodev2.h>\nint main(void) {\n");
    for (name, expr) in EXPRS {
        c += &format!("  printf(\"%s %llu\\n\", \"{name}\", (unsigned long long)({expr}));\n");
    }
    c += "  return 0;\n}\n";
    let (src, exe) = (dir.join("layout.c"), dir.join("layout"));
    std::fs::write(&src, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc).arg(&src).arg("-o").arg(&exe).output();
    let built = built.unwrap_or_else(|e| panic!("{cc}: {e} (a C compiler is a build requirement)"));
    assert!(
        built.status.success(),
        "{cc} failed (are the kernel headers, Debian linux-libc-dev, installed?):\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let theirs: HashMap<String, u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    let ours = ours();
    assert_eq!(theirs.len(), EXPRS.len());
    let wrong: Vec<String> = EXPRS
        .iter()
        .filter(|(name, _)| ours[name] != theirs[*name])
        .map(|(name, _)| format!("{name}: ours {}, header {}", ours[name], theirs[*name]))
        .collect();
    assert!(
        wrong.is_empty(),
        "differs from <linux/videodev2.h>:\n{}",
        wrong.join("\n")
    );
}

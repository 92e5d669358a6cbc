#!/usr/bin/env python3
"""Trains Eyrie's demo detector on its own synthetic scenes and exports it to ONNX.

The data comes from `eyrie dataset`: testsrc frames fitted into the model input
by the very preprocessing the `infer` node runs, with their ground truth. The
network is a small anchor-free detector (plain 3x3 convolutions, one
stride-8 head fed by a stride-16 branch). The exported graph ends in the
YOLOv8 layout, `[batch, 4 + classes, anchors]`: box centre and size in input
pixels, then per-class scores after the sigmoid, so Eyrie's `yolov8` decoder
reads it like any Ultralytics export.

Usage (from the repository root, after `cargo build --release`):

    python3 -m venv /tmp/train && /tmp/train/bin/pip install torch numpy onnx
    /tmp/train/bin/python models/train.py --eyrie target/release/eyrie

Training needs PyTorch only; Eyrie itself never does. Versions, seed, data size
and time are written to models/eyrie-det.json next to the model.
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = ["person", "bicycle", "car"]
WIDTH, HEIGHT = 256, 144
STRIDE = 8
# Training objects: at least this visible and this much inside the frame;
# objects below these but above the evaluation's "ignore" are left out of the
# loss entirely (neither positive nor negative).
POS_VISIBLE, POS_IN_FRAME, MIN_SIDE = 0.4, 0.3, 2.0


def conv(cin, cout, k=3, s=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Detector(nn.Module):
    def __init__(self, classes=len(CLASSES)):
        super().__init__()
        self.classes = classes
        self.s2 = conv(3, 16, 3, 2)
        self.s4 = conv(16, 24, 3, 2)
        self.s8 = nn.Sequential(conv(24, 32, 3, 2), conv(32, 32, 3))
        self.s16 = nn.Sequential(conv(32, 48, 3, 2), conv(48, 48, 3), conv(48, 48, 3))
        self.fuse = nn.Sequential(conv(80, 48, 1), conv(48, 48, 3))
        self.head = nn.Conv2d(48, 4 + classes, 1)
        self.export = False

    def raw(self, x):
        p8 = self.s8(self.s4(self.s2(x)))
        p16 = self.s16(p8)
        up = F.interpolate(p16, scale_factor=2.0, mode="nearest")
        return self.head(self.fuse(torch.cat([p8, up], 1)))  # N, 4+C, H/8, W/8

    def forward(self, x):
        out = self.raw(x)
        n, _, gh, gw = out.shape
        out = out.flatten(2)  # N, 4+C, A
        ltrb = F.softplus(out[:, :4]) * STRIDE
        if not self.export:
            return ltrb, out[:, 4:]
        ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        cx = ((xs.flatten() + 0.5) * STRIDE).float()
        cy = ((ys.flatten() + 0.5) * STRIDE).float()
        x0, y0 = cx - ltrb[:, 0], cy - ltrb[:, 1]
        x1, y1 = cx + ltrb[:, 2], cy + ltrb[:, 3]
        boxes = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 1)
        return torch.cat([boxes, torch.sigmoid(out[:, 4:])], 1)


def render(eyrie, out_dir, seeds, frames, stride, camera):
    subprocess.run(
        [eyrie, "dataset", "--seeds", ",".join(map(str, seeds)), "--frames", str(frames),
         "--stride", str(stride), "--camera", camera, "--input", f"{WIDTH}x{HEIGHT}", "-o", out_dir],
        check=True, stdout=subprocess.DEVNULL)
    images = np.fromfile(os.path.join(out_dir, "frames.u8"), dtype=np.uint8).reshape(-1, 3, HEIGHT, WIDTH)
    labels = [json.loads(line)["objects"] for line in open(os.path.join(out_dir, "labels.jsonl"))]
    return images, labels


def targets(labels, flip, gw, gh):
    """Per-cell targets: class (-1 background, -2 ignored) and box (x0, y0, x1, y1)."""
    cls = np.full((gh, gw), -1, np.int64)
    box = np.zeros((gh, gw, 4), np.float32)
    cx = (np.arange(gw) + 0.5) * STRIDE
    cy = (np.arange(gh) + 0.5) * STRIDE
    for c, x, y, w, h, visible, in_frame in labels:
        if flip:
            x = WIDTH - x - w
        x0, y0, x1, y1 = x, y, x + w, y + h
        positive = visible >= POS_VISIBLE and in_frame >= POS_IN_FRAME and w >= MIN_SIDE and h >= MIN_SIDE
        # Centre sampling: cells inside the box and within 1.5 cells of its centre,
        # and always the cell holding the centre (objects narrower than a cell).
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        inside_x = (cx > x0) & (cx < x1) & (np.abs(cx - mx) < 1.5 * STRIDE)
        inside_y = (cy > y0) & (cy < y1) & (np.abs(cy - my) < 1.5 * STRIDE)
        mask = inside_y[:, None] & inside_x[None, :]
        ix, iy = int(np.clip(mx // STRIDE, 0, gw - 1)), int(np.clip(my // STRIDE, 0, gh - 1))
        mask[iy, ix] = True
        if not positive:
            cls[mask & (cls == -1)] = -2
            continue
        # Objects come farthest first: a nearer object, drawn over a farther
        # one, takes the cells they share (what those cells show is the nearer one).
        cls[mask] = c
        box[mask] = (x0, y0, x1, y1)
    return cls, box


def overlap(pred, target):
    """Intersection and union of boxes (x0, y0, x1, y1), row by row."""
    ix0 = torch.max(pred[:, 0], target[:, 0])
    iy0 = torch.max(pred[:, 1], target[:, 1])
    ix1 = torch.min(pred[:, 2], target[:, 2])
    iy1 = torch.min(pred[:, 3], target[:, 3])
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    pa = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    ta = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    return inter, pa + ta - inter + 1e-6


def box_iou(pred, target):
    inter, union = overlap(pred, target)
    return inter / union


def giou_loss(pred, target):
    inter, union = overlap(pred, target)
    cx0 = torch.min(pred[:, 0], target[:, 0])
    cy0 = torch.min(pred[:, 1], target[:, 1])
    cx1 = torch.max(pred[:, 2], target[:, 2])
    cy1 = torch.max(pred[:, 3], target[:, 3])
    hull = (cx1 - cx0) * (cy1 - cy0) + 1e-6
    return 1 - inter / union + (hull - union) / hull


def fuse_batchnorm(module):
    """Folds every BatchNorm into the convolution before it (a smaller, faster graph)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential) and len(child) == 3 and isinstance(child[1], nn.BatchNorm2d):
            c, bn = child[0], child[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                              groups=c.groups, bias=True)
            fused.weight.data = c.weight.data * scale[:, None, None, None]
            fused.bias.data = bn.bias.data - bn.running_mean * scale
            setattr(module, name, nn.Sequential(fused, child[2]))
        else:
            fuse_batchnorm(child)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eyrie", default="target/release/eyrie")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.time()

    # Training scenes: seeds 1..48 at 1280x720 and 201..208 at 640x480 (letterboxed).
    # Evaluation (`eyrie eval`, the tests) uses seeds from 1000 up: never seen here.
    with tempfile.TemporaryDirectory() as tmp:
        parts = [render(args.eyrie, os.path.join(tmp, "hd"), range(1, 49), 1800, 6, "1280x720"),
                 render(args.eyrie, os.path.join(tmp, "vga"), range(201, 209), 1800, 6, "640x480")]
    images = np.concatenate([p[0] for p in parts])
    labels = [l for p in parts for l in p[1]]
    n = len(images)
    print(f"{n} frames rendered in {time.time() - started:.0f} s", flush=True)

    model = Detector()
    gw, gh = WIDTH // STRIDE, HEIGHT // STRIDE
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    batch = 32
    steps = args.epochs * (n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    cx = ((torch.arange(gw) + 0.5) * STRIDE).repeat(gh)
    cy = ((torch.arange(gh) + 0.5) * STRIDE).repeat_interleave(gw)
    for epoch in range(args.epochs):
        model.train()
        order = np.random.permutation(n)
        total = 0.0
        for b in range(n // batch):
            idx = order[b * batch:(b + 1) * batch]
            flips = np.random.rand(len(idx)) < 0.5
            x = torch.from_numpy(images[idx]).float() / 255.0
            x[flips] = x[flips].flip(-1)
            # Mild exposure changes: the cameras of real users are not testsrc.
            x = (x * torch.empty(len(idx), 1, 1, 1).uniform_(0.8, 1.2)
                 + torch.empty(len(idx), 1, 1, 1).uniform_(-0.08, 0.08)).clamp(0, 1)
            t = [targets(labels[i], f, gw, gh) for i, f in zip(idx, flips)]
            cls = torch.from_numpy(np.stack([c for c, _ in t])).flatten(1)
            box = torch.from_numpy(np.stack([bx for _, bx in t])).flatten(1, 2)
            ltrb, logits = model(x)
            pos = cls >= 0
            num_pos = max(int(pos.sum()), 1)
            pred = torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], -1)
            giou = giou_loss(pred[pos], box[pos])
            box_loss = giou.sum() / num_pos
            # Quality-aware scores (as in VarifocalNet and YOLOv8's aligned
            # targets): a positive cell's class target grows with how well its
            # box fits, so where two objects overlap the cell with the better
            # box outscores the ones regressing a blend of both, and wins NMS.
            fit = box_iou(pred[pos].detach(), box[pos])
            onehot = torch.zeros_like(logits)
            onehot.permute(0, 2, 1)[pos] = F.one_hot(cls[pos], len(CLASSES)).float() * (0.5 + 0.5 * fit[:, None])
            weight = (cls != -2).float()[:, None, :]
            cls_loss = (F.binary_cross_entropy_with_logits(logits, onehot, reduction="none") * weight).sum() / num_pos
            loss = cls_loss + 2.0 * box_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / (n // batch):.4f} "
              f"({time.time() - started:.0f} s)", flush=True)

    model.eval()
    fuse_batchnorm(model)
    model.export = True
    onnx_path = os.path.join(args.out, "eyrie-det.onnx")
    dummy = torch.zeros(1, 3, HEIGHT, WIDTH)
    torch.onnx.export(model, dummy, onnx_path, input_names=["images"], output_names=["output0"],
                      dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    with open(os.path.join(args.out, "eyrie-det.labels"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    record = {
        "model": "eyrie-det.onnx",
        "input": [1, 3, HEIGHT, WIDTH],
        "output": [1, 4 + len(CLASSES), gw * gh],
        "layout": "yolov8",
        "normalize": "rgb / 255",
        "resize": "letterbox, pad 114",
        "scores": "quality-aware: a positive's target is 0.5 + 0.5 IoU of its box",
        "classes": CLASSES,
        "seed": args.seed,
        "epochs": args.epochs,
        "frames": n,
        "train_seeds": "1-48 at 1280x720, 201-208 at 640x480, frames 0-1799 every 6th",
        "parameters": sum(p.numel() for p in model.parameters()),
        "training_seconds": round(time.time() - started),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    with open(os.path.join(args.out, "eyrie-det.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

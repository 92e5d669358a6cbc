// Frames into a detector's input tensor on the GPU: the same computation as
// the CPU path (src/infer/preprocess.rs), one thread per tensor pixel:
// bilinear taps from the frame's planes (pixel centres aligned, chroma at its
// own resolution), BT.601 limited-range YUV to RGB, letterbox padding,
// normalisation as v * k + b, planar NCHW output. Compiled at run time by NVRTC.
//
// ip (ints):   out_w, out_h, pic_x, pic_y, pic_w, pic_h, space (0 YUV, 1 RGB, 2 grey), order (0 RGB, 1 BGR),
//              then per source channel: plane offset, stride, step, byte offset, sub x, sub y, last x, last y.
// fp (floats): scale x, scale y, then k and b per tensor channel.

struct Tap { int a; int b; float w; };

__device__ Tap tap(int i, float scale, int sub, int last, int unit, int base) {
    float full = (i + 0.5f) / scale - 0.5f;
    float s = fminf(fmaxf((full + 0.5f) / sub - 0.5f, 0.0f), (float)last);
    float i0 = floorf(s);
    int a = (int)i0;
    int b = min(a + 1, last);
    Tap t = { base + a * unit, base + b * unit, s - i0 };
    return t;
}

__device__ float sample(const unsigned char* src, const int* c, int px, int py, float sx, float sy) {
    // c: plane offset, stride, step, byte offset, sub x, sub y, last x, last y
    Tap col = tap(px, sx, c[4], c[6], c[2], c[3]);
    Tap row = tap(py, sy, c[5], c[7], c[1], c[0]);
    float p00 = src[row.a + col.a], p01 = src[row.a + col.b];
    float p10 = src[row.b + col.a], p11 = src[row.b + col.b];
    float top = p00 + (p01 - p00) * col.w;
    float bottom = p10 + (p11 - p10) * col.w;
    return top + (bottom - top) * row.w;
}

extern "C" __global__ void preprocess(const unsigned char* src, float* out, const int* ip, const float* fp) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int w = ip[0], h = ip[1];
    if (x >= w || y >= h) return;
    int area = w * h;
    float rgb[3];
    int px = x - ip[2], py = y - ip[3];
    if (px < 0 || py < 0 || px >= ip[4] || py >= ip[5]) {
        rgb[0] = rgb[1] = rgb[2] = 114.0f;
    } else {
        float sx = fp[0], sy = fp[1];
        float v0 = sample(src, ip + 8, px, py, sx, sy);
        if (ip[6] == 1) {
            rgb[0] = v0;
            rgb[1] = sample(src, ip + 16, px, py, sx, sy);
            rgb[2] = sample(src, ip + 24, px, py, sx, sy);
        } else {
            float u = 128.0f, v = 128.0f;
            if (ip[6] == 0) {
                u = sample(src, ip + 16, px, py, sx, sy);
                v = sample(src, ip + 24, px, py, sx, sy);
            }
            float c = 1.1643836f * (v0 - 16.0f);
            float d = u - 128.0f, e = v - 128.0f;
            rgb[0] = fminf(fmaxf(c + 1.5960268f * e, 0.0f), 255.0f);
            rgb[1] = fminf(fmaxf(c - 0.3917623f * d - 0.8129676f * e, 0.0f), 255.0f);
            rgb[2] = fminf(fmaxf(c + 2.0172321f * d, 0.0f), 255.0f);
        }
    }
    for (int slot = 0; slot < 3; slot++) {
        float v = rgb[ip[7] ? 2 - slot : slot];
        out[slot * area + y * w + x] = v * fp[2 + slot] + fp[5 + slot];
    }
}

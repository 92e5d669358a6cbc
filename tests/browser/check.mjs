#!/usr/bin/env node
// Drives Eyrie's web page in headless Chromium and reports what its players showed.
//
//   node tests/browser/check.mjs <baseURL> <outDir> <stream> [seconds]
//
// Phases (each only when /api/v1/streams offers its URL for the stream):
//   mse   ?play=<stream>&mode=mse: decoded frames, currentTime, the overlay's drawn frames
//         (truth boxes matched by a drawn box of the same label with IoU >= 0.5) and latency
//   hls   ?play=<stream>&mode=hls with hls.js injected before the page loads: frames, currentTime,
//         latency from hls.playingDate
//   mjpeg ?play=<stream>&mode=mjpeg: the picture hashed every 500 ms for 5 s
// Writes <outDir>/{mse,hls,mjpeg}.png and <outDir>/result.json and prints the JSON.
// Exit: 0 when every phase ran (the caller judges the numbers), 1 when a phase or the page
// failed (uncaught page errors included), 2 for bad arguments or a browser that cannot start,
// 3 on the overall time limit.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const HLS_JS = require.resolve('hls.js/dist/hls.min.js');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];
const SAMPLE_MS = 500;
const IOU_MIN = 0.5;

const [baseArg, outDir, stream, secondsArg] = process.argv.slice(2);
if (!baseArg || !outDir || !stream) {
  process.stderr.write('usage: node check.mjs <baseURL> <outDir> <stream> [seconds]\n');
  process.exit(2);
}
const seconds = secondsArg === undefined ? 12 : Number(secondsArg);
if (!(seconds > 0 && seconds <= 600)) {
  process.stderr.write(`check.mjs: seconds must be a number in (0, 600], not ${secondsArg}\n`);
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
// LL-HLS gets longer: hls.js may start at a hole before a part boundary and wait a few seconds for its gap
// controller (seen on a loaded 2-core machine); what is judged is that it then plays.
const hlsSeconds = Math.max(16, seconds);
const mjpegSeconds = 5;
const hardMs = (seconds + hlsSeconds + mjpegSeconds) * 1000 + 90_000;

const result = {
  base, stream, seconds, startedAt: new Date().toISOString(), chromium: CHROMIUM, browserVersion: null,
  ok: false, failures: [], pageErrors: [], consoleErrors: [], httpErrors: [], phases: {}, screenshots: [],
};
let browser = null;
let finished = false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cssString = (s) => s.replace(/["\\]/g, '\\$&');
const card = `section.stream[data-stream="${cssString(stream)}"]`;

function finish(code) {
  if (finished) return;
  finished = true;
  result.finishedAt = new Date().toISOString();
  result.ok = code === 0;
  const json = JSON.stringify(result, null, 2);
  try { fs.writeFileSync(path.join(outDir, 'result.json'), json + '\n'); } catch (e) { process.stderr.write(`check.mjs: cannot write result.json: ${e.message}\n`); }
  process.stdout.write(json + '\n');
  if (code !== 0) process.stderr.write(`check.mjs: ${result.failures.join('; ') || 'failed'}\n`);
  process.exit(code);
}

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (b) await Promise.race([b.close().catch(() => {}), sleep(5000)]);
}

const hardTimer = setTimeout(async () => {
  result.failures.push(`overall time limit of ${Math.round(hardMs / 1000)} s reached`);
  await closeBrowser();
  finish(3);
}, hardMs);

// ---- statistics ---------------------------------------------------------------------------

function quantile(values, q) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

function spread(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return { n: 0, median: null, p95: null, min: null, max: null };
  const r = (x) => Math.round(x * 10) / 10;
  return { n: v.length, median: r(quantile(v, 0.5)), p95: r(quantile(v, 0.95)), min: r(Math.min(...v)), max: r(Math.max(...v)) };
}

function iou(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  const inter = w > 0 && h > 0 ? w * h : 0;
  const union = a.w * a.h + b.w * b.h - inter;
  return union > 0 ? inter / union : 0;
}

// Each truth object's best IoU with a drawn box of the same label. Objects mostly
// hidden or mostly outside the frame (visible or in_frame < 0.5) are "don't care",
// as in Eyrie's own detector scoring (src/infer/score.rs): counted apart, not judged.
function matchTruth(drawn) {
  let objects = 0, matched = 0, framesWithTruth = 0, iouSum = 0, ignored = 0;
  for (const f of drawn) {
    if (!f.truth?.length) continue;
    framesWithTruth++;
    for (const t of f.truth) {
      if ((t.visible ?? 1) < 0.5 || (t.in_frame ?? 1) < 0.5) {
        ignored++;
        continue;
      }
      objects++;
      let best = 0;
      for (const b of f.boxes || []) if (b.label === t.label) best = Math.max(best, iou(t, b));
      iouSum += best;
      if (best >= IOU_MIN) matched++;
    }
  }
  return {
    framesWithTruth, truthObjects: objects, ignored, matched, iouThreshold: IOU_MIN,
    fraction: objects ? matched / objects : null, meanBestIou: objects ? iouSum / objects : null,
  };
}

// Frames decoded and media time advanced, from the first sample that had a picture. A new init
// segment makes the page open a new MediaSource, which restarts the element's frame counters and
// may move its timeline: such a step counts as a reset, and the counting goes on from there.
function summarize(samples) {
  const ok = samples.filter((s) => s.present);
  const firstIdx = ok.findIndex((s) => s.frames > 0);
  const first = ok[firstIdx];
  const last = ok[ok.length - 1];
  const out = {
    samples: samples.length, firstFrameAfterMs: first ? first.t : null,
    framesAtEnd: last ? last.frames : null, droppedAtEnd: last ? last.dropped : null,
    framesDecoded: null, decodedFps: null, currentTimeAdvance: null, currentTimeRate: null,
    stalledSamples: 0, resets: 0,
    videoSize: last && last.videoWidth ? `${last.videoWidth}x${last.videoHeight}` : null,
  };
  if (!first || last.t <= first.t) return out;
  let frames = 0, advance = 0;
  for (let i = firstIdx + 1; i < ok.length; i++) {
    const a = ok[i - 1], b = ok[i];
    if (b.frames < a.frames) { out.resets++; frames += b.frames; continue; }
    frames += b.frames - a.frames;
    if (b.currentTime > a.currentTime) advance += b.currentTime - a.currentTime;
    else if (b.currentTime < a.currentTime) out.resets++;
    else out.stalledSamples++;
  }
  const secs = (last.t - first.t) / 1000;
  Object.assign(out, { framesDecoded: frames, decodedFps: frames / secs, currentTimeAdvance: advance, currentTimeRate: advance / secs });
  return out;
}

// ---- page helpers ---------------------------------------------------------------------------

async function newPage(context, phase) {
  const page = await context.newPage();
  page.on('pageerror', (e) => result.pageErrors.push({ phase, message: String(e && e.stack || e) }));
  page.on('console', (m) => {
    if (m.type() === 'error' && result.consoleErrors.length < 100) {
      const loc = m.location();
      result.consoleErrors.push({ phase, text: m.text(), url: loc && loc.url || null });
    }
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && result.httpErrors.length < 100) result.httpErrors.push({ phase, status: r.status(), url: r.url() });
  });
  return page;
}

async function open(page, mode) {
  const url = `${base}/?play=${encodeURIComponent(stream)}&mode=${mode}`;
  const resp = await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  if (!resp) throw new Error(`no answer for ${url}`);
  if (!resp.ok()) throw new Error(`GET ${url} answered HTTP ${resp.status()}`);
  const sel = `${card} [data-player="${mode}"]`;
  await page.waitForSelector(sel, { state: 'attached', timeout: 10_000 })
    .catch(async () => { throw new Error(`no ${sel} within 10 s (page says: ${await pageErrorText(page) || 'nothing'})`); });
  return sel;
}

async function pageErrorText(page) {
  return page.evaluate((c) => {
    const texts = [];
    const banner = document.querySelector('#banner');
    if (banner && !banner.hidden) texts.push(banner.textContent);
    const e = document.querySelector(`${c} [data-field=error]`);
    if (e && !e.hidden) texts.push(e.textContent);
    return texts.join(' | ');
  }, card).catch(() => '');
}

async function shot(page, name) {
  const file = path.join(outDir, `${name}.png`);
  try {
    await page.screenshot({ path: file, timeout: 10_000 });
    result.screenshots.push(file);
  } catch (e) {
    result.consoleErrors.push({ phase: name, text: `screenshot failed: ${e.message}`, url: null });
  }
}

// Samples the video every SAMPLE_MS for `secs`; also the inline error text and the HLS latency.
async function sampleVideo(page, sel, secs) {
  const samples = [], errors = new Set();
  const start = Date.now();
  while (Date.now() - start < secs * 1000) {
    const s = await page.evaluate(({ sel, stream, c }) => {
      const v = document.querySelector(sel);
      const e = document.querySelector(`${c} [data-field=error]`);
      const p = window.eyrie?.players?.[stream];
      const out = { present: !!v, error: e && !e.hidden ? e.textContent : null, engine: p?.engine ?? null, received: p?.frames ?? null };
      if (v) {
        const q = v.getVideoPlaybackQuality();
        const b = v.buffered;
        Object.assign(out, {
          frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, currentTime: v.currentTime, paused: v.paused,
          readyState: v.readyState, bufferedEnd: b.length ? b.end(b.length - 1) : null,
          videoWidth: v.videoWidth, videoHeight: v.videoHeight,
        });
      }
      const date = p?.hls?.playingDate;
      if (date) out.hlsLatencyMs = Date.now() - date.getTime();
      if (typeof p?.hls?.latency === 'number') out.hlsEdgeLatencyS = p.hls.latency;
      return out;
    }, { sel, stream, c: card });
    s.t = Date.now() - start;
    if (s.error) errors.add(s.error);
    delete s.error;
    samples.push(s);
    await sleep(SAMPLE_MS - ((Date.now() - start) % SAMPLE_MS));
  }
  return { samples, pageErrorsShown: [...errors] };
}

// ---- phases ---------------------------------------------------------------------------------

async function phaseMse(context) {
  const page = await newPage(context, 'mse');
  try {
    const sel = await open(page, 'mse');
    const { samples, pageErrorsShown } = await sampleVideo(page, sel, seconds);
    const got = await page.evaluate((name) => {
      const p = window.eyrie.players[name] || {};
      return {
        drawn: window.eyrie.drawn.filter((d) => d.stream === name),
        player: { fragments: p.frames ?? null, inits: p.inits ?? null, gaps: p.gaps ?? null, presented: p.presented ?? null, drawnFrames: p.drawnFrames ?? null },
      };
    }, stream);
    await shot(page, 'mse');
    const drawn = got.drawn;
    const distinct = new Set(drawn.map((d) => d.mediaTime.toFixed(4))).size;
    return {
      ...summarize(samples),
      player: got.player,
      drawnFrames: drawn.length,
      distinctDrawnFrames: distinct,
      drawnOfPresented: got.player.presented ? got.player.drawnFrames / got.player.presented : null,
      truth: matchTruth(drawn),
      latencyMs: spread(drawn.filter((d) => typeof d.utc === 'number').map((d) => d.shownAt - d.utc)),
      firstDrawn: drawn.slice(0, 3),
      errorsShown: pageErrorsShown,
      timeline: samples,
    };
  } finally {
    await page.close().catch(() => {});
  }
}

async function phaseHls(context) {
  const page = await newPage(context, 'hls');
  try {
    await page.addInitScript({ path: HLS_JS });  // window.Hls exists before app.js runs
    const sel = await open(page, 'hls');
    const { samples, pageErrorsShown } = await sampleVideo(page, sel, hlsSeconds);
    await shot(page, 'hls');
    const last = samples[samples.length - 1] || {};
    return {
      ...summarize(samples),
      engine: last.engine ?? null,
      hlsJsVersion: await page.evaluate(() => window.Hls?.version ?? null),
      latencyMs: spread(samples.map((s) => s.hlsLatencyMs)),
      edgeLatencyS: spread(samples.map((s) => s.hlsEdgeLatencyS)),
      errorsShown: pageErrorsShown,
      timeline: samples,
    };
  } finally {
    await page.close().catch(() => {});
  }
}

async function phaseMjpeg(context) {
  const page = await newPage(context, 'mjpeg');
  try {
    const sel = await open(page, 'mjpeg');
    const t0 = Date.now();
    await page.waitForFunction((s) => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; },
      sel, { timeout: 10_000, polling: 100 })
      .catch(async () => { throw new Error(`no MJPEG picture within 10 s (page says: ${await pageErrorText(page) || 'nothing'})`); });
    const firstPictureAfterMs = Date.now() - t0;
    const hashes = [];
    const start = Date.now();
    while (Date.now() - start < mjpegSeconds * 1000) {
      hashes.push(await page.evaluate((s) => {
        const img = document.querySelector(s);
        if (!img || !img.naturalWidth) return null;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        const ctx = c.getContext('2d', { willReadFrequently: true });
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let h = 0x811c9dc5;
        for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i], 0x01000193);
        return `${c.width}x${c.height}:${(h >>> 0).toString(16)}`;
      }, sel));
      await sleep(SAMPLE_MS - ((Date.now() - start) % SAMPLE_MS));
    }
    await shot(page, 'mjpeg');
    const real = hashes.filter(Boolean);
    return {
      firstPictureAfterMs, samples: hashes.length, pictures: real.length,
      distinctHashes: new Set(real).size, size: real.length ? real[real.length - 1].split(':')[0] : null,
      errorsShown: [await pageErrorText(page)].filter(Boolean),
    };
  } finally {
    await page.close().catch(() => {});
  }
}

// ---- main -----------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  let info;
  try {
    const r = await fetch(`${base}/api/v1/streams`, { signal: AbortSignal.timeout(10_000) });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    info = (await r.json()).streams?.find((s) => s.name === stream);
  } catch (e) {
    result.failures.push(`GET ${base}/api/v1/streams failed: ${e.message}`);
    return 1;
  }
  if (!info) {
    result.failures.push(`stream ${stream} is not in ${base}/api/v1/streams`);
    return 1;
  }
  result.streamInfo = info;

  if (!fs.existsSync(CHROMIUM)) {
    result.failures.push(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
    return 2;
  }
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
  } catch (e) {
    result.failures.push(`cannot launch Chromium at ${CHROMIUM}: ${e.message.split('\n')[0]}`);
    return 2;
  }
  try {
    result.browserVersion = browser.version();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const phases = [['mse', 'ws', phaseMse], ['hls', 'hls', phaseHls], ['mjpeg', 'mjpeg', phaseMjpeg]];
    for (const [name, key, run] of phases) {
      if (!info.urls?.[key]) {
        result.phases[name] = { skipped: `the stream offers no ${key} URL` };
        continue;
      }
      const t0 = Date.now();
      try {
        result.phases[name] = await run(context);
      } catch (e) {
        result.phases[name] = { error: e.message.split('\n')[0] };
        result.failures.push(`${name}: ${e.message.split('\n')[0]}`);
      }
      result.phases[name].tookMs = Date.now() - t0;
    }
  } finally {
    await closeBrowser();
  }
  if (result.pageErrors.length) result.failures.push(`${result.pageErrors.length} uncaught error(s) in the page, first: ${result.pageErrors[0].message.split('\n')[0]}`);
  return result.failures.length ? 1 : 0;
}

main().then(
  (code) => { clearTimeout(hardTimer); finish(code); },
  async (e) => {
    clearTimeout(hardTimer);
    result.failures.push(`check.mjs crashed: ${e && e.stack || e}`);
    await closeBrowser();
    finish(1);
  },
);

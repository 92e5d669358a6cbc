// Eyrie's web page: lists the streams and plays one of them at a time per card.
// Plain ES module, no dependencies. Untrusted text only ever goes through textContent.

const API = '/api/v1/streams';
const REFRESH_MS = 3000;
const MODES = ['mse', 'hls', 'mjpeg', 'snapshot'];
const MODE_URL = { mse: 'ws', hls: 'hls', mjpeg: 'mjpeg', snapshot: 'snapshot' };
const MODE_LABEL = { mse: 'MSE (WebSocket)', hls: 'LL-HLS', mjpeg: 'MJPEG', snapshot: 'Snapshot' };
const LINKS = [
  ['ws', 'WebSocket (fMP4)'], ['hls', 'LL-HLS'], ['ts', 'HLS (MPEG-TS)'], ['mp4', 'Progressive MP4'],
  ['mjpeg', 'MJPEG'], ['snapshot', 'Snapshot'], ['rtsp', 'RTSP'],
];
const KEEP = 2000;          // entries kept in eyrie.drawn and eyrie.latency
const META_KEEP = 600;      // metadata messages kept while waiting for their frame
const STRETCH = 3;          // see stretchDurations
const KEYS_KEEP = 32;        // keyframe times kept, where a player that must jump lands
const NEAR_BEHIND_S = 0.3;  // further behind the live edge: play at CATCH_UP_RATE
const FAR_BEHIND_S = 1.0;   // further behind: jump near the edge
const CATCH_UP_RATE = 1.25;
const EDGE_S = 0.2;         // where a jump lands before the buffered end (a fragment declares STRETCH pictures' time)
const PTS_TOLERANCE = 0.001;
// Cards not being watched show one snapshot (a click plays them): a page left
// open costs the server nothing per stream.
const IDLE_SNAPSHOT_MS = 0;
const SNAPSHOT_MS = 1000;

const $ = (sel, root = document) => root.querySelector(sel);
const cards = new Map();
const params = new URLSearchParams(location.search);
let wanted = params.get('play') ? { name: params.get('play'), mode: params.get('mode') || null } : null;
let autoStarted = false;

const eyrie = { players: {}, drawn: [], latency: [], streams: [], play, stop: stopStream };
window.eyrie = eyrie;

function keep(list, item) {
  list.push(item);
  if (list.length > KEEP) list.splice(0, list.length - KEEP);
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function absolute(path, ws) {
  const u = new URL(path, location.href);
  if (ws && (u.protocol === 'http:' || u.protocol === 'https:')) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

// Each WebSocket fragment holds one picture with its nominal duration. MSE (W3C Media Source Extensions §3.5.8,
// coded frame processing, step 6) takes a picture that arrives more than twice the previous one's duration late
// as a break and drops everything up to the next keyframe: seconds of frozen picture whenever a loaded server is
// two pictures late or a source drops some. Each fragment's tfdt places its picture, so the duration only says
// how long it may be shown while the next is awaited: stretched STRETCH times (in place, in `trun`), a picture
// may come 2 × STRETCH durations late. ISO/IEC 14496-12 §8.8: moof > traf > trun.
function stretchDurations(buf) {
  const v = new DataView(buf);
  const boxes = (start, end, each) => {
    for (let at = start; at + 8 <= end;) {
      const size = v.getUint32(at);
      if (size < 8 || at + size > end) return;
      each(String.fromCharCode(v.getUint8(at + 4), v.getUint8(at + 5), v.getUint8(at + 6), v.getUint8(at + 7)), at, size);
      at += size;
    }
  };
  boxes(0, buf.byteLength, (type, at, size) => type === 'moof' && boxes(at + 8, at + size, (t, a, s) => t === 'traf' && boxes(a + 8, a + s, (u, b, z) => {
    if (u !== 'trun' || z < 16) return;
    const flags = v.getUint32(b + 8) & 0xffffff;
    if (!(flags & 0x100)) return;
    const per = 4 * [0x100, 0x200, 0x400, 0x800].filter((f) => flags & f).length;
    let at2 = b + 16 + (flags & 0x1 ? 4 : 0) + (flags & 0x4 ? 4 : 0);
    for (let i = v.getUint32(b + 12); i > 0 && at2 + 4 <= b + z; i--, at2 += per) v.setUint32(at2, v.getUint32(at2) * STRETCH);
  })));
}

function withParam(path, key, value) {
  const u = new URL(path, location.href);
  u.searchParams.set(key, value);
  return u.href;
}

// What went wrong with a URL that an <img> failed to load: its HTTP status, or the network error.
async function probe(path) {
  const ctrl = new AbortController();
  try {
    const r = await fetch(path, { signal: ctrl.signal, cache: 'no-store' });
    return r.ok ? 'the stream ended or is not an image' : `HTTP ${r.status} ${r.statusText}`.trim();
  } catch (e) {
    return e.message;
  } finally {
    ctrl.abort();
  }
}

function defaultMode(info) {
  const u = info.urls || {};
  if (u.ws && info.kind !== 'raw') return 'mse';
  if (u.mjpeg) return 'mjpeg';
  if (u.hls) return 'hls';
  if (u.ws) return 'mse';
  return u.snapshot ? 'snapshot' : null;
}

function fmtState(info) {
  const parts = [info.codec || (info.kind === 'raw' ? 'raw' : 'codec unknown')];
  if (info.width && info.height) parts.push(`${info.width}×${info.height}`);
  if (typeof info.fps === 'number' && info.fps > 0) parts.push(`${+info.fps.toFixed(2)} fps`);
  if (typeof info.subscribers === 'number') parts.push(`${info.subscribers} subscriber${info.subscribers === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

function setBanner(text) {
  const b = $('#banner');
  b.hidden = !text;
  b.textContent = text || '';
}

// ---- the list -------------------------------------------------------------------------------

async function refresh() {
  try {
    const r = await fetch(API, { cache: 'no-store' });
    if (!r.ok) throw new Error(`GET ${API}: HTTP ${r.status}`);
    const body = await r.json();
    if (!body || !Array.isArray(body.streams)) throw new Error(`GET ${API}: no "streams" list`);
    update(body.streams.filter((s) => s && typeof s.name === 'string' && s.name));
    $('#status').textContent = `${cards.size} stream${cards.size === 1 ? '' : 's'} · updated ${new Date().toLocaleTimeString()}`;
    setBanner(wanted && !cards.has(wanted.name) ? `Stream “${wanted.name}” is not listed (yet)` : null);
  } catch (e) {
    setBanner(`Cannot list the streams: ${e.message}`);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

function update(list) {
  eyrie.streams = list;
  const seen = new Set();
  for (const info of list) {
    seen.add(info.name);
    let card = cards.get(info.name);
    if (!card) {
      card = makeCard(info);
      cards.set(info.name, card);
      $('#streams').append(card.el);
    }
    render(card, info);
  }
  for (const [name, card] of cards) {
    if (seen.has(name)) continue;
    stopStream(name);
    card.el.remove();
    cards.delete(name);
  }
  if (wanted && cards.has(wanted.name)) {
    const { name, mode } = wanted;
    wanted = null;
    autoStarted = true;
    play(name, mode);
  } else if (!wanted && !autoStarted && list.length) {
    autoStarted = true;
    const first = list.find((s) => s.kind !== 'raw' && s.urls?.ws) || list.find((s) => s.urls?.mjpeg);
    if (first) play(first.name, defaultMode(first));
  }
  for (const card of cards.values()) if (!card.player) idle(card);
}

function makeCard(info) {
  const node = $('#stream-card').content.firstElementChild.cloneNode(true);
  node.dataset.stream = info.name;
  const card = {
    el: node, info, player: null, mode: null, linksKey: '', errorText: '',
    stage: $('.stage', node), stats: $('[data-field=stats]', node), error: $('[data-field=error]', node),
    setError(text) {
      text = text || '';
      if (text === card.errorText) return;
      card.errorText = text;
      card.error.textContent = text;
      card.error.hidden = !text;
    },
    setStats(text) { card.stats.textContent = text; },
  };
  $('.name', node).textContent = info.name;
  for (const button of node.querySelectorAll('[data-mode]')) {
    button.addEventListener('click', () => play(info.name, button.dataset.mode));
  }
  card.stage.addEventListener('click', () => {
    if ((!card.player || card.player.idle) && defaultMode(card.info)) play(card.info.name, defaultMode(card.info));
  });
  return card;
}

function render(card, info) {
  card.info = info;
  const node = card.el;
  $('.kind', node).textContent = info.kind || '?';
  $('[data-field=state]', node).textContent = fmtState(info);
  if (info.width > 0 && info.height > 0) card.stage.style.aspectRatio = `${info.width} / ${info.height}`;
  const urls = info.urls || {};
  for (const button of node.querySelectorAll('[data-mode]')) {
    button.disabled = !urls[MODE_URL[button.dataset.mode]];
  }
  const key = JSON.stringify(urls);
  if (key !== card.linksKey) {
    card.linksKey = key;
    renderLinks(card, urls);
  }
  // The URL of the running player went away: fall back.
  if (card.player && !urls[MODE_URL[card.mode]]) {
    card.setError(`${MODE_LABEL[card.mode]} is no longer offered for this stream`);
    stopStream(info.name);
  }
}

function renderLinks(card, urls) {
  const ul = $('.links', card.el);
  ul.replaceChildren();
  const known = new Set(LINKS.map(([k]) => k));
  const entries = [...LINKS, ...Object.keys(urls).filter((k) => !known.has(k)).map((k) => [k, k])];
  for (const [key, label] of entries) {
    const value = urls[key];
    if (typeof value !== 'string' || !value) continue;
    const li = el('li', { 'data-link': key });
    li.append(el('span', { class: 'label' }, label));
    const text = /^[a-z][a-z0-9+.-]*:/i.test(value) ? value : absolute(value, key === 'ws');
    if (!/^https?:/i.test(text)) li.append(el('code', {}, text));
    else li.append(el('a', { href: text, target: '_blank', rel: 'noopener' }, text));
    const copy = el('button', { type: 'button', class: 'copy', title: 'Copy the address' }, 'Copy');
    copy.addEventListener('click', () => copyText(text, copy));
    li.append(copy);
    ul.append(li);
  }
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    const range = document.createRange();
    range.selectNodeContents(button.previousElementSibling);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = 'Selected';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

// ---- switching players ----------------------------------------------------------------------

function play(name, mode) {
  const card = cards.get(name);
  if (!card) {
    wanted = { name, mode: mode || null };   // started once the stream is listed
    return false;
  }
  mode = mode || defaultMode(card.info);
  if (!MODES.includes(mode)) {
    card.setError(`Unknown player “${mode}” (one of ${MODES.join(', ')})`);
    return false;
  }
  const url = card.info.urls?.[MODE_URL[mode]];
  if (!url) {
    card.setError(`${MODE_LABEL[mode]} is not offered for this stream`);
    return false;
  }
  start(card, mode, url, false);
  return true;
}

function start(card, mode, url, isIdle) {
  stopStream(card.info.name);
  if (!isIdle) card.setError(null);
  card.mode = mode;
  card.player = PLAYERS[mode](card, url, isIdle ? IDLE_SNAPSHOT_MS : SNAPSHOT_MS);
  card.player.idle = isIdle;
  eyrie.players[card.info.name] = card.player;
  card.el.dataset.mode = isIdle ? 'idle' : mode;
  for (const b of card.el.querySelectorAll('[data-mode]')) {
    b.setAttribute('aria-selected', String(!isIdle && b.dataset.mode === mode));
  }
}

function idle(card) {
  const url = card.info.urls?.snapshot;
  if (url) start(card, 'snapshot', url, true);
  else {
    card.stage.replaceChildren(el('p', { class: 'placeholder' }, 'Choose a player below'));
    card.el.dataset.mode = 'idle';
  }
}

function stopStream(name) {
  const card = cards.get(name);
  if (!card?.player) return;
  card.player.stop();
  card.player = null;
  card.mode = null;
  card.setStats('');
  delete eyrie.players[name];
}

function tryPlay(video, card) {
  const p = video.play();
  if (p) p.catch((e) => {
    if (e.name === 'NotAllowedError') card.setError('Autoplay was blocked: click the picture to play');
  });
}

function makeVideo(kind, card) {
  const video = el('video', { 'data-player': kind, muted: '', playsinline: '', autoplay: '' });
  video.muted = true;
  video.playsInline = true;
  video.autoplay = true;
  video.addEventListener('click', () => { if (video.paused) tryPlay(video, card); });
  return video;
}

// ---- MSE over WebSocket, with the detection overlay ------------------------------------------

function msePlayer(card, path) {
  const name = card.info.name;
  const video = makeVideo('mse', card);
  const canvas = el('canvas', { class: 'overlay', 'data-overlay': name });
  const layers = el('div', { class: 'layers' });
  layers.append(video, canvas);
  card.stage.replaceChildren(layers);
  const p = { mode: 'mse', stream: name, video, canvas, ws: null, frames: 0, bytes: 0, gaps: 0, inits: 0, presented: 0, drawnFrames: 0, latencyMs: null, stop };
  let ms = null, sb = null, queue = [], metas = [], keys = [], gen = 0;
  let initNext = false, started = false, stopped = false, closeNote = '';
  let backoff = 1000, retryTimer = 0, frameCb = 0;

  if (!('MediaSource' in window)) {
    card.setError('This browser has no Media Source Extensions: try LL-HLS or MJPEG');
    return p;
  }
  const statsTimer = setInterval(stats, 1000);
  video.addEventListener('error', () => {
    if (!video.error || stopped || !ms) return;
    restart(`Video error: ${video.error.message || `code ${video.error.code}`}`);
  });
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) frameCb = video.requestVideoFrameCallback(onFrame);
  connect();
  return p;

  function connect() {
    if (stopped) return;
    const ws = new WebSocket(absolute(path, true));
    ws.binaryType = 'arraybuffer';
    p.ws = ws;
    ws.onmessage = (ev) => (typeof ev.data === 'string' ? onText(ev.data) : onBinary(ev.data));
    ws.onclose = (ev) => {
      if (stopped || p.ws !== ws) return;
      p.ws = null;
      const wait = backoff;
      backoff = Math.min(backoff * 2, 15000);
      const why = closeNote || `WebSocket closed${ev.code && ev.code !== 1005 ? ` (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})` : ''}`;
      closeNote = '';
      card.setError(`${why}; reconnecting in ${wait / 1000} s`);
      retryTimer = setTimeout(connect, wait);
    };
  }

  function restart(why) {
    closeNote = why;
    if (p.ws) p.ws.close(4000, 'client restarts');
    else card.setError(why);
  }

  function onText(text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (m.type === 'init') openSource(m);
    else if (m.type === 'meta' && typeof m.pts === 'number') {
      metas.push(m);
      if (metas.length > META_KEEP) metas.splice(0, metas.length - META_KEEP);
      if (m.key) {
        keys.push(m.pts);
        if (keys.length > KEYS_KEEP) keys.shift();
      }
    } else if (m.type === 'gap') p.gaps += m.skipped || 1;
    else if (m.type === 'error' && m.message) card.setError(String(m.message));
  }

  function onBinary(buf) {
    p.bytes += buf.byteLength;
    if (!ms) return;                       // no (playable) init yet
    if (initNext) initNext = false;
    else {
      p.frames++;
      backoff = 1000;
      if (card.errorText) card.setError(null);
      stretchDurations(buf);
    }
    queue.push(buf);
    pump();
  }

  function openSource(m) {
    p.inits++;
    closeSource();
    if (!m.mime || !MediaSource.isTypeSupported(m.mime)) {
      card.setError(`This browser cannot play ${m.mime || 'an unnamed format'} through MSE: try LL-HLS or MJPEG`);
      return;
    }
    const mine = ++gen;
    const source = new MediaSource();
    ms = source;
    initNext = true;
    started = false;
    metas = [];
    keys = [];
    const url = URL.createObjectURL(source);
    video.src = url;
    source.addEventListener('sourceopen', () => {
      URL.revokeObjectURL(url);
      if (mine !== gen) return;
      try {
        sb = source.addSourceBuffer(m.mime);
      } catch (e) {
        card.setError(`Cannot play ${m.mime}: ${e.message}`);
        return;
      }
      sb.addEventListener('updateend', () => { if (mine === gen) { liveEdge(); pump(); } });
      pump();
    }, { once: true });
  }

  function closeSource() {
    gen++;
    ms = null;
    sb = null;
    queue = [];
    if (video.getAttribute('src')) {
      video.removeAttribute('src');
      video.load();
    }
  }

  function pump() {
    if (!sb || sb.updating || ms.readyState !== 'open') return;
    const b = sb.buffered, t = video.currentTime;
    if (b.length && t - b.start(0) > 20) {
      sb.remove(b.start(0), t - 10);       // never let the SourceBuffer fill
      return;
    }
    const buf = queue.shift();
    if (!buf) return;
    try {
      sb.appendBuffer(buf);
    } catch (e) {
      if (e.name === 'QuotaExceededError' && b.length && t - 1 > b.start(0)) {
        queue.unshift(buf);
        sb.remove(b.start(0), t - 1);
      } else restart(`Cannot append to the SourceBuffer: ${e.message}`);
    }
  }

  // Start at the first buffered picture (the stream's timestamps do not start at zero) and stay near the live edge:
  // a little behind, play a little faster (no picture skipped, nothing decoded twice); far behind, jump near the
  // edge, onto the newest keyframe when there is one that close (a seek decodes from the keyframe before its
  // target: landing on one costs a slow client least).
  function liveEdge() {
    const b = video.buffered;
    if (!b.length) return;
    const s = b.start(b.length - 1), e = b.end(b.length - 1), t = video.currentTime;
    if (!started) {
      started = true;
      video.currentTime = b.start(0);
      tryPlay(video, card);
    } else if (t < s) video.currentTime = s; // a gap: the next range starts at a keyframe
    else if (e - t > FAR_BEHIND_S) {
      const key = keys.filter((k) => k >= s && k >= e - FAR_BEHIND_S && k < e - EDGE_S).pop();
      video.currentTime = key ?? Math.max(s, e - EDGE_S);
      video.playbackRate = 1;
    } else video.playbackRate = e - t > NEAR_BEHIND_S ? CATCH_UP_RATE : 1;
  }

  function onFrame(now, md) {
    if (stopped) return;
    frameCb = video.requestVideoFrameCallback(onFrame);
    p.presented++;
    const meta = findMeta(md.mediaTime);
    drawBoxes(canvas, meta);
    if (!meta) return;
    const shownAt = performance.timeOrigin + (md.expectedDisplayTime ?? now);
    const boxes = Array.isArray(meta.detections) ? meta.detections : [];
    const truth = Array.isArray(meta.truth) ? meta.truth : [];
    keep(eyrie.drawn, {
      stream: name, mediaTime: md.mediaTime, pts: meta.pts, width: meta.width, height: meta.height,
      boxes, truth, shownAt, utc: meta.utc,
    });
    p.drawnFrames++;
    if (typeof meta.utc === 'number') {
      p.latencyMs = shownAt - meta.utc;
      keep(eyrie.latency, { stream: name, mode: 'mse', ms: p.latencyMs, at: Date.now() });
    }
  }

  function findMeta(t) {
    if (metas.length > META_KEEP / 2) metas = metas.filter((m) => m.pts > t - 5);
    for (let i = metas.length - 1; i >= 0; i--) {
      if (Math.abs(metas[i].pts - t) <= PTS_TOLERANCE) return metas[i];
    }
    return null;
  }

  function stats() {
    const b = video.buffered;
    const ahead = b.length ? b.end(b.length - 1) - video.currentTime : 0;
    const q = video.getVideoPlaybackQuality?.();
    const parts = [`${p.frames} fragments`, `buffer ${ahead.toFixed(2)} s`];
    if (q) parts.push(`${q.totalVideoFrames} decoded, ${q.droppedVideoFrames} dropped`);
    if (p.gaps) parts.push(`${p.gaps} skipped`);
    if (p.latencyMs != null) parts.push(`latency ${Math.round(p.latencyMs)} ms`);
    if (!frameCb) parts.push('no requestVideoFrameCallback: no boxes');
    card.setStats(parts.join(' · '));
  }

  function stop() {
    stopped = true;
    clearTimeout(retryTimer);
    clearInterval(statsTimer);
    if (frameCb) video.cancelVideoFrameCallback(frameCb);
    if (p.ws) p.ws.close(1000, 'player stopped');
    p.ws = null;
    closeSource();
  }
}

function drawBoxes(canvas, meta) {
  const ctx = canvas.getContext('2d');
  if (!meta || !(meta.width > 0 && meta.height > 0)) {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    return;
  }
  // The canvas is as many pixels as the picture and scaled like the video (object-fit: contain).
  if (canvas.width !== meta.width || canvas.height !== meta.height) {
    canvas.width = meta.width;
    canvas.height = meta.height;
  } else ctx.clearRect(0, 0, canvas.width, canvas.height);
  const line = Math.max(2, Math.round(meta.width / 400));
  const size = Math.max(12, Math.round(meta.height / 36));
  ctx.font = `${size}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  ctx.lineWidth = line;
  ctx.setLineDash([3 * line, 2 * line]);
  ctx.strokeStyle = 'rgba(160, 160, 160, 0.8)';
  for (const t of meta.truth || []) ctx.strokeRect(t.x, t.y, t.w, t.h);
  ctx.setLineDash([]);
  for (const d of meta.detections || []) {
    const hue = d.track_id != null ? (Number(d.track_id) * 67) % 360 : 200;
    const colour = `hsl(${hue} 90% 60%)`;
    ctx.strokeStyle = colour;
    ctx.strokeRect(d.x, d.y, d.w, d.h);
    let label = String(d.label ?? '');
    if (typeof d.confidence === 'number') label += ` ${Math.round(d.confidence * 100)}%`;
    if (d.track_id != null) label += ` #${d.track_id}`;
    const pad = Math.round(size / 4);
    const w = ctx.measureText(label).width + 2 * pad;
    const y = d.y - size - 2 * pad >= 0 ? d.y - size - 2 * pad : d.y;
    ctx.fillStyle = colour;
    ctx.fillRect(d.x, y, w, size + 2 * pad);
    ctx.fillStyle = '#000';
    ctx.fillText(label, d.x + pad, y + pad);
  }
}

// ---- LL-HLS: hls.js when a page has it (tests inject it), else the browser's own HLS ---------

function hlsPlayer(card, path) {
  const name = card.info.name;
  const video = makeVideo('hls', card);
  card.stage.replaceChildren(video);
  const p = { mode: 'hls', stream: name, video, hls: null, engine: null, latencyMs: null, stop };
  const src = absolute(path);
  let stopped = false, retryTimer = 0, backoff = 1000, recoveries = 0;
  video.addEventListener('error', () => {
    if (!stopped && p.engine === 'native' && video.error) card.setError(`HLS playback error: ${video.error.message || `code ${video.error.code}`}`);
  });
  video.addEventListener('playing', () => card.setError(null));
  const Hls = window.Hls;
  if (Hls && Hls.isSupported && Hls.isSupported()) startHlsJs();
  else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    p.engine = 'native';
    video.src = src;
    tryPlay(video, card);
  } else {
    card.setError(`This browser does not play HLS by itself: open ${src} in an HLS player (links below)`);
  }
  const statsTimer = setInterval(stats, 1000);
  return p;

  function startHlsJs() {
    if (stopped) return;
    p.engine = 'hls.js';
    const hls = new Hls({ lowLatencyMode: true });
    p.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, () => tryPlay(video, card));
    hls.on(Hls.Events.FRAG_BUFFERED, () => { backoff = 1000; });
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (!d.fatal || stopped) return;
      card.setError(`HLS ${d.type}: ${d.details}${d.response?.code ? ` (HTTP ${d.response.code})` : ''}`);
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR && recoveries++ < 3) {
        hls.recoverMediaError();
        return;
      }
      hls.destroy();
      p.hls = null;
      retryTimer = setTimeout(startHlsJs, backoff);
      backoff = Math.min(backoff * 2, 15000);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  function stats() {
    const parts = [p.engine || 'no HLS player'];
    const date = p.hls?.playingDate;
    if (date) {
      p.latencyMs = Date.now() - date.getTime();
      keep(eyrie.latency, { stream: name, mode: 'hls', ms: p.latencyMs, at: Date.now() });
      parts.push(`latency ${Math.round(p.latencyMs)} ms`);
    }
    const q = video.getVideoPlaybackQuality?.();
    if (q) parts.push(`${q.totalVideoFrames} decoded`);
    card.setStats(parts.join(' · '));
  }

  function stop() {
    stopped = true;
    clearTimeout(retryTimer);
    clearInterval(statsTimer);
    if (p.hls) p.hls.destroy();
    p.hls = null;
    video.removeAttribute('src');
    video.load();
  }
}

// ---- MJPEG and snapshots ----------------------------------------------------------------------

const BLANK = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';

function mjpegPlayer(card, path) {
  const name = card.info.name;
  const img = el('img', { 'data-player': 'mjpeg', alt: `${name}, live (MJPEG)` });
  card.stage.replaceChildren(img);
  const p = { mode: 'mjpeg', stream: name, img, stop };
  let stopped = false, retryTimer = 0, backoff = 1000, failed = false;
  img.onload = () => {
    backoff = 1000;
    if (failed) card.setError(null);
    failed = false;
    card.setStats(`${img.naturalWidth}×${img.naturalHeight}`);
  };
  img.onerror = async () => {
    if (stopped) return;
    const why = await probe(path);
    if (stopped) return;
    const wait = backoff;
    backoff = Math.min(backoff * 2, 15000);
    failed = true;
    card.setError(`MJPEG ${path}: ${why}; retrying in ${wait / 1000} s`);
    retryTimer = setTimeout(() => { img.src = withParam(path, 'r', Date.now()); }, wait);
  };
  img.src = absolute(path);
  return p;

  function stop() {
    stopped = true;
    clearTimeout(retryTimer);
    img.onload = img.onerror = null;
    img.src = BLANK;                      // ends the multipart response
  }
}

// Each picture is fetched (to see HTTP errors) and shown once it is whole; the next one is asked for after it.
function snapshotPlayer(card, path, period) {
  const name = card.info.name;
  const img = el('img', { 'data-player': 'snapshot', alt: `${name}, snapshot` });
  card.stage.replaceChildren(img);
  const p = { mode: 'snapshot', stream: name, img, loads: 0, stop };
  // A period of 0 takes one picture (retried only while it fails).
  let stopped = false, timer = 0, backoff = period || 2000, objectUrl = null, failed = false;
  const ctrl = new AbortController();
  load();
  return p;

  async function load() {
    let wait = period;
    try {
      const r = await fetch(withParam(path, 't', Date.now()), { cache: 'no-store', signal: ctrl.signal });
      if (!r.ok) throw new Error(`HTTP ${r.status} ${r.statusText}`.trim());
      const blob = await r.blob();
      if (stopped) return;
      const next = URL.createObjectURL(blob);
      await new Promise((resolve, reject) => {
        img.onload = resolve;
        img.onerror = () => { URL.revokeObjectURL(next); reject(new Error('not a picture')); };
        img.src = next;
      });
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = next;
      p.loads++;
      backoff = period || 2000;
      if (failed) card.setError(null);
      failed = false;
      card.setStats(`snapshot ${img.naturalWidth}×${img.naturalHeight} at ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      if (stopped) return;
      wait = backoff = Math.min(backoff * 2, 30000);
      failed = true;
      card.setError(`Snapshot ${path}: ${e.message}; retrying in ${Math.round(wait / 1000)} s`);
    }
    if (!stopped && (period > 0 || failed)) timer = setTimeout(load, wait);
  }

  function stop() {
    stopped = true;
    clearTimeout(timer);
    ctrl.abort();
    img.onload = img.onerror = null;
    if (objectUrl) URL.revokeObjectURL(objectUrl);
  }
}

const PLAYERS = { mse: msePlayer, hls: hlsPlayer, mjpeg: mjpegPlayer, snapshot: snapshotPlayer };

refresh();

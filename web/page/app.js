// The page: drives the WebAssembly module (web/src/lib.rs) once per game
// frame and draws what it paints. assets.js (written by `make web`) holds the
// module and the default policy blob as base64, so the page also works when
// opened straight from disk.
//
// URL parameters:
//   seed=N        first game's seed (default 0)
//   blob=URL      load this policy blob instead of the built-in one
//   warm=N        play N frames at once before showing the game
//   paused=1      start paused
//   test=1        headless check: play one episode from `seed` for at most
//                 `steps` decisions as fast as possible, then write a JSON
//                 result into <pre id="result"> (used by the browser test)
'use strict';

const W = 288;
const H = 512;
const FPS = 30;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

let wasm = null;
let palette = null; // Uint32Array of 16 RGBA words
let image = null;
let ctx = null;
let seed = 0;
let best = 0;
let human = false;
let flapPending = false;
let paused = params.get('paused') === '1';
let crashedAt = -1; // animation frames left showing a crash, or -1
let lastTime = 0;
let owed = 0; // game frames owed to the clock
let lastAction = 0;

function fromBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytes(ptr, len) {
  return new Uint8Array(wasm.memory.buffer, ptr, len);
}

function hex16(hi, lo) {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

function checksum() {
  return hex16(wasm.checksum_hi(), wasm.checksum_lo());
}

function showError(text) {
  $('error').textContent = text;
}

// Loads `data` (a Uint8Array) as the policy; on failure shows the blob
// parser's own message and keeps the policy that was playing.
function loadBlob(data, name) {
  if (data.length > wasm.staging_cap()) {
    showError(`${name}: the file has ${data.length} bytes; the page takes at most ${wasm.staging_cap()}`);
    return false;
  }
  bytes(wasm.staging_ptr(), data.length).set(data);
  if (!wasm.load_blob(data.length)) {
    const msg = new TextDecoder().decode(bytes(wasm.message_ptr(), wasm.message_len()));
    showError(`${name}: ${msg}`);
    return false;
  }
  showError('');
  $('blob-name').textContent = `${name} (${data.length} bytes)`;
  return true;
}

function startEpisode(s) {
  seed = s;
  wasm.start(Math.floor(s / 2 ** 32) >>> 0, s >>> 0);
  $('seed-now').textContent = String(s);
  $('seed').value = String(s);
  crashedAt = -1;
}

// One game frame: the policy decides (its Q-values are shown either way),
// then the policy's or the person's action is played. Returns true on a crash.
function gameFrame() {
  const greedy = wasm.decide();
  const action = human ? (flapPending ? 1 : 0) : greedy;
  flapPending = false;
  const crashed = wasm.step(action) === 1;
  lastAction = action;
  return crashed;
}

function draw() {
  const px = bytes(wasm.paint(), W * H);
  const out = new Uint32Array(image.data.buffer);
  for (let i = 0; i < W * H; i++) out[i] = palette[px[i] & 15];
  ctx.putImageData(image, 0, 0);
  if (crashedAt >= 0) {
    ctx.fillStyle = 'rgba(0,0,0,0.55)';
    ctx.fillRect(0, 200, W, 80);
    ctx.fillStyle = '#fff';
    ctx.font = 'bold 22px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText(`crashed at ${wasm.score()}`, W / 2, 236);
    ctx.font = '14px system-ui, sans-serif';
    ctx.fillText(`next: seed ${seed + 1}`, W / 2, 262);
  }
}

function showStats() {
  const qi = wasm.q_value(0);
  const qf = wasm.q_value(1);
  $('score').textContent = String(wasm.score());
  $('best').textContent = String(best);
  $('frame').textContent = String(wasm.decisions());
  $('q-idle').textContent = String(qi);
  $('q-flap').textContent = String(qf);
  // The preference bar: flap minus idle, relative to the Q-values' size,
  // from the centre (half the bar = a difference of a tenth of |Q|).
  const diff = qf - qi;
  const size = Math.max(Math.abs(qi), Math.abs(qf), 1);
  const half = Math.min(50, 50 * Math.abs(diff) / (0.1 * size));
  const bar = $('q-bar');
  bar.style.left = `${diff >= 0 ? 50 : 50 - half}%`;
  bar.style.width = `${half}%`;
  $('q-diff').textContent = String(diff);
  $('q-idle-label').className = lastAction === 0 ? 'chosen' : '';
  $('q-flap-label').className = lastAction === 1 ? 'chosen' : '';
  $('action').textContent = lastAction === 1 ? 'flap' : 'idle';
  $('checksum').textContent = checksum();
  $('mode').textContent = human ? 'you (space or click = flap)' : 'policy';
  $('mode').className = human ? 'human' : '';
}

// Plays `n` frames at once (speed "as fast as possible", warm-up); stops at a crash.
function playFrames(n) {
  for (let i = 0; i < n; i++) {
    if (gameFrame()) return true;
    best = Math.max(best, wasm.score());
  }
  return false;
}

function onCrash() {
  best = Math.max(best, wasm.score());
  crashedAt = FPS; // one second of "crashed"
}

function tick(now) {
  requestAnimationFrame(tick);
  const dt = Math.min(now - lastTime, 250);
  lastTime = now;
  if (paused) return;
  if (crashedAt >= 0) {
    owed = 0;
    crashedAt -= dt * FPS / 1000;
    if (crashedAt < 0) startEpisode(seed + 1);
    draw();
    showStats();
    return;
  }
  const speed = Number($('speed').value);
  let frames;
  if (speed === 0) {
    frames = 400;
  } else {
    owed += dt * FPS * speed / 1000;
    frames = Math.floor(owed);
    owed -= frames;
  }
  let crashed = false;
  for (let i = 0; i < frames && !crashed; i++) {
    // Show the frame before the crash (the game restarts at once).
    crashed = gameFrame();
    if (!crashed) best = Math.max(best, wasm.score());
  }
  if (crashed) onCrash();
  draw();
  showStats();
}

function runTest() {
  const steps = Number(params.get('steps') || 1000);
  let crashed = false;
  while (!crashed && wasm.decisions() < steps) crashed = gameFrame();
  const result = {
    seed,
    decisions: wasm.decisions(),
    score: wasm.score(),
    crashed,
    checksum: checksum(),
    blob: $('blob-name').textContent,
    error: $('error').textContent,
  };
  draw();
  showStats();
  $('result').textContent = JSON.stringify(result);
  document.title = 'done';
}

function wireControls() {
  $('restart').onclick = () => startEpisode(Math.max(0, Math.floor(Number($('seed').value) || 0)));
  $('pause').onclick = () => {
    paused = !paused;
    $('pause').textContent = paused ? 'resume' : 'pause';
  };
  $('takeover').onclick = () => {
    human = !human;
    $('takeover').textContent = human ? 'give back to the policy' : 'take over (space = flap)';
    showStats();
  };
  const flap = () => { if (human) flapPending = true; };
  $('screen').onmousedown = flap;
  document.addEventListener('keydown', (e) => {
    if (e.code === 'Space' || e.code === 'ArrowUp') {
      if (e.target.tagName !== 'INPUT' && e.target.tagName !== 'BUTTON') e.preventDefault();
      flap();
    }
  });
  $('file').onchange = async () => {
    const f = $('file').files[0];
    if (!f) return;
    if (loadBlob(new Uint8Array(await f.arrayBuffer()), f.name)) startEpisode(seed);
  };
}

async function main() {
  // Compiled synchronously (160 kB, well under the browsers' limit for the
  // main thread): headless Chromium's virtual time does not wait for an
  // asynchronous compile, and the browser test would read an empty result.
  const instance = new WebAssembly.Instance(new WebAssembly.Module(fromBase64(FLAPPY_WASM)), {});
  wasm = instance.exports;
  const pal = bytes(wasm.palette_ptr(), 48);
  palette = new Uint32Array(16);
  for (let i = 0; i < 16; i++) {
    palette[i] = (0xff << 24 | pal[3 * i + 2] << 16 | pal[3 * i + 1] << 8 | pal[3 * i]) >>> 0;
  }
  ctx = $('screen').getContext('2d');
  image = ctx.createImageData(W, H);
  loadBlob(fromBase64(FLAPPY_BLOB), FLAPPY_BLOB_NAME);
  const url = params.get('blob');
  if (url) {
    try {
      const r = await fetch(url);
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      loadBlob(new Uint8Array(await r.arrayBuffer()), url);
    } catch (e) {
      showError(`${url}: cannot read it (${e.message})`);
    }
  }
  wireControls();
  startEpisode(Math.max(0, Math.floor(Number(params.get('seed')) || 0)));
  if (params.get('test') === '1') {
    runTest();
    return;
  }
  const warm = Number(params.get('warm') || 0);
  if (warm > 0 && playFrames(warm)) onCrash();
  draw();
  showStats();
  $('pause').textContent = paused ? 'resume' : 'pause';
  requestAnimationFrame((t) => { lastTime = t; requestAnimationFrame(tick); });
}

main().catch((e) => showError(`the page failed to start: ${e.message}`));

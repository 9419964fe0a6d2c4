// Swarm page: this node, its peers (polled every second, rates from byte deltas), a hand-drawn
// throughput graph over the last 5 minutes, and the live event log.
'use strict';

const POLL_MS = 1000;
const GRAPH_WINDOW_S = 300;
const MAX_EVENTS = 500;
const FILTER_KEY = 'vidswarm_event_filter';

const $ = (id) => document.getElementById(id);

// ---- this node ----

let info = null;
let infoAt = 0; // when `info` was fetched, so uptime can tick without refetching

async function loadInfo() {
  try {
    info = await api('/api/v1/info');
    infoAt = Date.now();
    renderInfo();
  } catch (e) {
    showError($('node'), e);
  }
  setTimeout(loadInfo, 10000);
}

function addrList(addrs) {
  if (!addrs || !addrs.length) return el('span', { class: 'muted' }, 'none');
  return el('ul', {}, addrs.map((a) => el('li', { class: 'mono' }, a)));
}

function renderInfo() {
  $('node').replaceChildren(el('dl', { class: 'facts', id: 'info' },
    el('dt', {}, 'Peer id'), el('dd', { class: 'mono', id: 'peer-id' }, info.peer_id),
    el('dt', {}, 'Listening on'), el('dd', { id: 'listen-addresses' }, addrList(info.listen_addresses || info.addresses)),
    el('dt', {}, 'Advertised'), el('dd', { id: 'external-addresses' }, addrList(info.external_addresses)),
    el('dt', {}, 'Version'), el('dd', { id: 'version' }, info.version || '–'),
    el('dt', {}, 'Uptime'), el('dd', { id: 'uptime' }, ''),
    el('dt', {}, 'Videos held'), el('dd', {}, el('a', { href: '/ui/videos' }, String(info.videos ?? '–')))));
  tickUptime();
}

function tickUptime() {
  const box = $('uptime');
  if (box && info) box.textContent = fmtUptime(info.uptime_secs + (Date.now() - infoAt) / 1000);
}
setInterval(tickUptime, 1000);

// ---- peers ----

const peerRows = new Map(); // peer id -> {tr, cells}
let lastPeers = new Map(); // peer id -> {t, bytes_in, bytes_out}

function fmtRtt(ms) {
  if (ms === null || ms === undefined) return '–';
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

function peerRow(id) {
  let row = peerRows.get(id);
  if (row) return row;
  const names = ['address', 'transport', 'direction', 'rtt', 'in', 'out', 'rateIn', 'rateOut', 'age'];
  const numeric = new Set(['rtt', 'in', 'out', 'rateIn', 'rateOut', 'age']);
  const cells = {};
  const tr = el('tr', { 'data-peer': id }, el('td', {}, peerEl(id)),
    names.map((n) => (cells[n] = el('td', { class: numeric.has(n) ? 'num' : (n === 'address' ? 'mono' : null) }))));
  row = { tr, cells };
  peerRows.set(id, row);
  document.querySelector('#peers tbody').append(tr);
  return row;
}

async function pollPeers() {
  try {
    const peers = await api('/api/v1/peers');
    const now = Date.now();
    const seen = new Map();
    for (const p of peers) {
      const { cells } = peerRow(p.peer_id);
      const prev = lastPeers.get(p.peer_id);
      const dt = prev ? (now - prev.t) / 1000 : 0;
      cells.address.textContent = p.address || '–';
      cells.transport.textContent = p.transport || '–';
      cells.direction.textContent = p.direction || '–';
      cells.rtt.textContent = fmtRtt(p.rtt_ms);
      cells.in.textContent = fmtBytes(p.bytes_in);
      cells.out.textContent = fmtBytes(p.bytes_out);
      cells.rateIn.textContent = dt > 0 ? fmtRate((p.bytes_in - prev.bytes_in) / dt) : '–';
      cells.rateOut.textContent = dt > 0 ? fmtRate((p.bytes_out - prev.bytes_out) / dt) : '–';
      cells.age.textContent = fmtUptime(p.connected_secs);
      seen.set(p.peer_id, { t: now, bytes_in: p.bytes_in, bytes_out: p.bytes_out });
    }
    for (const [id, row] of peerRows) {
      if (!seen.has(id)) { row.tr.remove(); peerRows.delete(id); }
    }
    lastPeers = seen;
    $('peer-count').textContent = `(${peers.length})`;
    $('no-peers').hidden = peers.length > 0;
    setStatus(null);
  } catch (e) {
    setStatus(e);
  }
  setTimeout(pollPeers, POLL_MS);
}

// A failed poll is shown once at the top rather than blanking the tables.
function setStatus(err) {
  const box = $('status');
  if (!err) box.replaceChildren();
  else showError(box, err);
}

// ---- throughput ----

const samples = []; // {t: ms, in: B/s, out: B/s}
let lastTraffic = null;

async function pollTraffic() {
  try {
    const t = await api('/api/v1/traffic');
    const now = Date.now();
    if (lastTraffic) {
      const dt = (now - lastTraffic.t) / 1000;
      if (dt > 0) {
        const rin = Math.max(0, (t.bytes_in - lastTraffic.bytes_in) / dt);
        const rout = Math.max(0, (t.bytes_out - lastTraffic.bytes_out) / dt);
        samples.push({ t: now, in: rin, out: rout });
        $('rate-in').textContent = fmtRate(rin);
        $('rate-out').textContent = fmtRate(rout);
      }
    }
    lastTraffic = { t: now, bytes_in: t.bytes_in, bytes_out: t.bytes_out };
    $('totals').textContent = `total ${fmtBytes(t.bytes_in)} in, ${fmtBytes(t.bytes_out)} out`;
    while (samples.length && samples[0].t < now - GRAPH_WINDOW_S * 1000) samples.shift();
    drawGraph(now);
  } catch (e) {
    setStatus(e);
  }
  setTimeout(pollTraffic, POLL_MS);
}

/** The y-axis top: a round number of KiB/s or MiB/s above the highest rate. */
function scaleFor(maxRate) {
  const unit = maxRate >= 1024 * 1024 ? { name: 'MiB/s', bytes: 1024 * 1024 } : { name: 'KiB/s', bytes: 1024 };
  const v = maxRate / unit.bytes;
  if (!(v > 0)) return { unit, step: 1, steps: 4 }; // idle: 0..4 KiB/s
  const pow = Math.pow(10, Math.floor(Math.log10(v / 4)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s * 4 >= v) || 10 * pow;
  return { unit, step, steps: 4 };
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function drawGraph(now = Date.now()) {
  const canvas = $('throughput');
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);

  const left = 78, right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  const max = samples.reduce((m, s) => Math.max(m, s.in, s.out), 0);
  const { unit, step, steps } = scaleFor(max);
  const yMax = step * steps * unit.bytes;
  const x = (t) => left + pw * (1 - (now - t) / (GRAPH_WINDOW_S * 1000));
  const y = (rate) => top + ph * (1 - rate / yMax);

  // Grid and axis labels.
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = cssVar('--muted');
  ctx.strokeStyle = cssVar('--border');
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= steps; i++) {
    const yy = Math.round(y(i * step * unit.bytes)) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + pw, yy); ctx.stroke();
    const value = +(i * step).toFixed(3);
    ctx.fillText(`${value} ${unit.name}`, left - 6, yy);
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let m = 5; m >= 0; m--) {
    const xx = x(now - m * 60000);
    ctx.fillText(m ? `-${m} min` : 'now', Math.min(Math.max(xx, left + 16), left + pw - 12), top + ph + 5);
  }

  // One line per direction.
  for (const [key, color] of [['in', cssVar('--in')], ['out', cssVar('--out')]]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.8;
    ctx.beginPath();
    samples.forEach((s, i) => (i ? ctx.lineTo(x(s.t), y(s[key])) : ctx.moveTo(x(s.t), y(s[key]))));
    ctx.stroke();
  }
}
window.addEventListener('resize', () => drawGraph());

// ---- event log ----

const eventTypes = [...EVENT_TYPES];
let hiddenTypes = new Set();
try { hiddenTypes = new Set(JSON.parse(localStorage.getItem(FILTER_KEY) || '[]')); } catch (_) { /* keep all */ }
let paused = false;
let queued = [];
let received = 0;

function renderFilter() {
  $('event-filter').replaceChildren(...eventTypes.map((type) => {
    const box = el('input', { type: 'checkbox', value: type, checked: !hiddenTypes.has(type) });
    box.addEventListener('change', () => {
      if (box.checked) hiddenTypes.delete(type); else hiddenTypes.add(type);
      try { localStorage.setItem(FILTER_KEY, JSON.stringify([...hiddenTypes])); } catch (_) { /* ok */ }
      for (const tr of document.querySelectorAll(`#events tbody tr[data-type="${type}"]`)) tr.hidden = !box.checked;
    });
    return el('label', {}, box, ' ', type.replace(/_/g, ' '));
  }));
}

const frag = (video, index) => ['fragment ', String(index), ' of ', videoEl(video)];

/** A short, human line for one event (nodes, so peers and videos keep their tooltips). */
function summarize(e) {
  switch (e.type) {
    case 'listening': return ['listening on ', el('code', {}, e.addr)];
    case 'peer_connected': return ['peer ', peerEl(e.peer), ' connected'];
    case 'peer_disconnected': return ['peer ', peerEl(e.peer), ' disconnected'];
    case 'peer_subscribed': return ['peer ', peerEl(e.peer), ' subscribed to announcements'];
    case 'announcement_received': {
      const n = (e.fragments || []).length;
      return [peerEl(e.from), ` holds ${n} fragment${n === 1 ? '' : 's'} of `, videoEl(e.video),
        e.named && e.named.name ? ` (${e.named.name})` : ''];
    }
    case 'providers_found': {
      const w = e.what || {};
      const n = (e.providers || []).length;
      return [`${n} provider${n === 1 ? '' : 's'} for `,
        w.kind === 'fragment' ? frag(w.video, w.index) : ['the manifest of ', videoEl(w.video)]];
    }
    case 'fetch_started': return ['fetching ', String((e.missing || []).length), ' fragments of ', videoEl(e.video)];
    case 'chunk_received':
      return ['chunk ', String(e.chunk), ' of ', frag(e.video, e.fragment), ' from ', peerEl(e.from), ` (${fmtBytes(e.bytes)})`];
    case 'fragment_stored':
      return ['stored ', frag(e.video, e.fragment ?? e.index),
        e.bytes !== undefined ? ` (${fmtBytes(e.bytes)}${e.millis !== undefined ? `, ${e.millis} ms` : ''})` : ''];
    case 'fetch_completed':
      return ['fetched ', videoEl(e.video), e.fragments !== undefined ? `: ${e.fragments} fragments` : '',
        e.bytes !== undefined ? `, ${fmtBytes(e.bytes)}` : '', e.millis !== undefined ? ` in ${(e.millis / 1000).toFixed(1)} s` : ''];
    case 'fetch_failed': return ['fetch of ', videoEl(e.video), ' failed', e.error ? `: ${e.error}` : ''];
    case 'peer_misbehaved': return ['peer ', peerEl(e.peer), ' misbehaved', e.reason ? `: ${e.reason}` : ''];
    case 'peer_leaving': return ['peer ', peerEl(e.peer), ' is leaving ', videoEl(e.video)];
    case 'lagged': return [`the log fell behind: ${e.missed ?? e.skipped ?? '?'} events missed`];
    default: return [el('code', {}, JSON.stringify(e))];
  }
}

function timeOf(d) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function addEvent(e, at) {
  if (!eventTypes.includes(e.type)) { eventTypes.push(e.type); renderFilter(); }
  const body = document.querySelector('#events tbody');
  const tr = el('tr', { 'data-type': e.type, hidden: hiddenTypes.has(e.type) },
    el('td', { class: 'time' }, timeOf(at)),
    el('td', { class: 'type' }, el('code', {}, e.type)),
    el('td', { class: 'wrap' }, summarize(e)));
  body.prepend(tr);
  while (body.rows.length > MAX_EVENTS) body.lastElementChild.remove();
}

function onEvent(e) {
  received++;
  const at = new Date();
  if (paused) {
    queued.push([e, at]);
    if (queued.length > MAX_EVENTS) queued.shift();
  } else {
    addEvent(e, at);
  }
  $('event-count').textContent = `${received} received${paused ? `, ${queued.length} waiting` : ''}`;
}

$('events-pause').addEventListener('click', (ev) => {
  paused = !paused;
  ev.target.textContent = paused ? 'Resume' : 'Pause';
  if (!paused) { for (const [e, at] of queued) addEvent(e, at); queued = []; }
});
$('events-clear').addEventListener('click', () => document.querySelector('#events tbody').replaceChildren());

renderFilter();
events(onEvent, (state) => {
  $('event-state').textContent = state === 'open' ? '(live)' : '(reconnecting…)';
});
loadInfo();
pollPeers();
pollTraffic();
drawGraph();

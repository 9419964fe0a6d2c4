// Shared helpers for every vidswarm page: API calls (with the token dance), a tiny DOM builder,
// formatting, the nav bar and the event stream. Plain globals: pages are classic scripts.
'use strict';

const TOKEN_KEY = 'vidswarm_token';

// Every SSE event type the node emits (the SSE event name equals the JSON `type`).
const EVENT_TYPES = [
  'listening', 'peer_connected', 'peer_disconnected', 'peer_subscribed',
  'announcement_received', 'providers_found', 'fetch_started', 'chunk_received',
  'fragment_stored', 'fetch_completed', 'fetch_failed', 'peer_misbehaved', 'peer_leaving',
  'lagged',
];

/** An API failure, carrying the node's `{error, message}` (or a network failure, status 0). */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
}

function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token); else localStorage.removeItem(TOKEN_KEY);
  } catch (_) { /* private mode: the token lives only for this request */ }
  refreshTokenBadge();
}

// One pending token prompt shared by all requests that hit 401 at the same time.
let tokenPrompt = null;

/** Shows the inline token form and resolves with the token typed, or rejects on cancel. */
function askToken(rejected) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve, reject) => {
    const input = el('input', { type: 'password', id: 'token-input', placeholder: 'API token', autocomplete: 'off' });
    const form = el('form', { id: 'token-form', class: 'token-form' },
      el('strong', {}, rejected ? 'Token rejected.' : 'This node wants an API token for changes.'),
      input,
      el('button', { type: 'submit', class: 'primary' }, 'Save and retry'),
      el('button', { type: 'button', onclick: () => done(null) }, 'Cancel'));
    const done = (token) => {
      form.remove();
      tokenPrompt = null;
      if (token) { setToken(token); resolve(token); }
      else reject(new ApiError(401, 'unauthorized', 'An API token is needed for this action.'));
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); done(input.value.trim()); });
    const nav = document.getElementById('nav');
    if (nav) nav.after(form); else document.body.prepend(form);
    input.focus();
  });
  return tokenPrompt;
}

/** Turns a response body (JSON or text) and status into an ApiError. */
function errorFrom(status, data, statusText) {
  if (data && typeof data === 'object') {
    return new ApiError(status, data.error || 'error', data.message || data.error || `HTTP ${status}`);
  }
  const text = typeof data === 'string' && data.trim() ? data.trim().slice(0, 300) : statusText;
  return new ApiError(status, 'error', `HTTP ${status}${text ? ': ' + text : ''}`);
}

function parseText(text) {
  if (!text) return null;
  try { return JSON.parse(text); } catch (_) { return text; }
}

/**
 * fetch + JSON. opts: {method, json (an object sent as JSON), body (sent raw), type (its
 * content-type), headers}. Resolves with the parsed body; throws ApiError. A 401 asks for the
 * token inline and retries.
 */
async function api(path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(opts.headers || {});
    const token = getToken();
    if (token) headers.set('Authorization', `Bearer ${token}`);
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers.set('content-type', 'application/json');
    } else if (opts.type) {
      headers.set('content-type', opts.type);
    }
    let res;
    try {
      res = await fetch(path, { method: opts.method || 'GET', headers, body, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'network', `Cannot reach the node (${e.message}).`);
    }
    const data = parseText(await res.text());
    if (res.status === 401 && attempt < 3) {
      await askToken(attempt > 0 || !!token);
      continue;
    }
    if (!res.ok) throw errorFrom(res.status, data, res.statusText);
    return data;
  }
}

/** PUT/POST raw bytes with upload progress (fetch has none): onProgress(loaded, total). */
async function upload(path, blob, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    const token = getToken();
    const { status, data, statusText } = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(opts.method || 'PUT', path);
      if (opts.type) xhr.setRequestHeader('content-type', opts.type);
      if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.upload.onprogress = (e) => opts.onProgress && opts.onProgress(e.loaded, e.total);
      xhr.onload = () => resolve({ status: xhr.status, data: parseText(xhr.responseText), statusText: xhr.statusText });
      xhr.onerror = () => reject(new ApiError(0, 'network', 'Cannot reach the node (upload failed).'));
      xhr.send(blob);
    });
    if (status === 401 && attempt < 3) {
      if (opts.onProgress) opts.onProgress(0, blob.size);
      await askToken(attempt > 0 || !!token);
      continue;
    }
    if (status < 200 || status >= 300) throw errorFrom(status, data, statusText);
    return { status, data };
  }
}

/**
 * el('a', {href: '/', class: 'x', onclick: fn, 'data-peer': id}, 'text', child, [more]).
 * Attributes set to null/undefined/false are left out; true sets an empty attribute.
 */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'style' && typeof value === 'object') Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

// ---- formatting ----

/** 12345678 -> "11.8 MiB". */
function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  const s = i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1);
  return `${n < 0 ? '-' : ''}${s} ${units[i]}`;
}

function fmtRate(bytesPerSec) {
  return `${fmtBytes(Math.max(0, bytesPerSec || 0))}/s`;
}

/** 65 -> "1:05", 3725 -> "1:02:05". */
function fmtDuration(secs) {
  if (secs === null || secs === undefined || !isFinite(secs)) return '–';
  const t = Math.max(0, Math.round(secs));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Uptime with days when long: "3d 4:05:06". */
function fmtUptime(secs) {
  if (!isFinite(secs)) return '–';
  const d = Math.floor(secs / 86400);
  return d ? `${d}d ${fmtDuration(secs % 86400)}` : fmtDuration(secs);
}

/** First 8 hex characters of a video id. */
function shortVideo(id) {
  return String(id || '').slice(0, 8);
}

/** Last 6 characters of a peer id (the first ones are the same "12D3KooW" for all). */
function shortPeer(id) {
  return String(id || '').slice(-6);
}

/** A peer id as a <span> with its short form and the full id as a tooltip. */
function peerEl(id) {
  return el('span', { class: 'mono peer', title: id }, shortPeer(id));
}

/** A video id linking to its page, shown short with the full id as a tooltip. */
function videoEl(id) {
  return el('a', { class: 'mono', href: `/ui/videos/${id}`, title: id }, shortVideo(id));
}

/** The 64-hex video id in `/ui/videos/<id>` or `/ui/play/<id>`, or null. */
function videoIdFromPath() {
  const m = location.pathname.match(/\/([0-9a-fA-F]{64})\/?$/);
  return m ? m[1].toLowerCase() : null;
}

/** Distinct holders of each fragment (its announcing peers, plus this node if held). */
function replicaCounts(video) {
  return (video.fragments || []).map((f) => new Set(f.peers || []).size + (f.held ? 1 : 0));
}

// ---- page furniture ----

/** Fills <nav id="nav"> with the links to every page, marking the current one. */
function nav() {
  const bar = document.getElementById('nav');
  if (!bar) return;
  const path = location.pathname;
  const links = [
    ['Home', '/', path === '/' || path === '/index.html'],
    ['Swarm', '/ui/swarm', path.startsWith('/ui/swarm')],
    ['Videos', '/ui/videos', path.startsWith('/ui/videos') || path.startsWith('/ui/play')],
    ['API', '/swagger-ui/', false],
  ];
  bar.replaceChildren(
    el('a', { class: 'brand', href: '/' }, 'vidswarm'),
    ...links.map(([text, href, current]) =>
      el('a', { class: 'link', href, 'aria-current': current ? 'page' : null }, text)),
    el('span', { class: 'spacer' }),
    el('span', { class: 'token', id: 'token-badge' }));
  refreshTokenBadge();
}

/** Shows whether a token is stored, with a way to forget it. */
function refreshTokenBadge() {
  const badge = document.getElementById('token-badge');
  if (!badge) return;
  badge.replaceChildren(getToken()
    ? el('span', {}, 'token stored', el('button', { class: 'small', type: 'button', onclick: () => setToken('') }, 'forget'))
    : '');
}

/** Replaces a container's content with an error notice (the API's message, never blank). */
function showError(target, err) {
  const message = err && err.message ? err.message : String(err);
  target.replaceChildren(el('div', { class: 'error' }, message));
}

/** A page-wide notice under the nav, for errors nothing else caught. */
function banner(message, kind = 'error') {
  let box = document.getElementById('banner');
  if (!box) {
    box = el('div', { id: 'banner' });
    const navBar = document.getElementById('nav');
    if (navBar) navBar.after(box); else document.body.prepend(box);
  }
  box.replaceChildren(message ? el('div', { class: kind }, message) : '');
}

window.addEventListener('unhandledrejection', (e) => {
  banner(e.reason && e.reason.message ? e.reason.message : String(e.reason));
});
window.addEventListener('error', (e) => banner(`Page error: ${e.message}`));

/**
 * Opens the node's event stream and calls onEvent(obj) for each event (obj.type is set).
 * onState('open' | 'error') tells whether the stream is up; EventSource reconnects by itself.
 */
function events(onEvent, onState) {
  const source = new EventSource('/events');
  const handle = (msg) => {
    let obj;
    try { obj = JSON.parse(msg.data); } catch (_) { return; }
    if (!obj || typeof obj !== 'object') return;
    if (!obj.type) obj.type = msg.type === 'message' ? 'event' : msg.type;
    try { onEvent(obj); } catch (e) { console.error('event handler failed', e); }
  };
  // Named events only reach listeners for their name; unnamed ones reach onmessage.
  for (const type of EVENT_TYPES) source.addEventListener(type, handle);
  source.onmessage = handle;
  source.onopen = () => onState && onState('open');
  source.onerror = () => onState && onState('error');
  return source;
}

document.addEventListener('DOMContentLoaded', nav);

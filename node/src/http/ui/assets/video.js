// Video page: facts about one video and a live fragment x holder grid (this node first, then each
// peer holding any fragment), with fetch-all / fetch-selected and the fetch's state.
'use strict';

const $ = (id) => document.getElementById(id);
const videoId = videoIdFromPath();

let manifest = null;
let count = 0; // fragments in the video
let held = new Set(); // fragments this node holds
let holders = new Map(); // peer id -> Set of fragments it announced
const gone = new Set(); // holders whose connection dropped (kept, dimmed, until the node forgets them)
const chunks = new Map(); // fragment -> Set of chunk indices received so far
const selected = new Set(); // fragments picked by clicking column headers
let selfCells = []; // this node's <td> per fragment, updated in place
let selfLabel = null;
let pinned = null; // whether this node keeps the video whatever its disk budget; null: not held

// ---- loading ----

function notFound() {
  $('loading').hidden = true;
  $('video').hidden = true;
  $('not-found').hidden = false;
  $('title').textContent = 'Video not found';
  document.title = 'vidswarm · Video not found';
}

async function start() {
  if (!videoId) return notFound();
  try {
    manifest = await api(`/api/v1/videos/${videoId}/manifest`);
  } catch (e) {
    if (e.status === 404) return notFound();
    $('loading').hidden = true;
    return showError($('failure'), e);
  }
  count = (manifest.fragments || []).length;
  const name = (manifest.source && manifest.source.name) || shortVideo(videoId);
  $('title').textContent = name;
  document.title = `vidswarm · ${name}`;
  $('play-link').href = `/ui/play/${videoId}`;
  $('playlist-link').href = `/api/v1/videos/${videoId}/playlist.m3u8`;
  $('manifest-link').href = `/api/v1/videos/${videoId}/manifest`;
  $('loading').hidden = true;
  $('video').hidden = false;
  await refresh();
  pollFetch();
  setInterval(refresh, 10000);
}

/** Replaces what the grid shows with the node's view from /api/v1/videos. */
async function refresh() {
  try {
    const { videos = [] } = await api('/api/v1/videos');
    const v = videos.find((x) => x.video_id === videoId);
    pinned = v ? !!v.pinned : null;
    held = new Set();
    holders = new Map();
    for (const f of (v && v.fragments) || []) {
      if (f.held) held.add(f.index);
      for (const p of f.peers || []) {
        if (!holders.has(p)) holders.set(p, new Set());
        holders.get(p).add(f.index);
      }
    }
    $('failure').replaceChildren();
  } catch (e) {
    showError($('failure'), e);
  }
  render();
}

let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 1000);
}

// ---- rendering ----

function renderFacts() {
  const src = manifest.source || {};
  const replicas = Array.from({ length: count }, (_, i) =>
    [...holders.values()].filter((s) => s.has(i)).length + (held.has(i) ? 1 : 0));
  $('facts').replaceChildren(el('dl', { class: 'facts' },
    el('dt', {}, 'Video id'), el('dd', { class: 'mono', id: 'video-id' }, videoId),
    el('dt', {}, 'Duration'), el('dd', { id: 'duration' }, fmtDuration(src.duration)),
    el('dt', {}, 'Size'), el('dd', { id: 'size' }, fmtBytes(src.size ?? manifest.fragments.reduce((a, f) => a + (f.size || 0), 0))),
    el('dt', {}, 'Fragments'), el('dd', {}, `${count}, ${held.size} held here`),
    el('dt', {}, 'Replicas'), el('dd', {}, count ? `${Math.min(...replicas)} at least, ${(replicas.reduce((a, b) => a + b, 0) / count).toFixed(1)} on average` : '–'),
    el('dt', {}, 'Kept here'), el('dd', { id: 'kept' }, pinned === null ? 'not held'
      : pinned ? 'pinned (published here or fetched on request: never evicted)'
        : 'evictable (brought by auto-fetch or playback: removed first when the disk budget is reached)'),
    el('dt', {}, 'Mode'), el('dd', {}, manifest.mode || '–'),
    manifest.codecs ? [el('dt', {}, 'Codecs'), el('dd', { class: 'mono' }, manifest.codecs)] : null,
    el('dt', {}, 'Chunk size'), el('dd', {}, fmtBytes(manifest.chunk_size))));
}

function fragTitle(i) {
  const f = manifest.fragments[i] || {};
  return `fragment ${i}: ${fmtBytes(f.size)}${typeof f.duration === 'number' ? `, ${f.duration.toFixed(1)} s from ${fmtDuration(f.start)}` : ''}`;
}

/** Rebuilds the whole grid: called when the set of holders changes (rare). */
function render() {
  renderFacts();
  const columns = Array.from({ length: count }, (_, i) => i);
  const head = el('thead', {}, el('tr', {},
    el('th', { class: 'corner' }, 'fragment'),
    columns.map((i) => el('th', {
      'data-fragment': i, class: selected.has(i) ? 'selected' : null, title: `${fragTitle(i)} (click to select)`,
      onclick: () => toggleSelect(i),
    }, String(i)))));

  selfLabel = el('span', { class: 'muted' });
  selfCells = columns.map((i) => el('td', { 'data-fragment': i }));
  const selfRow = el('tr', { class: 'self', id: 'row-self' }, el('th', {}, 'this node ', selfLabel), selfCells);

  const peers = [...holders.entries()].filter(([, s]) => s.size)
    .sort((a, b) => b[1].size - a[1].size || a[0].localeCompare(b[0]));
  const peerRows = peers.map(([peer, set]) => el('tr', { 'data-peer': peer, class: gone.has(peer) ? 'gone' : null },
    el('th', {}, peerEl(peer), el('span', { class: 'muted' }, ` ${set.size}/${count}`)),
    columns.map((i) => el('td', {
      'data-fragment': i,
      class: [set.has(i) ? 'held' : '', selected.has(i) ? 'selected' : ''].join(' ').trim() || null,
    }))));

  $('grid').replaceChildren(head, el('tbody', {}, selfRow, peerRows));
  columns.forEach(updateSelfCell);
  updateSelfLabel();
}

/** This node's cell: held, or fetching with the share of chunks received as a CSS fill. */
function updateSelfCell(i) {
  const td = selfCells[i];
  if (!td) return;
  const got = chunks.get(i);
  const total = ((manifest.fragments[i] || {}).chunks || []).length || 1;
  const fetching = !held.has(i) && got && got.size > 0;
  td.classList.toggle('held', held.has(i));
  td.classList.toggle('fetching', !!fetching);
  td.classList.toggle('selected', selected.has(i));
  if (fetching) {
    const pct = Math.min(100, Math.round((got.size / total) * 100));
    td.style.setProperty('--progress', `${pct}%`);
    td.title = `${fragTitle(i)}: fetching, ${got.size}/${total} chunks`;
  } else {
    td.style.removeProperty('--progress');
    td.title = `${fragTitle(i)}: ${held.has(i) ? 'held' : 'not held'} here`;
  }
}

function updateSelfLabel() {
  if (selfLabel) selfLabel.textContent = ` ${held.size}/${count}`;
}

// ---- selection and fetching ----

function toggleSelect(i) {
  if (selected.has(i)) selected.delete(i); else selected.add(i);
  for (const node of $('grid').querySelectorAll(`[data-fragment="${i}"]`)) node.classList.toggle('selected', selected.has(i));
  updateSelectionUi();
}

function updateSelectionUi() {
  $('fetch-selected').disabled = selected.size === 0;
  $('clear-selection').disabled = selected.size === 0;
  $('selection-text').textContent = selected.size
    ? `Selected: ${[...selected].sort((a, b) => a - b).join(', ')}`
    : 'Click fragment numbers to select them.';
}

$('clear-selection').addEventListener('click', () => {
  for (const i of [...selected]) toggleSelect(i);
});

async function startFetch(fragments) {
  const box = $('fetch-state');
  box.replaceChildren(el('div', { class: 'notice' }, 'Starting the fetch…'));
  try {
    await api(`/api/v1/videos/${videoId}/fetch`, fragments ? { method: 'POST', json: { fragments } } : { method: 'POST' });
    if (fragments) for (const i of [...selected]) toggleSelect(i);
    pollFetch();
  } catch (e) {
    showError(box, e);
  }
}

$('fetch-all').addEventListener('click', () => startFetch(null));
$('fetch-selected').addEventListener('click', () => startFetch([...selected].sort((a, b) => a - b)));

// One polling loop at a time; SSE fetch events only kick it.
let polling = false;
async function pollFetch() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      let s;
      try {
        s = await api(`/api/v1/videos/${videoId}/fetch`);
      } catch (e) {
        if (e.status !== 404) showError($('fetch-state'), e);
        else $('fetch-state').replaceChildren(); // no fetch yet: nothing to show
        return;
      }
      showFetch(s);
      if (s.state !== 'running') { endFetch(); return; }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    polling = false;
  }
}

function showFetch(s) {
  const done = (s.done || []).length;
  const wanted = (s.wanted || []).length;
  const text = `${done}/${wanted} fragments, ${fmtBytes(s.bytes || 0)}`;
  const kind = s.state === 'failed' ? 'error' : s.state === 'completed' ? 'success' : 'notice';
  $('fetch-state').replaceChildren(el('div', { class: kind, id: 'fetch-status', 'data-state': s.state },
    el('strong', {}, s.state), `: ${text}`, s.error ? ` · ${s.error}` : '',
    s.state === 'running' && wanted ? el('progress', { value: done, max: wanted }) : null));
  $('fetch-all').disabled = s.state === 'running';
  $('fetch-selected').disabled = s.state === 'running' || selected.size === 0;
}

/** A fetch ended: partial progress of fragments not stored will not move any more. */
function endFetch() {
  for (const i of [...chunks.keys()]) if (!held.has(i)) chunks.delete(i);
  selfCells.forEach((_, i) => updateSelfCell(i));
  $('fetch-all').disabled = false;
  updateSelectionUi();
  refreshSoon();
}

$('delete-video').addEventListener('click', async () => {
  if (!window.confirm('Delete this video from this node? Other nodes keep their copies.')) return;
  const box = $('delete-state');
  try {
    const r = await api(`/api/v1/videos/${videoId}`, { method: 'DELETE' });
    box.replaceChildren(el('div', { class: 'success', id: 'deleted' },
      `Deleted: ${r.fragments_removed} fragment(s), ${fmtBytes(r.bytes_freed)} freed.`));
    await refresh();
  } catch (e) {
    showError(box, e);
  }
});

// ---- live updates ----

function onEvent(e) {
  if (!manifest) return;
  const mine = String(e.video || '').toLowerCase() === videoId;
  switch (e.type) {
    case 'announcement_received':
      if (!mine) return;
      if (!holders.has(e.from)) holders.set(e.from, new Set());
      for (const i of e.fragments || []) holders.get(e.from).add(i);
      gone.delete(e.from);
      render();
      refreshSoon();
      break;
    case 'fragment_stored': {
      if (!mine) return;
      const i = e.fragment ?? e.index;
      held.add(i);
      chunks.delete(i);
      updateSelfCell(i);
      updateSelfLabel();
      refreshSoon();
      break;
    }
    case 'chunk_received': {
      if (!mine || held.has(e.fragment)) return;
      if (!chunks.has(e.fragment)) chunks.set(e.fragment, new Set());
      chunks.get(e.fragment).add(e.chunk);
      updateSelfCell(e.fragment);
      break;
    }
    case 'peer_disconnected':
      if (holders.has(e.peer)) { gone.add(e.peer); markGone(e.peer); refreshSoon(); }
      break;
    case 'peer_connected':
      if (gone.delete(e.peer)) markGone(e.peer);
      break;
    case 'peer_leaving':
      if (mine && holders.delete(e.peer)) { render(); refreshSoon(); }
      break;
    case 'fetch_started':
    case 'fetch_completed':
    case 'fetch_failed':
      if (mine) pollFetch();
      break;
    default:
  }
}

function markGone(peer) {
  const row = [...$('grid').querySelectorAll('tr[data-peer]')].find((tr) => tr.dataset.peer === peer);
  if (row) row.classList.toggle('gone', gone.has(peer));
}

events(onEvent);
start();

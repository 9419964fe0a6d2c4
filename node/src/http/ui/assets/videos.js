// Videos page: what this node holds and how replicated it is, what the swarm announces (with a
// fetch button), and the upload of a split (manifest + fragments) from the browser.
'use strict';

const $ = (id) => document.getElementById(id);
const UPLOAD_PARALLEL = 2;

// ---- lists ----

const fetchState = new Map(); // video id -> status <span>, kept across re-renders

function heldTable(videos) {
  if (!videos.length) return el('p', { class: 'empty' }, 'No videos held yet: upload a split below or fetch an announced one.');
  return el('div', { class: 'scroll' }, el('table', { class: 'data', id: 'videos' },
    el('thead', {}, el('tr', {},
      el('th', {}, 'Name'), el('th', {}, 'Id'), el('th', { class: 'num' }, 'Duration'),
      el('th', { class: 'num' }, 'Size'), el('th', { class: 'num' }, 'Held here'),
      el('th', { class: 'num', title: 'distinct holders of the least replicated fragment (this node included), and the average' }, 'Replicas (min · avg)'),
      el('th', {}, ''))),
    el('tbody', {}, videos.map((v) => {
      const frags = v.fragments || [];
      const held = frags.filter((f) => f.held).length;
      const counts = replicaCounts(v);
      const min = counts.length ? Math.min(...counts) : 0;
      const avg = counts.length ? counts.reduce((a, b) => a + b, 0) / counts.length : 0;
      return el('tr', { 'data-video': v.video_id },
        el('td', {}, el('a', { href: `/ui/videos/${v.video_id}` }, v.name || '(unnamed)')),
        el('td', {}, videoEl(v.video_id)),
        el('td', { class: 'num' }, fmtDuration(v.duration)),
        el('td', { class: 'num' }, fmtBytes(v.size)),
        el('td', { class: 'num held-count' }, `${held}/${frags.length}`),
        el('td', { class: 'num replicas' }, el('strong', {}, String(min)), el('span', { class: 'muted' }, ` · ${avg.toFixed(1)}`)),
        el('td', {}, el('a', { href: `/ui/videos/${v.video_id}` }, 'details'), ' · ',
          el('a', { href: `/ui/play/${v.video_id}` }, '▶ play')));
    }))));
}

function announcedTable(ids) {
  if (!ids.length) return el('p', { class: 'empty' }, 'Nothing announced that this node lacks.');
  return el('table', { class: 'data', id: 'announced' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Video id'), el('th', {}, ''), el('th', {}, 'State'))),
    el('tbody', {}, ids.map((id) => {
      if (!fetchState.has(id)) fetchState.set(id, el('span', { class: 'fetch-state' }));
      return el('tr', { 'data-video': id },
        el('td', { class: 'mono', title: id }, id),
        el('td', {}, el('button', { type: 'button', class: 'fetch', onclick: () => startFetch(id) }, 'Fetch')),
        el('td', {}, fetchState.get(id)));
    })));
}

async function load() {
  try {
    const { videos = [], announced = [] } = await api('/api/v1/videos');
    const heldIds = new Set(videos.map((v) => v.video_id));
    $('held').replaceChildren(heldTable(videos));
    $('announced-box').replaceChildren(announcedTable(announced.filter((id) => !heldIds.has(id))));
  } catch (e) {
    showError($('held'), e);
    $('announced-box').replaceChildren();
  }
}

// Coalesce bursts of events into at most one reload a second (a steady stream still reloads).
let reloadTimer = null;
function reloadSoon() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 1000);
}

async function startFetch(id) {
  const box = fetchState.get(id);
  box.replaceChildren('starting…');
  try {
    await api(`/api/v1/videos/${id}/fetch`, { method: 'POST' });
    box.replaceChildren('started · ', el('a', { href: `/ui/videos/${id}` }, 'follow it'));
    watchFetch(id);
  } catch (e) {
    box.replaceChildren(el('span', { class: 'error-text' }, e.message));
  }
}

/** Polls the fetch's state into its row until it ends. */
async function watchFetch(id) {
  const box = fetchState.get(id);
  try {
    const s = await api(`/api/v1/videos/${id}/fetch`);
    const link = el('a', { href: `/ui/videos/${id}` }, 'details');
    const progress = `${(s.done || []).length}/${(s.wanted || []).length} fragments, ${fmtBytes(s.bytes || 0)}`;
    if (s.state === 'running') {
      box.replaceChildren(`running: ${progress} · `, link);
      setTimeout(() => watchFetch(id), 1000);
    } else {
      box.replaceChildren(s.state === 'failed' ? `failed: ${s.error || 'unknown error'} · ` : `${s.state}: ${progress} · `, link);
      reloadSoon();
    }
  } catch (e) {
    box.replaceChildren(el('span', { class: 'error-text' }, e.message));
  }
}

// ---- upload of a split ----

let split = null; // {manifest, text, files: Map index -> File, problems: [string]}

const dirOf = (f) => (f.webkitRelativePath || '').split('/').slice(0, -1).join('/');

/** Reads the manifest among the picked files and pairs each fragment with its file. */
async function pickFiles(fileList) {
  const files = [...fileList];
  $('upload-result').replaceChildren();
  split = null;
  $('upload-start').disabled = true;
  const manifests = files.filter((f) => f.name === 'manifest.json')
    .sort((a, b) => dirOf(a).split('/').length - dirOf(b).split('/').length);
  if (!manifests.length) {
    showError($('upload-summary'), files.length ? new Error('No manifest.json among the selected files.') : new Error('Nothing selected.'));
    return;
  }
  const mf = manifests[0];
  let text, manifest;
  try {
    text = await mf.text();
    manifest = JSON.parse(text);
    if (!Array.isArray(manifest.fragments)) throw new Error('it has no "fragments" list');
  } catch (e) {
    showError($('upload-summary'), new Error(`manifest.json is not a valid manifest: ${e.message}`));
    return;
  }
  // Prefer files beside the manifest (a folder may hold several splits), then any of that name.
  const dir = dirOf(mf);
  const byName = (name) => files.find((f) => f.name === name && dirOf(f) === dir) || files.find((f) => f.name === name);
  const paired = new Map();
  const problems = [];
  for (const [i, frag] of manifest.fragments.entries()) {
    const index = frag.index ?? i;
    const file = byName(frag.name);
    if (!file) problems.push(`${frag.name}: not selected`);
    else {
      if (frag.size !== undefined && file.size !== frag.size) problems.push(`${frag.name}: ${file.size} bytes, the manifest says ${frag.size}`);
      paired.set(index, file);
    }
  }
  split = { manifest, text, files: paired, problems };
  const src = manifest.source || {};
  $('upload-summary').replaceChildren(
    el('dl', { class: 'facts' },
      el('dt', {}, 'Video'), el('dd', {}, src.name || '(unnamed)'),
      el('dt', {}, 'Duration'), el('dd', {}, fmtDuration(src.duration)),
      el('dt', {}, 'Fragments'), el('dd', {}, `${manifest.fragments.length}, ${paired.size} found among the files`),
      el('dt', {}, 'Size'), el('dd', {}, fmtBytes(manifest.fragments.reduce((a, f) => a + (f.size || 0), 0)))),
    // replaceChildren would print a null as the text "null".
    ...(problems.length ? [el('div', { class: 'notice' }, el('strong', {}, 'Check: '), problems.slice(0, 8).join('; '),
      problems.length > 8 ? ` … and ${problems.length - 8} more` : '')] : []));
  $('upload-start').disabled = false;
}

function setProgress(loaded, total, doneCount, count) {
  const bar = $('upload-progress');
  bar.hidden = false;
  bar.max = Math.max(total, 1);
  bar.value = Math.min(loaded, total);
  $('upload-text').textContent = `${doneCount}/${count} fragments · ${fmtBytes(loaded)} of ${fmtBytes(total)}`;
}

async function runUpload() {
  if (!split) return;
  const { manifest, text, files } = split;
  const result = $('upload-result');
  $('upload-start').disabled = true;
  result.replaceChildren(el('div', { class: 'notice' }, 'Sending the manifest…'));
  let answer;
  try {
    answer = await api('/api/v1/videos', { method: 'POST', body: text, type: 'application/json' });
  } catch (e) {
    showError(result, e);
    $('upload-start').disabled = false;
    return;
  }
  const id = answer.video_id;
  const link = el('a', { href: `/ui/videos/${id}`, id: 'upload-link' }, `video ${shortVideo(id)}`);
  const missing = answer.missing || [];
  const jobs = [];
  const errors = [];
  for (const index of missing) {
    const frag = manifest.fragments.find((f) => f.index === index) || manifest.fragments[index];
    const file = files.get(index);
    if (file) jobs.push({ index, file });
    else errors.push(`fragment ${index} (${frag ? frag.name : '?'}): file not selected`);
  }
  const total = jobs.reduce((a, j) => a + j.file.size, 0);
  const loaded = new Map();
  let done = 0;
  const update = () => setProgress([...loaded.values()].reduce((a, b) => a + b, 0), total, done, jobs.length);
  if (jobs.length) update();
  result.replaceChildren(el('div', { class: 'notice' }, `Uploading ${jobs.length} fragment${jobs.length === 1 ? '' : 's'} to `, link, '…'));

  // A small pool: one or two PUTs at a time keep the node's disk and the browser busy enough.
  const queue = [...jobs];
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      try {
        await upload(`/api/v1/videos/${id}/fragments/${job.index}`, job.file, {
          type: 'video/mp4',
          onProgress: (n) => { loaded.set(job.index, n); update(); },
        });
        loaded.set(job.index, job.file.size);
      } catch (e) {
        loaded.set(job.index, 0);
        errors.push(`fragment ${job.index}: ${e.message}`);
      }
      done++;
      update();
    }
  };
  await Promise.all(Array.from({ length: UPLOAD_PARALLEL }, worker));

  const stored = jobs.length - errors.filter((m) => !m.endsWith('file not selected')).length;
  const summary = missing.length === 0
    ? el('div', { class: 'success' }, 'This node already held every fragment of ', link, '.')
    : errors.length
      ? el('div', { class: 'error' }, `${errors.length} fragment${errors.length === 1 ? '' : 's'} not uploaded (${stored} stored) for `, link, ': ',
        el('ul', {}, errors.map((m) => el('li', {}, m))))
      : el('div', { class: 'success' }, `Stored ${stored} fragment${stored === 1 ? '' : 's'}: `, link, ' · ',
        el('a', { href: `/ui/play/${id}` }, '▶ play'));
  result.replaceChildren(summary);
  $('upload-start').disabled = false;
  load();
}

$('upload-dir').addEventListener('change', (e) => pickFiles(e.target.files));
$('upload-files').addEventListener('change', (e) => pickFiles(e.target.files));
$('upload-start').addEventListener('click', runUpload);

events((e) => {
  if (['fragment_stored', 'fetch_completed', 'fetch_failed', 'announcement_received', 'peer_leaving', 'peer_disconnected'].includes(e.type)) reloadSoon();
});
load();
setInterval(load, 10000);

// The player: Media Source Extensions over the video's fragments. Each fragment is a fragmented
// MP4 that starts with its own init segment and its own timestamps from zero, so it is appended
// at `timestampOffset = fragment.start`, as its bytes come. Fragments are asked of this node in
// playback order from the playhead; the node fetches one it does not hold yet first and sends
// each chunk once it is verified (the browser never gets an unverified byte), so playback starts
// before the whole first fragment is here. A seek moves the playhead; the node's
// fetch follows it. Why MSE and not HLS in the page: docs/playback.md.
'use strict';

(async () => {
  nav();
  const id = videoIdFromPath();
  const video = document.getElementById('player');
  const message = document.getElementById('message');
  const strip = document.getElementById('strip');
  const statsEl = document.getElementById('stats');
  // Fragments kept buffered ahead of the playhead, beside the one playing.
  const AHEAD = 2;

  // What the tests and the stats box read.
  // `ready` once the media source is open and the listeners below are in place.
  const stats = { ready: false, firstFrameMs: null, stalls: 0, late: 0, appended: [], errors: [] };
  window.vidswarmPlayer = stats;

  const say = (text, kind = 'notice') => {
    message.className = kind;
    message.replaceChildren(el('p', {}, text));
  };

  if (!id) {
    say('No video id in this address.', 'error');
    return;
  }
  let manifest;
  try {
    manifest = await loadManifest(id);
  } catch (e) {
    if (e.status === 404) {
      document.getElementById('title').textContent = 'Video not found';
      say(`This node neither holds video ${id} nor heard of it from a peer.`, 'error');
    } else {
      showError(message, e);
    }
    return;
  }
  document.getElementById('title').textContent = manifest.source.name;
  document.title = `vidswarm · ${manifest.source.name}`;
  const frags = manifest.fragments;
  const type = `video/mp4; codecs="${manifest.codecs || ''}"`;
  if (!manifest.codecs || !window.MediaSource || !MediaSource.isTypeSupported(type)) {
    const why = !manifest.codecs
      ? 'This video was split before vidswarm made fragments playable in a browser (or is a loose upload).'
      : `This browser cannot play ${manifest.codecs} through Media Source Extensions.`;
    message.className = 'error';
    message.replaceChildren(el('p', {}, why, ' Play it in a desktop player (mpv, VLC, ffplay) from ',
      el('a', { href: `/api/v1/videos/${id}/playlist.m3u8` }, 'its HLS playlist'), '.'));
    video.remove();
    return;
  }

  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((ok) => source.addEventListener('sourceopen', ok, { once: true }));
  source.duration = frags.reduce((end, f) => Math.max(end, f.start + f.duration), 0);
  const buffer = source.addSourceBuffer(type);
  buffer.mode = 'segments';

  const updated = () => new Promise((ok, fail) => {
    buffer.addEventListener('updateend', ok, { once: true });
    buffer.addEventListener('error', fail, { once: true });
  });

  // The fragment that holds time `t`.
  const fragmentAt = (t) => {
    let i = 0;
    while (i + 1 < frags.length && frags[i + 1].start <= t + 0.001) i++;
    return i;
  };
  // Whether fragment `i` is (still) in the browser's buffer: the browser may evict old data.
  const isBuffered = (i) => {
    const f = frags[i];
    const b = buffer.buffered;
    for (let r = 0; r < b.length; r++) {
      if (b.start(r) <= f.start + 0.1 && b.end(r) >= f.start + f.duration - 0.25) return true;
    }
    return false;
  };

  let loading = null; // { index, abort }
  async function append(i) {
    const abort = new AbortController();
    loading = { index: i, abort };
    try {
      const response = await fetch(`/api/v1/videos/${id}/fragments/${i}`, { signal: abort.signal });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.message || `fragment ${i}: HTTP ${response.status}`);
      }
      if (buffer.updating) await updated();
      buffer.timestampOffset = frags[i].start;
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (buffer.updating) await updated();
        buffer.appendBuffer(value);
        await updated();
      }
      stats.appended.push(i);
    } catch (e) {
      // Cut off mid-fragment: reset the parser, so the next fragment starts clean.
      try {
        if (source.readyState === 'open') buffer.abort();
      } catch (_) { /* nothing to reset */ }
      throw e;
    } finally {
      loading = null;
    }
  }

  // Keeps the playing fragment and AHEAD more buffered, in playback order; runs again on every
  // seek and as playback moves.
  let pumping = false;
  let again = false;
  async function pump() {
    if (pumping) { again = true; return; }
    pumping = true;
    try {
      do {
        again = false;
        const at = fragmentAt(video.currentTime);
        const last = Math.min(frags.length - 1, at + AHEAD);
        for (let i = at; i <= last && !again; i++) {
          if (isBuffered(i)) continue;
          try {
            await append(i);
          } catch (e) {
            // A seek gave up this load: go round again from the new position.
            if (e.name === 'AbortError') break;
            throw e;
          }
        }
        if (!again && frags.every((_, i) => isBuffered(i)) && source.readyState === 'open') {
          source.endOfStream();
        }
      } while (again);
    } catch (e) {
      if (e.name !== 'AbortError') {
        stats.errors.push(String(e.message || e));
        say(`Playback stopped: ${e.message || e}`, 'error');
      }
    } finally {
      pumping = false;
    }
    draw();
  }

  // Loading starts when the viewer presses play (or seeks): time to first frame is measured
  // from there to the `playing` event.
  let started = false;
  let playClicked = null;
  video.addEventListener('play', () => {
    if (playClicked === null) playClicked = performance.now();
    started = true;
    pump();
  });
  video.addEventListener('playing', () => {
    if (stats.firstFrameMs === null && playClicked !== null) {
      stats.firstFrameMs = Math.round(performance.now() - playClicked);
      report({ event: 'first_frame', millis: stats.firstFrameMs });
    }
    draw();
  });
  video.addEventListener('waiting', () => {
    if (stats.firstFrameMs === null) return;
    stats.stalls += 1;
    // Waiting on a fragment that was not here in time: it missed its deadline.
    if (!isBuffered(fragmentAt(video.currentTime))) stats.late += 1;
    report({ event: 'stall' });
  });
  video.addEventListener('seeking', () => {
    started = true;
    const at = fragmentAt(video.currentTime);
    // A load of a fragment the viewer left behind gives way to the one they went to.
    if (loading && (loading.index < at || loading.index > at + AHEAD)) loading.abort.abort();
    again = true;
    pump();
  });
  video.addEventListener('timeupdate', () => {
    if (started && !pumping) pump();
    drawStats();
  });
  video.addEventListener('error', () => {
    const e = video.error;
    stats.errors.push(e ? `media error ${e.code}: ${e.message}` : 'media error');
    say(`The browser could not play this: ${e ? e.message || e.code : 'unknown error'}`, 'error');
  });

  function report(body) {
    // Viewer quality for /metrics; best effort, never in the way of playback.
    fetch(`/api/v1/videos/${id}/playback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).catch(() => {});
  }

  // The strip: one block per fragment, held here / buffered in the browser / playing.
  let held = new Set();
  function draw() {
    const playing = fragmentAt(video.currentTime);
    strip.replaceChildren(...frags.map((f, i) => el('span', {
      class: ['frag', held.has(i) && 'held', isBuffered(i) && 'buffered',
        i === playing && 'playing', loading && loading.index === i && 'fetching']
        .filter(Boolean).join(' '),
      title: `fragment ${i}: ${fmtDuration(f.start)} - ${fmtDuration(f.start + f.duration)}`,
      style: `flex-grow: ${Math.max(f.duration, 0.1)}`,
      'data-fragment': String(i),
    })));
    drawStats();
  }
  function drawStats() {
    const rows = [
      ['Time to first frame', stats.firstFrameMs === null ? '-' : `${stats.firstFrameMs} ms`],
      ['Stalls', String(stats.stalls)],
      ['Fragments late', String(stats.late)],
      ['Held here', `${held.size} / ${frags.length}`],
      ['Codecs', manifest.codecs],
    ];
    statsEl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }
  async function refreshHeld() {
    try {
      const list = await api('/api/v1/videos');
      const v = (list.videos || []).find((x) => x.video_id === id);
      held = new Set(v ? v.fragments.filter((f) => f.held).map((f) => f.index) : []);
    } catch (_) { /* the next round tries again */ }
    draw();
  }
  refreshHeld();
  setInterval(refreshHeld, 1000);
  stats.ready = true;
})();

// The manifest: the node answers with its own, or asks the swarm when a peer announced the video.
function loadManifest(id) {
  return api(`/api/v1/videos/${id}/manifest`);
}

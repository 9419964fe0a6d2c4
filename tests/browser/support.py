"""What the browser tests share: nodes as processes on 127.0.0.1, test videos, and waiting with a
deadline."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


# What the player page shows of itself (`window.vidswarmPlayer`, see player.js) and of its video.
PLAYER_STATE = """
    const v = document.getElementById('player');
    const p = window.vidswarmPlayer || {};
    return {t: v.currentTime, paused: v.paused, error: v.error && v.error.message,
            errors: p.errors || [], firstFrameMs: p.firstFrameMs, stalls: p.stalls};"""


def log(msg):
    print(f"test-browser: {msg}", file=sys.stderr, flush=True)


def wait_until(what, check, limit=60.0, every=0.1):
    """Polls `check` until it returns something truthy; fails naming `what` after `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting until {what}")
        time.sleep(every)


def http_json(url, method="GET", body=None, content_type="application/json"):
    req = urllib.request.Request(url, method=method, data=body)
    if body is not None:
        req.add_header("content-type", content_type)
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
        return json.loads(data) if data else None


class Node:
    """A `vidswarm node` process on 127.0.0.1 with its HTTP API on a free port."""

    def __init__(self, bin, data, *extra):
        self.log = open(f"{data}.log", "w")
        self.proc = subprocess.Popen(
            [bin, "node", "--data", data, "--listen", "/ip4/127.0.0.1/tcp/0",
             "--http", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.addr = self.proc.stdout.readline().strip()
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise AssertionError(f"node did not start: {self.addr!r} {self.url!r}")

    def api(self, path, **kw):
        return http_json(self.url + path, **kw)

    def held(self, video):
        for v in self.api("/api/v1/videos")["videos"]:
            if v["video_id"] == video:
                return sum(1 for f in v["fragments"] if f["held"])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def make_video(path, seconds, size, rate):
    """A synthetic H.264/AAC video (ffmpeg's test pattern and a tone), made once and kept."""
    if path.exists():
        return
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-b:v", rate, "-maxrate", rate,
         "-bufsize", rate, "-g", "60", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path) + ".tmp.mp4"], check=True)
    os.replace(str(path) + ".tmp.mp4", path)


def split(bin, video, out, fragments):
    if not (out / "manifest.json").exists():
        subprocess.run([bin, "split", str(video), "--out", str(out), "--fragments",
                        str(fragments)], check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "manifest.json").read_text())


def upload(node, split_dir, manifest):
    """Uploads a split to `node` over its HTTP API (what `vidswarm publish` does)."""
    vid = manifest["video_id"]
    node.api("/api/v1/videos", method="POST", body=(split_dir / "manifest.json").read_bytes())
    for f in manifest["fragments"]:
        node.api(f"/api/v1/videos/{vid}/fragments/{f['index']}", method="PUT",
                 body=(split_dir / f["name"]).read_bytes(), content_type="video/mp4")


def start_pair(args, split_dir, manifest, tag, *viewer_args):
    """A seeder holding the split, and an empty --no-auto-fetch viewer that has heard of it."""
    work = Path(args.work)
    for d in (f"{tag}-seeder", f"{tag}-viewer"):
        shutil.rmtree(work / d, ignore_errors=True)
    seeder = Node(args.bin, str(work / f"{tag}-seeder"))
    upload(seeder, split_dir, manifest)
    viewer = Node(args.bin, str(work / f"{tag}-viewer"), "--no-auto-fetch",
                  "--bootstrap", seeder.addr, *viewer_args)
    vid = manifest["video_id"]
    wait_until("the viewer node hears of the video",
               lambda: vid in viewer.api("/api/v1/videos")["announced"], limit=30)
    return seeder, viewer

"""The web UI in headless Firefox (Debian's firefox-esr, driven over Marionette by marionette.py):
the same seeder and empty --no-auto-fetch viewer as test_ui.py. On the viewer:

1. the player plays past 10 s with no error while the node still lacks fragments;
2. a seek to 45 s resumes there before the whole video is held;
3. the video page's grid shows the fragments held, and the swarm page lists the seeder and its
   throughput readout moves during a fetch; a screenshot of each page goes to --artifacts.

Run by scripts/test-browser.sh after the Chromium test (whose split it reuses when present).
"""

import argparse
import sys
import time
from pathlib import Path

from marionette import Firefox
from support import PLAYER_STATE, log, make_video, split, start_pair, wait_until


def count(ff, selector):
    return ff.execute_script("return document.querySelectorAll(arguments[0]).length", selector)


def text(ff, element_id):
    return ff.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : ''",
        element_id)


def firefox_tests(args, ff):
    work = Path(args.work)
    video = work / "video-60s.mp4"
    make_video(video, 60, "640x360", "1M")
    manifest = split(args.bin, video, work / "split-60s", 10)
    vid, n = manifest["video_id"], len(manifest["fragments"])
    seeder, viewer = start_pair(args, work / "split-60s", manifest, "firefox")
    shots = Path(args.artifacts)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        assert viewer.held(vid) == 0
        ff.get(f"{viewer.url}/ui/play/{vid}")
        wait_until("the player is ready", lambda: ff.execute_script(
            "return !!(window.vidswarmPlayer && window.vidswarmPlayer.ready)"), limit=30)
        ff.execute_script("document.getElementById('player').play()")
        state = wait_until("playback passes 10 s", lambda: (
            lambda s: s if s["t"] > 10 or s["error"] or s["errors"] else None)(
                ff.execute_script(PLAYER_STATE)), limit=60)
        assert not state["error"] and not state["errors"], f"player errors: {state}"
        held = viewer.held(vid)
        log(f"firefox 1. playing at {state['t']:.1f} s with {held}/{n} fragments held; "
            f"first frame after {state['firstFrameMs']} ms")
        assert held < n, f"the node already held every fragment ({held}/{n})"
        ff.save_screenshot(shots / "firefox-player.png")

        ff.execute_script("document.getElementById('player').currentTime = 45")
        state = wait_until("playback resumes after the seek", lambda: (
            lambda s: s if (s["t"] >= 46 and not s["paused"]) or s["error"] else None)(
                ff.execute_script(PLAYER_STATE)), limit=60)
        assert not state["error"] and not state["errors"], f"player errors: {state}"
        held = viewer.held(vid)
        log(f"firefox 2. after the seek, playing at {state['t']:.1f} s with {held}/{n} held")
        assert held < n, f"the node held every fragment before playback resumed ({held}/{n})"

        ff.get(f"{viewer.url}/ui/videos/{vid}")
        cells = wait_until("the grid shows the fragments held", lambda: count(
            ff, "#row-self td.held"), limit=10)
        assert count(ff, "#grid tr[data-peer]") >= 1, "the grid has no row for the seeder"
        ff.save_screenshot(shots / "firefox-video.png")

        ff.get(f"{viewer.url}/ui/swarm")
        seeder_id = seeder.api("/api/v1/info")["peer_id"]
        wait_until("the swarm page lists the seeder", lambda: count(
            ff, f"#peers tbody tr[data-peer='{seeder_id}']"), limit=10)
        before = text(ff, "totals")
        time.sleep(1.5)  # two polls of the page's own 1 s timer: the graph's baseline
        viewer.api(f"/api/v1/videos/{vid}/fetch", method="POST")
        wait_until("the throughput readout moves", lambda: text(ff, "totals") != before
                   and text(ff, "rate-in") not in ("", "0 B/s"), limit=20, every=0.05)
        log(f"firefox 3. grid shows {cells} held; swarm page lists the seeder; in "
            f"{text(ff, 'rate-in')}")
        wait_until("the fetch completes", lambda: viewer.held(vid) == n, limit=30)
        time.sleep(1.2)
        ff.save_screenshot(shots / "firefox-swarm.png")
    finally:
        seeder.stop()
        viewer.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--artifacts", required=True)
    args = p.parse_args()
    args.bin = str(Path(args.bin).resolve())
    Path(args.work).mkdir(parents=True, exist_ok=True)
    ff = Firefox()
    log(f"Firefox {ff.version}, headless, over Marionette")
    try:
        firefox_tests(args, ff)
    finally:
        ff.quit()
    log("firefox PASSED")


if __name__ == "__main__":
    sys.exit(main())

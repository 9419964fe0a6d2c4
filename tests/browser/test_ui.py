"""The web UI in headless Chromium (Selenium): a seeder node holding a 60 s video, and an empty
node started with --no-auto-fetch. On the empty node:

1. the player plays (currentTime passes 10 s, no error) while the node still lacks fragments,
   and the video page's grid shows fragments arriving (live, without a reload);
2. a seek to 45 s resumes playback there before the whole video is held;
3. the swarm page lists the seeder and its throughput readout moves during a fetch;
4. a screenshot of each page is written to --artifacts; a split uploaded from the videos page
   is stored whole; a video the browser cannot decode (HEVC) gets a message and the playlist;
   an unknown video gets a "not found" page.

5. on a node with an API token, a write from the page asks for the token and then goes through.

With --ttff: time to first frame (play click to `playing`) and time to resume after a seek, on a
100 MiB video, on a fresh empty node each time, median of 5 (docs/performance.md).

Run by scripts/test-browser.sh, which installs Chromium, chromium-driver and Selenium.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from support import PLAYER_STATE, log, make_video, split, start_pair, upload, wait_until


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900",
                "--disable-dev-shm-usage"]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=opts, service=service)


def js_errors(driver):
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and "favicon" not in e["message"]]


def player_state(driver):
    return driver.execute_script(PLAYER_STATE)


def ui_tests(args, driver):
    work = Path(args.work)
    video = work / "video-60s.mp4"
    make_video(video, 60, "640x360", "1M")
    split_dir = work / "split-60s"
    manifest = split(args.bin, video, split_dir, 10)
    vid = manifest["video_id"]
    n = len(manifest["fragments"])
    seeder, viewer = start_pair(args, split_dir, manifest, "ui")
    shots = Path(args.artifacts)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        assert viewer.held(vid) == 0
        # The video page first, in its own tab: its grid must fill in live as playback fetches.
        driver.get(f"{viewer.url}/ui/videos/{vid}")
        wait_until("the grid is drawn", lambda: driver.find_elements(
            By.CSS_SELECTOR, "#row-self td[data-fragment]"))
        grid_tab = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(f"{viewer.url}/ui/play/{vid}")
        wait_until("the player is ready", lambda: driver.execute_script(
            "return !!(window.vidswarmPlayer && window.vidswarmPlayer.ready)"))
        driver.execute_script("document.getElementById('player').play()")

        # 1. It plays past 10 s, with no error, while the node still lacks fragments.
        state = wait_until("playback passes 10 s", lambda: (
            lambda s: s if s["t"] > 10 or s["error"] or s["errors"] else None)(
                player_state(driver)), limit=60)
        assert not state["error"] and not state["errors"], f"player errors: {state}"
        held = viewer.held(vid)
        log(f"1. playing at {state['t']:.1f} s with {held}/{n} fragments held; "
            f"first frame after {state['firstFrameMs']} ms")
        assert held < n, f"the node already held every fragment ({held}/{n})"
        driver.save_screenshot(str(shots / "player.png"))

        driver.switch_to.window(grid_tab)
        cells = wait_until("the grid shows the fragments that arrived", lambda: (
            lambda c: c if c > 0 else None)(len(driver.find_elements(
                By.CSS_SELECTOR, "#row-self td.held"))), limit=10)
        log(f"   the video page's grid shows {cells} fragment(s) held, live")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#grid tr[data-peer]")) >= 1, \
            "the grid has no row for the seeder"
        driver.save_screenshot(str(shots / "video.png"))

        # 2. A seek to 45 s resumes there before the whole video is held.
        driver.switch_to.window(driver.window_handles[-1])
        driver.execute_script("document.getElementById('player').currentTime = 45")
        state = wait_until("playback resumes after the seek", lambda: (
            lambda s: s if (s["t"] >= 46 and not s["paused"]) or s["error"] else None)(
                player_state(driver)), limit=60)
        assert not state["error"] and not state["errors"], f"player errors: {state}"
        held = viewer.held(vid)
        log(f"2. after the seek, playing at {state['t']:.1f} s with {held}/{n} held")
        assert held < n, f"the node held every fragment before playback resumed ({held}/{n})"

        # 3. The swarm page lists the seeder, and its throughput readout moves during a fetch.
        driver.get(f"{viewer.url}/ui/swarm")
        seeder_id = seeder.api("/api/v1/info")["peer_id"]
        wait_until("the swarm page lists the seeder", lambda: driver.find_elements(
            By.CSS_SELECTOR, f"#peers tbody tr[data-peer='{seeder_id}']"), limit=10)
        before = driver.find_element(By.ID, "totals").text
        time.sleep(1.5)  # two polls of the page's own 1 s timer: the graph's baseline
        viewer.api(f"/api/v1/videos/{vid}/fetch", method="POST")
        wait_until("the throughput readout moves", lambda: driver.find_element(
            By.ID, "totals").text != before and driver.find_element(By.ID, "rate-in").text
            not in ("", "0 B/s"), limit=20, every=0.05)
        log(f"3. swarm page: seeder listed; in {driver.find_element(By.ID, 'rate-in').text}, "
            f"{driver.find_element(By.ID, 'totals').text}")
        wait_until("the fetch completes", lambda: viewer.held(vid) == n, limit=30)
        time.sleep(1.2)
        driver.save_screenshot(str(shots / "swarm.png"))

        # 4. The other pages, for the record (and they must not log errors).
        driver.get(viewer.url + "/")
        time.sleep(1.0)
        driver.save_screenshot(str(shots / "home.png"))
        # An upload of a split from the browser (the route `vidswarm publish` uses).
        other_dir = work / "split-60s-5"
        other = split(args.bin, video, other_dir, 5)
        driver.get(viewer.url + "/ui/videos")
        files = [other_dir / "manifest.json"] + [other_dir / f["name"] for f in other["fragments"]]
        driver.find_element(By.ID, "upload-files").send_keys(
            "\n".join(str(p.resolve()) for p in files))
        wait_until("the upload can start", lambda: driver.find_element(
            By.ID, "upload-start").is_enabled(), limit=10)
        driver.find_element(By.ID, "upload-start").click()
        wait_until("the upload ends", lambda: driver.find_elements(
            By.CSS_SELECTOR, "#upload-result .success, #upload-result .error"), limit=60)
        result = driver.find_element(By.ID, "upload-result").text
        assert "Stored 5 fragments" in result, f"the upload says: {result}"
        assert driver.find_elements(By.ID, "upload-link"), "no link to the uploaded video"

        assert viewer.held(other["video_id"]) == 5, "the uploaded split is not held whole"
        log("   a split uploaded from the videos page is held whole (5/5)")
        driver.save_screenshot(str(shots / "videos.png"))
        # Its page says it is pinned (uploaded here), and deleting it from there removes it.
        driver.get(f"{viewer.url}/ui/videos/{other['video_id']}")
        # The facts are redrawn as the page refreshes: read them in one script, never through a
        # handle that a redraw makes stale.
        text_of = lambda id: driver.execute_script(
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : ''", id)
        wait_until("the video page says it is pinned", lambda: "pinned" in text_of("kept"),
                   limit=10)
        driver.execute_script("window.confirm = () => true")
        driver.execute_script("document.getElementById('delete-video').click()")
        wait_until("the page says it is deleted", lambda: text_of("deleted"), limit=10)
        assert viewer.held(other["video_id"]) == 0, "the deleted video is still held"
        log("   deleted from its video page: " + text_of("deleted"))
        # A video this browser cannot decode (HEVC: Chromium here has no HEVC through MSE):
        # a clear message and the playlist for a desktop player.
        hevc = work / "hevc-4s.mp4"
        if not hevc.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                            "testsrc2=size=320x240:rate=30:duration=4", "-c:v", "libx265",
                            "-x265-params", "log-level=error:keyint=30:min-keyint=30:bframes=0",
                            "-tag:v", "hvc1", "-pix_fmt", "yuv420p", str(hevc)], check=True)
        hevc_split = work / "split-hevc"
        hm = split(args.bin, hevc, hevc_split, 2)
        assert (hm.get("codecs") or "").startswith(("hvc1.", "hev1.")), hm.get("codecs")
        upload(viewer, hevc_split, hm)
        driver.get(f"{viewer.url}/ui/play/{hm['video_id']}")
        wait_until("the player says it cannot play HEVC", lambda: "cannot play" in
                   driver.find_element(By.ID, "message").text, limit=10)
        link = driver.find_element(By.CSS_SELECTOR, "#message a").get_attribute("href")
        assert link.endswith(f"/api/v1/videos/{hm['video_id']}/playlist.m3u8"), link
        log(f"   HEVC ({hm['codecs']}): the page says so and links the playlist")
        # A video nobody has: a clear "not found" page.
        driver.get(f"{viewer.url}/ui/play/{'0' * 64}")
        wait_until("the player says the video is not found", lambda: "not found" in
                   driver.find_element(By.ID, "title").text.lower(), limit=10)
        errors = [e for e in js_errors(driver) if "404" not in e]
        assert not errors, f"JavaScript errors: {errors}"
        log(f"4. screenshots in {shots}")
    finally:
        seeder.stop()
        viewer.stop()


def token_test(args, driver):
    """A node with an API token: a write from the page asks for the token, then goes through."""
    split_dir = Path(args.work) / "split-60s-5"
    manifest = json.loads((split_dir / "manifest.json").read_text())
    vid = manifest["video_id"]
    seeder, node = start_pair(args, split_dir, manifest, "token", "--api-token", "s3cret")
    try:
        driver.get(f"{node.url}/ui/videos/{vid}")
        driver.execute_script("localStorage.clear()")
        wait_until("the fetch button", lambda: driver.find_elements(By.ID, "fetch-all"))
        driver.find_element(By.ID, "fetch-all").click()
        wait_until("the page asks for the token", lambda: driver.find_elements(
            By.ID, "token-input"), limit=10)
        driver.find_element(By.ID, "token-input").send_keys("s3cret")
        driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        wait_until("the fetch goes through with the token", lambda: node.held(vid) == 5,
                   limit=30)
        assert driver.execute_script("return localStorage.getItem('vidswarm_token')") == "s3cret"
        log("5. a node with an API token: the page asked for it, kept it, and the fetch ran")
    finally:
        seeder.stop()
        node.stop()


def ttff(args, driver):
    """Time to first frame and to resume after a seek: 100 MiB, a fresh empty node each run."""
    work = Path(args.work)
    video = work / "video-100mib.mp4"
    make_video(video, 100, "1280x720", "8M")
    split_dir = work / "split-100mib"
    manifest = split(args.bin, video, split_dir, 10)
    vid = manifest["video_id"]
    size = sum(f["size"] for f in manifest["fragments"])
    firsts, seeks = [], []
    for run in range(5):
        seeder, viewer = start_pair(args, split_dir, manifest, f"ttff{run}")
        try:
            driver.get(f"{viewer.url}/ui/play/{vid}")
            wait_until("the player is ready", lambda: driver.execute_script(
                "return !!(window.vidswarmPlayer && window.vidswarmPlayer.ready)"))
            driver.execute_script("document.getElementById('player').play()")
            first = wait_until("the first frame", lambda: player_state(driver)["firstFrameMs"],
                               limit=60, every=0.02)
            driver.execute_script("""
                const v = document.getElementById('player');
                window.seekStart = performance.now(); window.seekMs = null;
                v.addEventListener('playing', () => {
                  if (window.seekMs === null) window.seekMs = performance.now() - window.seekStart;
                }, {once: true});
                v.currentTime = 75;""")
            seek = wait_until("playback resumes", lambda: driver.execute_script(
                "return window.seekMs"), limit=60, every=0.02)
            firsts.append(first)
            seeks.append(seek)
            log(f"run {run}: first frame {first} ms, resume after the seek {seek:.0f} ms")
        finally:
            seeder.stop()
            viewer.stop()
    # The anchor, in the same run: the source file from a plain web server (progressive MP4,
    # Range requests), in the same browser: what playback costs without a swarm.
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               "--directory", str(work), "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        port = wait_until("the web server starts", lambda: (
            lambda line: line.split("port ")[1].split()[0] if "port " in line else None)(
                server.stdout.readline()), limit=10)
        plain = []
        for run in range(5):
            driver.get(f"http://127.0.0.1:{port}/{video.name}")
            plain.append(driver.execute_async_script('''
                const done = arguments[arguments.length - 1];
                const v = document.querySelector('video');
                const t0 = performance.now();
                v.addEventListener('playing', () => done(performance.now() - t0), {once: true});
                v.currentTime = 0; v.play();'''))
            driver.get("about:blank")
    finally:
        server.kill()
    log(f"anchor, the source from a plain web server: first frame median "
        f"{statistics.median(plain):.0f} ms {sorted(round(p) for p in plain)}")
    log(f"{size / 2**20:.1f} MiB video: time to first frame median "
        f"{statistics.median(firsts):.0f} ms {sorted(firsts)}; resume after a seek median "
        f"{statistics.median(seeks):.0f} ms {sorted(round(s) for s in seeks)}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--artifacts", required=True)
    p.add_argument("--ttff", action="store_true", default=bool(os.environ.get("BROWSER_TTFF")))
    args = p.parse_args()
    args.bin = str(Path(args.bin).resolve())
    Path(args.work).mkdir(parents=True, exist_ok=True)
    driver = browser()
    try:
        ui_tests(args, driver)
        token_test(args, driver)
        if args.ttff:
            ttff(args, driver)
    finally:
        driver.quit()
    log("PASSED")


if __name__ == "__main__":
    main()

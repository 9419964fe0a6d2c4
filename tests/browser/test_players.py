"""Desktop players on the HLS playlist (`/api/v1/videos/{id}/playlist.m3u8`), each from a node that
started empty (--no-auto-fetch: the playlist's segments make it fetch): mpv and VLC (Debian's
mpv and vlc) play it to the end, writing what they decode to a file, whose frames ffprobe counts.

- mpv: exactly the source's frame count.
- VLC: as many frames (within 2) as VLC writes for the source file itself in the same run; its TS
  remux drops a few frames at the ends of any input, so the source is the anchor, not ffprobe.

Run by scripts/test-browser.sh after the browser tests (it reuses their 60 s split).
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from support import log, make_video, split, start_pair


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[0])


def vlc(source, out):
    """VLC remuxes `source` to `out` (MPEG-TS) and quits at its end. VLC refuses to run as root:
    then it runs as `nobody`, writing into a directory that user may write."""
    cmd = ["cvlc", "-I", "dummy", "--play-and-exit",
           "--sout", f"#std{{access=file,mux=ts,dst={out}}}", source]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "nobody", "--"] + cmd
    subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)
    return frames(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    args.bin = str(Path(args.bin).resolve())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    video = work / "video-60s.mp4"
    make_video(video, 60, "640x360", "1M")
    manifest = split(args.bin, video, work / "split-60s", 10)
    vid = manifest["video_id"]
    source_frames = frames(video)
    scratch = Path(tempfile.mkdtemp(prefix="vidswarm-players-"))
    scratch.chmod(0o777)  # VLC writes here as nobody
    try:
        for player in ("mpv", "vlc"):
            seeder, viewer = start_pair(args, work / "split-60s", manifest, f"player-{player}")
            url = f"{viewer.url}/api/v1/videos/{vid}/playlist.m3u8"
            try:
                assert viewer.held(vid) == 0
                if player == "mpv":
                    out = scratch / "mpv.mkv"
                    subprocess.run(["mpv", "--no-config", "--vo=null", "--ao=null", "--untimed",
                                    "--really-quiet", f"--o={out}", url],
                                   capture_output=True, text=True, timeout=180, check=True)
                    got = frames(out)
                    log(f"mpv decoded {got} frames from the playlist; the source has "
                        f"{source_frames}")
                    assert got == source_frames, f"mpv: {got} frames, source {source_frames}"
                else:
                    got = vlc(url, scratch / "vlc.ts")
                    anchor_src = scratch / "source.mp4"
                    shutil.copy(video, anchor_src)
                    anchor_src.chmod(0o644)
                    anchor = vlc(str(anchor_src), scratch / "vlc-source.ts")
                    log(f"VLC wrote {got} frames from the playlist, {anchor} from the source "
                        f"file itself ({source_frames} in the source)")
                    assert abs(got - anchor) <= 2, f"VLC: {got} frames, {anchor} from the source"
            finally:
                seeder.stop()
                viewer.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log("players PASSED")


if __name__ == "__main__":
    main()

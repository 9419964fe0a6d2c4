#!/usr/bin/env bash
# Makes assets/demo.mp4, the video the demo and tests use: 30 s of ffmpeg's testsrc2 pattern with a
# running clock, 640x360 at 25 fps, with a tone that steps in pitch, encoded with ONE keyframe at
# the start so that splitting it into 10 must take the re-encode path. Needs only ffmpeg.
set -euo pipefail
out="${1:-$(dirname "$0")/demo.mp4}"
ffmpeg -hide_banner -v error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=30" \
  -f lavfi -i "aevalsrc='0.2*sin(2*PI*(220+110*floor(t/3))*t)':s=44100:d=30" \
  -vf "drawtext=text='vidswarm demo %{pts\:hms}':fontcolor=white:fontsize=28:x=20:y=20:box=1:boxcolor=black@0.5" \
  -c:v libx264 -preset slow -crf 30 -pix_fmt yuv420p \
  -g 100000 -keyint_min 100000 -sc_threshold 0 \
  -c:a aac -b:a 64k -movflags +faststart \
  -metadata title="vidswarm demo" "$out" 2>/dev/null || \
ffmpeg -hide_banner -v error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=30" \
  -f lavfi -i "aevalsrc='0.2*sin(2*PI*(220+110*floor(t/3))*t)':s=44100:d=30" \
  -c:v libx264 -preset slow -crf 30 -pix_fmt yuv420p \
  -g 100000 -keyint_min 100000 -sc_threshold 0 \
  -c:a aac -b:a 64k -movflags +faststart \
  -metadata title="vidswarm demo" "$out"
ls -l "$out"

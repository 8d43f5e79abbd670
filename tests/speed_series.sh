#!/usr/bin/env bash
# The README's speed series: MediaPipe Holistic (Python, XNNPACK) and signtop
# on the same frames, interleaved, ROUNDS times over: the Cow and Butterfly
# clips and the Cow clip scaled to 640x480 (H.264; MediaPipe gets its frames
# as PNGs, signtop decodes the video). For each input: MediaPipe, signtop at
# 258 and 1662, and signtop at 258 with its AVX-512 paths switched off
# (SIGNTOP_NO_AVX512=1); for the two clips also signtop pipelined at 258 and
# 1662 (`bench --pipelined`: each frame's pose beside the previous frame's
# hands and face). One line per run: who, input, layout, mean, p50, p95 (ms per
# frame; signtop's "landmarks" and, for the video, "total" with decode; the
# pipelined runs' "interval", one frame's keypoints to the next's).
#
#   tests/speed_series.sh            # from the repository root, after
#                                    # cargo build --release and the venv of
#                                    # tests/fixtures/gen_reference.py,
#                                    # with ffmpeg installed
# Env: ROUNDS (2), FRAMES (200), SIGNTOP (target/release/signtop),
#      MP_PYTHON (/tmp/venv-mp/bin/python), MEDIA (../shared/media).
set -euo pipefail
ROUNDS=${ROUNDS:-2}
FRAMES=${FRAMES:-200}
SIGNTOP=${SIGNTOP:-target/release/signtop}
MP_PYTHON=${MP_PYTHON:-/tmp/venv-mp/bin/python}
MEDIA=${MEDIA:-../shared/media}
command -v ffmpeg >/dev/null || {
  echo "tests/speed_series.sh needs ffmpeg (Debian package ffmpeg: apt-get install ffmpeg)" >&2
  exit 1
}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

ffmpeg -loglevel error -i "$MEDIA/cow_correct.gif" -vf scale=640:480,format=yuv420p \
  -c:v libx264 -crf 18 "$WORK/cow_640x480.mp4"
mkdir "$WORK/cow_640x480"
ffmpeg -loglevel error -i "$WORK/cow_640x480.mp4" "$WORK/cow_640x480/%03d.png"

# MediaPipe's passes per input: about FRAMES frames, as signtop's bench.
passes() { echo $(( (FRAMES + $1 - 1) / $1 )); }

signtop_line() { # name input layout stage [env...] [-- bench options...]
  local name=$1 input=$2 layout=$3 stage=$4 envs=() options=(); shift 4
  while (($#)); do
    if [[ $1 == -- ]]; then shift; options=("$@"); break; fi
    envs+=("$1"); shift
  done
  env "${envs[@]}" "$SIGNTOP" bench --input "$input" --frames "$FRAMES" --layout "$layout" "${options[@]}" \
    | awk -v n="$name" -v i="$(basename "$input")" -v l="$layout" -v s="$stage" \
        '$1 == s && NF >= 7 { printf "%s %s %s mean=%s p50=%s p95=%s\n", n, i, l, $5, $2, $3 }'
}

for round in $(seq "$ROUNDS"); do
  echo "# round $round"
  for input in "$MEDIA/cow_correct.gif" "$MEDIA/butterfly_inference.gif" "$WORK/cow_640x480.mp4"; do
    frames_for_mp=$input
    stage=landmarks
    if [[ $input == *.mp4 ]]; then frames_for_mp=$WORK/cow_640x480; stage=total; fi
    n=47 # frames in the input
    [[ $input == *butterfly* ]] && n=40
    "$MP_PYTHON" tests/fixtures/gen_reference.py --time "$frames_for_mp" --passes "$(passes "$n")" \
      2>/dev/null | sed "s|$WORK/||; s|$MEDIA/||"
    signtop_line signtop "$input" 258 "$stage"
    signtop_line signtop "$input" 1662 "$stage"
    signtop_line signtop-no-avx512 "$input" 258 "$stage" SIGNTOP_NO_AVX512=1
    if [[ $input != *.mp4 ]]; then
      signtop_line signtop-pipelined "$input" 258 interval -- --pipelined
      signtop_line signtop-pipelined "$input" 1662 interval -- --pipelined
    fi
  done
done

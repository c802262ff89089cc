#!/usr/bin/env bash
# Stage 0 of egs/voxceleb/run.sh: Kaldi data dirs of the corpora given (run.sh passes its options on).
#
#   local/prepare_data.sh --data DIR [--nj N] [--vox1-root "DIR [DIR]"] [--trials-dir DIR] [--lists L1,L2]
#       [--vox2-root DIR] [--vox2-audio auto|wav|m4a] [--vox2-wav-dir DIR] [--cohort-per-spk N]
#       [--musan-root DIR] [--rirs-root DIR]
#
# VoxCeleb (local/prepare_voxceleb.py): DATA/vox2_dev, DATA/vox2_cohort (with --cohort-per-spk N > 0),
# DATA/vox1, DATA/vox1_eval and a data dir with trials per list; MUSAN (local/prepare_musan.py):
# DATA/musan_{noise,music,speech}; RIRS_NOISES (local/prepare_rirs.py): DATA/rirs. At least one corpus.
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

data=""
nj=8
vox1_root=""
vox2_root=""
vox2_audio=auto
vox2_wav_dir=""
trials_dir=""
lists=vox1_o,vox1_e,vox1_h
cohort_per_spk=0
musan_root=""
rirs_root=""
. utils/parse_options.sh
die() { echo "$(date '+%F %T') prepare_data.sh: error: $*" >&2; exit 1; }

[ -n "$data" ] || die "--data is empty"
[ -n "$vox1_root$vox2_root$musan_root$rirs_root" ] || \
  die "stage 0 needs the corpora: give --vox1-root, --vox2-root, --musan-root and --rirs-root (see --help)"
read -r -a vox1_roots <<< "$vox1_root"
mkdir -p "$data"
if [ -n "$vox1_root$vox2_root" ]; then
  args=(--data "$data" --nj "$nj" --vox2-audio "$vox2_audio" --vox2-wav-dir "$vox2_wav_dir" \
    --trial-subsets "$lists" --cohort-per-spk "$cohort_per_spk")
  if [ -n "$vox2_root" ]; then args+=(--vox2-root "$vox2_root"); fi
  if [ ${#vox1_roots[@]} -gt 0 ]; then
    trials_dir=${trials_dir:-${vox1_roots[0]}}
    [ -d "$trials_dir" ] || die "--trials-dir $trials_dir: folder not found (it holds veri_test2.txt etc.)"
    args+=(--vox1-root "${vox1_roots[@]}" --meta-dir "$trials_dir" --lists "$lists")
  fi
  local/prepare_voxceleb.py "${args[@]}"
fi
if [ -n "$musan_root" ]; then
  local/prepare_musan.py --nj "$nj" "$musan_root" "$data"
fi
if [ -n "$rirs_root" ]; then
  local/prepare_rirs.py --nj "$nj" "$rirs_root" "$data/rirs"
fi

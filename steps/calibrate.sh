#!/usr/bin/env bash
# Calibration for several trial lists: fit on a development set's scores, apply to each test set's
# (both run.sh files can call this).
#
#   steps/calibrate.sh [--scoring cosine|asnorm] [--quality LIST] [--cohort COHORT_DATA] [--p-target P] \
#       [--operating-point true|false] [--name NAME] [--embeddings NAME] MODEL_DIR DEV_DATA [TEST_DATA...]
#
# Fits steps/calibrate.py on DEV_DATA/trials scored in MODEL_DIR/scores/<name of DEV_DATA>_<scoring>
# (logistic regression to LLRs; --quality: comma-separated measures duration, magnitude, cohort_mean;
# cohort_mean needs --cohort, the AS-norm cohort data dir), then writes the calibrated LLRs of each
# TEST_DATA to MODEL_DIR/scores/<name of TEST_DATA>_<scoring>-<NAME> for stage 6 (NAME: --name, else
# cal without quality measures, qmf with them). The calibration goes to MODEL_DIR/calibration.yaml,
# the operating point that `python -m pyfunc verify` decides with, when --operating-point is true
# (cosine scores, no cohort measure), else to MODEL_DIR/calibration_<scoring>-<NAME>.yaml.
# --embeddings: as in steps/score.sh (the embeddings of every list, for the magnitude and cohort_mean measures).
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

scoring=cosine
quality=""
cohort=""
p_target=""
operating_point=false
name=""
embeddings=""
. utils/parse_options.sh
if [ $# -lt 2 ]; then
  echo "usage: $0 [options] MODEL_DIR DEV_DATA [TEST_DATA...]" >&2; exit 1
fi
model_dir=$1; dev=$2; shift 2
name=${name:-$([ -n "$quality" ] && echo qmf || echo cal)}
if [ "$operating_point" = true ]; then
  calibration=$model_dir/calibration.yaml
else
  calibration=$model_dir/calibration_${scoring}-${name}.yaml
fi
emb() { echo "$model_dir/embeddings/${embeddings:-$(basename "$(cd "$1" && pwd)")}"; }

echo "$(date '+%F %T') calibrate.sh: $scoring scores of $dev -> $calibration"
steps/calibrate.py --model-dir "$model_dir" --trials "$dev/trials" \
  --scores "$model_dir/scores/$(basename "$(cd "$dev" && pwd)")_$scoring" --embeddings "$(emb "$dev")" \
  ${quality:+--quality "$quality"} ${cohort:+--cohort-data "$cohort"} ${p_target:+--p-target "$p_target"} \
  --out "$calibration"
for data_dir in "$@"; do
  test_name=$(basename "$(cd "$data_dir" && pwd)")
  echo "$(date '+%F %T') calibrate.sh: calibrated $scoring scores of $data_dir" \
    "-> $model_dir/scores/${test_name}_${scoring}-${name}"
  steps/apply_calibration.py --calibration "$calibration" --model-dir "$model_dir" --trials "$data_dir/trials" \
    --scores "$model_dir/scores/${test_name}_$scoring" --embeddings "$(emb "$data_dir")" \
    ${cohort:+--cohort-data "$cohort"} --out "$model_dir/scores/${test_name}_${scoring}-${name}"
done

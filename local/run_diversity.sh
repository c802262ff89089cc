#!/usr/bin/env bash
# What speaker diversity buys (README, "Ablation"): the seed recipe trained on about 1 800 utterances
# split as 100 voices x 18, 300 x 6 (run.sh's train_wide) and 1 000 x 2, for the same number of epochs,
# each evaluated by stages 3-6 of run.sh on test, test_hard and test_unseen.
#
#   bash run.sh --stop-stage 1           # once: the corpus and the fbank of its test sets
#   bash local/run_diversity.sh          # EXP/diversity.md
#
# Options (defaults in brackets):
#   --data DIR           the mini corpus of run.sh's stages 0-1 [data/mini]
#   --exp DIR            models and EXP/diversity.md [exp/diversity]
#   --config FILE        the training config [conf/ecapa_mini.yaml]
#   --overrides "K=V ..."  config overrides, e.g. "train.epochs=4" []
#   --splits "SxU ..."   speakers x utterances per speaker [100x18 300x6 1000x2]
#   --random-seed N      stage 0's seed, as in run.sh [777]
#   --nj N --device auto|cpu|cuda   as in run.sh [2 auto]
set -euo pipefail
cd "$(dirname "$0")/.."
. ./path.sh

data=data/mini
exp=exp/diversity
config=conf/ecapa_mini.yaml
overrides=""
splits="100x18 300x6 1000x2"
random_seed=777
nj=2
device=auto
. utils/parse_options.sh

manifest=()
for split in $splits; do
  speakers=${split%x*} utts=${split#*x}
  name=train_wide_$split
  [ "$split" = 300x6 ] && name=train_wide  # run.sh's own training set
  if [ ! -f "$data/$name/wav.scp" ]; then
    local/make_mini_corpus.py --data-root "$data" --nj "$nj" --random-seed "$random_seed" --parts train_wide \
      --wide-speakers "$speakers" --wide-utts-per-speaker "$utts" --wide-name "$name"
  fi
  bash run.sh --stage 2 --stop-stage 2 --data "$data" --train-set "$name" --exp "$exp/$split" --config "$config" \
    --overrides "$overrides" --device "$device" --nj "$nj"
  bash run.sh --stage 3 --model-dir "$exp/$split" --data "$data" --nj "$nj" --device "$device"
  manifest+=("$speakers speakers x $utts utterances	cosine	asnorm	$exp/$split")
done
printf '%s\n' "# label, cosine scoring, AS-norm scoring, model dir (local/run_diversity.sh)" "${manifest[@]}" \
  > "$exp/manifest.tsv.tmp"
mv "$exp/manifest.tsv.tmp" "$exp/manifest.tsv"
steps/ablation_table.py --manifest "$exp/manifest.tsv" --out "$exp/diversity.md"

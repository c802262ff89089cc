#!/usr/bin/env bash
# The ablation of the mini recipe (README, "Ablation"): each technique of issue 13 on top of the seed
# recipe, and all of them together, each trained with several random seeds and evaluated by stages 3-6
# of run.sh; EXP/ablation.md gives EER and minDCF (p=0.01) of every row on test, test_unseen and
# test_hard, cosine and AS-norm, as the mean ± standard deviation over the seeds.
#
#   bash run.sh --stop-stage 1          # once: the corpus (stage 0) and the fbank of its test sets (stage 1)
#   bash local/run_ablation.sh          # every row, seeds 1 2 3
#   bash local/run_ablation.sh --seeds "1" --rows "seed warmup"
#
# Rows (--rows; the model of row R and seed N is EXP/R/seedN, the fine-tuned one EXP/seed/seedN/lm):
#   noaug    the seed recipe without augmentation (the mini recipe before issue 13)
#   seed     the seed recipe: StepLR, fixed margin 0.2, six-way noise/babble/music/reverberation augmentation
#   warmup   + linear warm-up over 1 epoch, then exponential decay to 5e-5 per step (WeSpeaker)
#   margin   + the AAM margin ramped from 0 (epoch 1) to 0.2 (epoch 3)
#   speed    + speed perturbation 0.9/1.0/1.1, each speed its own speakers
#   average  + the average of the last 3 epoch checkpoints (from the seed row's checkpoints)
#   warmup_average  warm-up with exponential decay and the average of its last 3 checkpoints (the warmup row's)
#   mean     + subtraction of the cohort's mean embedding before scoring (the seed row's model)
#   lm       + large-margin fine-tuning (--lm-config) of the seed row's model
#   qmf      + calibration with quality measures (duration, magnitude, cohort mean) on dev
#   all      warmup, margin, speed, average, mean, lm and qmf together
# Everything a rerun finds done is kept (stage stamps), so an interrupted run continues.
#
# Options (defaults in brackets):
#   --data DIR          the mini corpus of run.sh's stages 0-1 [data/mini]
#   --exp DIR           where the models, EXP/manifest.tsv and EXP/ablation.md go [exp/ablation]
#   --config FILE       the base config; each row sets its techniques explicitly [conf/ecapa_mini.yaml]
#   --lm-config FILE    large-margin fine-tuning config [conf/ecapa_mini_lm.yaml]
#   --seeds "N ..."     training random seeds [1 2 3]
#   --overrides "K=V ..."      overrides of every trained row's config, e.g. "train.epochs=4" []
#   --lm-overrides "K=V ..."   overrides of the fine-tuning configs, e.g. "train.epochs=1" []
#   --rows "ROW ..."    rows to run and tabulate [all ten, in the order above]
#   --nj N --device auto|cpu|cuda    as in run.sh [2 auto]
#   --table-only true   only tabulate the models that earlier runs evaluated (e.g. seeds run in parallel);
#                       seeds and rows not evaluated yet are left out [false]
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
. ./path.sh

data=data/mini
exp=exp/ablation
config=conf/ecapa_mini.yaml
lm_config=conf/ecapa_mini_lm.yaml
seeds="1 2 3"
overrides=""
lm_overrides=""
rows="noaug seed warmup margin speed average warmup_average mean lm qmf all"
nj=2
device=auto
table_only=false
. utils/parse_options.sh
log() { echo "$(date '+%F %T') run_ablation.sh: $*"; }

for d in "$data"/{test,test_hard,test_unseen,dev,cohort}; do  # every row trains on the fly from wav.scp
  [ -f "$d/feats.scp" ] || { echo "$0: $d/feats.scp not found: run 'bash run.sh --data $data --stop-stage 1'" \
    "first" >&2; exit 1; }
done

# The techniques, as config overrides of the base config. Every row sets all of them.
seed_recipe="train.lr_schedule=step train.lr_decay=0.8 loss.margin_ramp=[] train.speed_perturb=[]
  train.average_last=0 score.subtract_mean=false train.on_the_fly_features=true train.augment.enabled=true"
warmup="train.lr_schedule=warmup_exp train.warmup_epochs=1 train.final_lr=5.0e-5"
margin="loss.margin_ramp=[1,3]"
speed="train.speed_perturb=[1.0,0.9,1.1]"
qmf_measures=duration,magnitude,cohort_mean
declare -A label=(
  [noaug]="seed recipe without augmentation"
  [seed]="seed recipe (StepLR, fixed margin, augmentation)"
  [warmup]="+ warm-up and exponential LR decay"
  [margin]="+ margin ramp"
  [speed]="+ speed perturbation (3x speakers)"
  [average]="+ average of the last 3 checkpoints"
  [warmup_average]="+ warm-up and exponential decay, and the average of the last 3"
  [mean]="+ embedding mean subtraction"
  [lm]="+ large-margin fine-tuning"
  [qmf]="+ QMF calibration on dev"
  [all]="all of the above"
)
declare -A trained=(
  [noaug]="train.augment.enabled=false" [seed]="" [warmup]="$warmup" [margin]="$margin" [speed]="$speed"
  [all]="$warmup $margin $speed train.average_last=3 score.subtract_mean=true"
)
for row in $rows; do
  [ -n "${label[$row]:-}" ] || { echo "$0: unknown row '$row' (rows: ${!label[*]})" >&2; exit 1; }
done
wanted() { [[ " $rows " == *" $1 "* ]]; }

# One config per trained row (and the fine-tuning configs of the seed and all rows).
mkdir -p "$exp/conf"
sets() { for o in $*; do echo --set "$o"; done; }
[ "$table_only" = true ] || for row in "${!trained[@]}"; do
  steps/make_config.py $(sets $seed_recipe ${trained[$row]} $overrides) "$config" "$exp/conf/$row.yaml"
done
if [ "$table_only" != true ]; then
  steps/make_config.py $(sets score.subtract_mean=false train.speed_perturb=[] $lm_overrides) "$lm_config" \
    "$exp/conf/seed_lm.yaml"
  steps/make_config.py $(sets score.subtract_mean=true "$speed" $lm_overrides) "$lm_config" "$exp/conf/all_lm.yaml"
fi

train() {  # train ROW SEED [LM_CONFIG]: run.sh stage 2 into EXP/ROW/seedSEED (and its lm)
  local row=$1 seed=$2
  bash run.sh --stage 2 --stop-stage 2 --data "$data" --exp "$exp/$row/seed$seed" --config "$exp/conf/$row.yaml" \
    ${3:+--lm-config "$3"} --overrides "train.random_seed=$seed" --device "$device" --nj "$nj"
}
evaluate() {  # evaluate MODEL_DIR [qmf]: run.sh stages 3-6, and with qmf the cosine QMF calibration too
  bash run.sh --stage 3 --model-dir "$1" --data "$data" --nj "$nj" --device "$device"
  if [ "${2:-}" = qmf ]; then
    steps/calibrate.sh --quality "$qmf_measures" --cohort "$data/cohort" "$1" "$data/dev" \
      "$data"/{test,test_hard,test_unseen}
    steps/results_table.py --data "$data" --lists test,test_hard,test_unseen \
      --scorings cosine,cosine-cal,cosine-qmf,asnorm,asnorm-qmf --out "$1/results" "$1"
  fi
}
derive() {  # derive ROW SEED LAST FROM [KEY=VALUE]: row FROM's last LAST checkpoints averaged into EXP/ROW/seedN
  local out=$exp/$1/seed$2
  if [ ! -f "$out/model.pt" ]; then
    rm -rf "$out.tmp"
    steps/average_checkpoints.py --exp "$exp/$4/seed$2" --last "$3" --out "$out.tmp"
    if [ -n "${5:-}" ]; then steps/make_config.py --set "$5" "$out.tmp/config.yaml" "$out.tmp/config.yaml"; fi
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
}

for seed in $seeds; do
  [ "$table_only" = true ] && break
  for row in noaug warmup margin speed; do
    if wanted $row; then log "$row, seed $seed"; train $row "$seed"; evaluate "$exp/$row/seed$seed"; fi
  done
  if wanted warmup_average; then
    log "warmup, seed $seed"; train warmup "$seed"  # stage 2 skips a training that is complete
    log "warmup_average, seed $seed"; derive warmup_average "$seed" 3 warmup; evaluate "$exp/warmup_average/seed$seed"
  fi
  if wanted seed || wanted average || wanted mean || wanted lm || wanted qmf; then
    log "seed recipe, seed $seed"; train seed "$seed"; evaluate "$exp/seed/seed$seed" qmf
  fi
  if wanted average; then log "average, seed $seed"; derive average "$seed" 3 seed; evaluate "$exp/average/seed$seed"; fi
  if wanted mean; then
    log "mean subtraction, seed $seed"; derive mean "$seed" 1 seed score.subtract_mean=true
    evaluate "$exp/mean/seed$seed"
  fi
  if wanted lm; then log "lm, seed $seed"; train seed "$seed" "$exp/conf/seed_lm.yaml"; evaluate "$exp/seed/seed$seed/lm"; fi
  if wanted all; then log "all, seed $seed"; train all "$seed" "$exp/conf/all_lm.yaml"; evaluate "$exp/all/seed$seed/lm" qmf; fi
done

# The model dirs of ROW's seeds (SUFFIX: /lm). With --table-only, the seeds not evaluated yet are left
# out (the table's "seeds" column says how many each row has), and so is a row with none.
dirs() {
  local seed dir
  for seed in $seeds; do
    dir=$exp/$1/seed$seed$2
    if [ "$table_only" != true ] || [ -f "$dir/results" ]; then printf '%s ' "$dir"; fi
  done
}
{
  echo "# label, cosine scoring, AS-norm scoring, one model dir per seed (local/run_ablation.sh)"
  for row in $rows; do
    case $row in
      lm) model=seed suffix=/lm scorings="cosine asnorm" ;;
      qmf) model=seed suffix="" scorings="cosine-qmf asnorm-qmf" ;;
      all) model=all suffix=/lm scorings="cosine-qmf asnorm-qmf" ;;
      *) model=$row suffix="" scorings="cosine asnorm" ;;
    esac
    read -r cosine asnorm <<< "$scorings"
    found=$(dirs $model "$suffix")
    if [ -z "$found" ]; then echo "$0: row $row: no evaluated seed yet; left out of the table" >&2; continue; fi
    printf '%s\t%s\t%s\t%s\n' "${label[$row]}" "$cosine" "$asnorm" "$found"
  done
} > "$exp/manifest.tsv.tmp"
mv "$exp/manifest.tsv.tmp" "$exp/manifest.tsv"
steps/ablation_table.py --manifest "$exp/manifest.tsv" --out "$exp/ablation.md"

# Kaldi-style option parsing, sourced after a script sets its defaults:
#   stage=0; nj=2; . utils/parse_options.sh
# turns "--stage 3 --nj 4 --some-thing x" into stage=3 nj=4 some_thing=x for variables
# that already exist, and stops with an error on an unknown option. "--help" prints
# the header comment (lines starting with "# ") of $script_path, or of $0 when unset.
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${script_path:-$0}"; exit 0 ;;
    --*=*)
      _name="${1%%=*}"; _value="${1#*=}"; shift ;;
    --*)
      _name="$1"
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
      _value="$2"; shift 2 ;;
    *) break ;;
  esac
  _var="${_name#--}"; _var="${_var//-/_}"
  if ! declare -p "$_var" >/dev/null 2>&1; then
    echo "$0: unknown option $_name (try --help)" >&2; exit 1
  fi
  printf -v "$_var" '%s' "$_value"
done
unset _name _value _var

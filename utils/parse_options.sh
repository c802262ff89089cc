# Kaldi-style option parsing, sourced after a script sets its defaults:
#   stage=0; nj=2; force=false; . utils/parse_options.sh
# turns "--stage 3 --nj 4 --some-thing x" into stage=3 nj=4 some_thing=x for variables
# that already exist, and stops with an error on an unknown option. An option whose
# default is true or false is boolean: its value must be true or false (Kaldi's was_bool
# check), so "--force yes" is an error rather than false. "--help" prints the header
# comment (lines starting with "# ") of $script_path, or of $0 when unset, then runs the function
# help_more when the script defines one (a recipe's stage table). "--" ends the options.
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;  # the end of the options: the rest are arguments
    --help|-h)
      sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${script_path:-$0}"
      if declare -F help_more >/dev/null; then echo; help_more; fi
      exit 0 ;;
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
  case "${!_var}" in
    true|false)
      if [ "$_value" != true ] && [ "$_value" != false ]; then
        echo "$0: option $_name is boolean: expected true or false, got '$_value'" >&2; exit 1
      fi ;;
  esac
  printf -v "$_var" '%s' "$_value"
done
unset _name _value _var

#!/usr/bin/env bash
# Prints what the script runner handed over, as JSON: the REFLEX_INPUT_* variables, the names of
# every exported variable (to prove the worker's secrets stay out), the arguments, and stdin.
# Used by the runner's injection and clean-environment tests, and handy for debugging a playbook.
# Every value is escaped as data here; nothing is ever evaluated.
set -euo pipefail

json_string() {
  local s=$1 code ch
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  # Remaining control characters (0x01-0x1f) as \u00XX; the loop only runs when there are some.
  [[ $s == *[$'\x01'-$'\x1f']* ]] || { printf '"%s"' "$s"; return; }
  for code in {1..31}; do
    printf -v ch "\\x$(printf '%02x' "$code")"
    if [[ $s == *"$ch"* ]]; then
      s=${s//"$ch"/$(printf '\\u%04x' "$code")}
    fi
  done
  printf '"%s"' "$s"
}

stdin=$(cat)

printf '{"env":{'
first=1
while IFS= read -r name; do
  [[ $name == REFLEX_INPUT_* ]] || continue
  (( first )) || printf ','
  first=0
  json_string "$name"
  printf ':'
  json_string "${!name}"
done < <(compgen -e | LC_ALL=C sort)

printf '},"env_names":['
first=1
while IFS= read -r name; do
  (( first )) || printf ','
  first=0
  json_string "$name"
done < <(compgen -e | LC_ALL=C sort)

printf '],"argc":%d,"stdin":' "$#"
if [[ -n $stdin ]]; then printf '%s' "$stdin"; else printf 'null'; fi
printf '}\n'

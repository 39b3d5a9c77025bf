#!/usr/bin/env bash
# Creates, once, the Python venv that tests/interop_test.ts reads the data directory with (pyarrow,
# pandas, polars, duckdb, dask) and prints its python's path on stdout; nothing else goes there.
# Run by .ci/run, and by the test itself when MARKETPIPE_INTEROP_PYTHON is unset.
#
#   bash tests/interop_setup.sh [VENV_DIR]    default: ${XDG_CACHE_HOME:-$HOME/.cache}/marketpipe-interop-venv
#
# Quick when the venv already imports every reader. Packages come from the first file:// index that
# `pip config list` names (a local wheel mirror) when there is one, else from pip's own settings.
# On failure: one line on stderr, exit 1.
set -uo pipefail

venv=${1:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/marketpipe-interop-venv}
packages=(pyarrow pandas polars duckdb "dask[dataframe]")
imports="import pyarrow, pyarrow.dataset, pandas, polars, duckdb, dask.dataframe"
python="$venv/bin/python"

fail() {
  echo "interop setup: $1" >&2
  exit 1
}

ready() { [ -x "$python" ] && "$python" -c "$imports" >/dev/null 2>&1; }

if ready; then
  echo "$python"
  exit 0
fi

error=$(mkdir -p "$(dirname "$venv")" 2>&1) || fail "$error"
# One setup at a time per venv (two test runs starting together); the second finds it ready.
exec 9>"$venv.lock" || fail "cannot open $venv.lock"
flock 9 || fail "cannot lock $venv.lock"
if ready; then
  echo "$python"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || fail "python3 not found (apt-get install python3 python3-venv)"
python3 -c "import ensurepip, venv" >/dev/null 2>&1 ||
  fail "python3 has no venv module (apt-get install python3-venv)"

log="$venv.log"
rm -rf "$venv"
python3 -m venv "$venv" >"$log" 2>&1 || fail "python3 -m venv $venv failed: $(tail -1 "$log") (log: $log)"

# pip tries the default index first, and on a machine whose mirror is local that index is often
# unreachable and costs minutes of retries: point both the index and the extra index at the mirror.
mirror=$(python3 -m pip config list 2>/dev/null | grep -E "^[^=]*index-url=" | grep -o "file://[^' ]*" | head -1)
pip_args=(install --quiet --disable-pip-version-check)
if [ -n "$mirror" ]; then
  pip_args+=(--index-url "$mirror")
  export PIP_EXTRA_INDEX_URL="$mirror"
fi
"$python" -m pip "${pip_args[@]}" "${packages[@]}" >>"$log" 2>&1 ||
  fail "pip install ${packages[*]}${mirror:+ from $mirror} failed: $(tail -1 "$log") (log: $log)"
"$python" -c "$imports" >>"$log" 2>&1 || fail "the venv cannot import the readers: $(tail -1 "$log") (log: $log)"
echo "$python"

# Sourced by the scripts/setup-*.sh scripts: the venvs under <build>/ that
# the optional test suites use, made from PyPI and checked by an import.

# venv_ready VENV CHECK: VENV exists and its python runs CHECK (python -c).
venv_ready() {
  [ -x "$1/bin/python" ] && "$1/bin/python" -c "$2" >/dev/null 2>&1
}

# venv_install VENV LOG TIMEOUT PIP_ARGS...: a fresh VENV with
# `pip install PIP_ARGS` (output appended to LOG); on failure the venv is
# removed and the status is non-zero.
venv_install() {
  local venv="$1" log="$2" limit="$3"
  shift 3
  rm -rf "$venv"
  if python3 -m venv "$venv" >/dev/null 2>&1 &&
     timeout "$limit" "$venv/bin/pip" install -q --disable-pip-version-check \
       "$@" >>"$log" 2>&1; then
    return 0
  fi
  rm -rf "$venv"
  return 1
}

# venv_versions VENV REGEX: "name version;" of the installed packages whose
# names match REGEX.
venv_versions() {
  "$1/bin/pip" list 2>/dev/null | grep -Ei "^($2) " | tr -s ' ' | tr '\n' ';'
}

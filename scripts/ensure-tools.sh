#!/usr/bin/env bash
# Makes sure the external tools the tests talk to are installed:
# GNU tar, zstd, gzip (interoperability), openssl (signature interop) and
# age (encrypted archives).
# Installs missing ones with apt-get when running as root; otherwise says what
# is missing. With CI=true a missing tool is an error.
set -euo pipefail
declare -A package=([tar]=tar [zstd]=zstd [gzip]=gzip [openssl]=openssl [mkfifo]=coreutils [age]=age [age-keygen]=age)
missing=()
for tool in "${!package[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing tools (packages: ${missing[*]}); install them to run the interop tests" >&2
if [ "${CI:-}" = true ]; then exit 1; fi

#!/bin/sh
# install-deps.sh PKG... - install the Debian packages that are missing (needs root; otherwise says what to run).
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing missing packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "not root: run  sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || exit 1
apt-get install -y -qq --no-install-recommends $missing || exit 1

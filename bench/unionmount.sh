#!/usr/bin/env bash
# Runs the unionmount-testsuite (the overlayfs conformance suite kept by the overlayfs
# maintainer) against Strata's FUSE mount, and optionally against kernel overlayfs and
# fuse-overlayfs for comparison. Each test runs on its own, so one failure does not hide
# the next; the summary lists every failing test with the end of its output.
#
#   bench/unionmount.sh [--systems strata,kernel,fuse-overlayfs] [--modes ov,ov10] [--xdev]
#                       [--layout default|env] [--src GIT_URL_OR_DIR] [--out DIR] [--timeout SEC]
#                       [--whole] [TEST...]
#
# Needs: root, /dev/fuse, util-linux (mount, unshare), git, python3 (the suite's scripts use
# /usr/bin/python3 and the standard library only), node (for Strata). Missing Debian packages
# (git, python3, and fuse-overlayfs when asked for) are installed with apt-get.
# The suite is cloned from GitHub at a pinned commit into a cache dir; without access to
# GitHub pass --src with a local clone or mirror (any git URL or directory).
#
# How `--fuse=strata` reaches Strata: the suite runs
#   mount -t fuse.strata strata MNT -orw -olowerdir=L1[:L2...],upperdir=U,workdir=W
# and mount(8) then runs /sbin/mount.fuse.strata (only /sbin is searched for helpers):
#   mount.fuse.strata strata MNT -o rw,lowerdir=...,upperdir=...,workdir=...
# If no helper is installed there, this script links this checkout's bin/mount.fuse.strata
# for the run (what `strata install-helper` does) and removes the link on exit.
#
# Everything runs in a private mount namespace (unshare -m), so the suite's mounts on
# /lower, /upper and /mnt are invisible outside and disappear with it; processes left in
# that namespace after a test (a daemon that did not exit on umount) are reported and killed.
#
# --layout default: the suite's own layout (tmpfs on /lower, /upper; union on /mnt; the empty
#   dirs /lower and /upper are created on the host if missing). After each
#   test it runs `umount /mnt` then at once `umount /lower`, which fails with EBUSY if the FUSE
#   daemon has not yet exited and still holds files on /lower (fuse-overlayfs loses that race
#   now and then; the kernel cannot).
# --layout env: tmpfs mounts made by this script, passed in UNIONMOUNT_LOWERDIR and
#   UNIONMOUNT_BASEDIR, so the suite unmounts only the union and that race cannot happen;
#   the lower layer then stays writable (the suite remounts it read-only in its own layout).
set -euo pipefail

SUITE_URL_DEFAULT=https://github.com/amir73il/unionmount-testsuite
SUITE_COMMIT=f48a57d2a7db5f86ff3dbc4444c3c3041e182d7d   # 2025-05-24, "dir-weird-open-dir.py: adjust to upstream kernel"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

systems=strata
modes=ov,ov10
xdev=
src=${UNIONMOUNT_TESTSUITE_SRC:-$SUITE_URL_DEFAULT}
out=
per_test_timeout=300
whole=
layout=default
tests=()

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  exit "${1:-2}"
}

while [ $# -gt 0 ]; do
  case $1 in
    --systems) systems=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --xdev) xdev=--xdev; shift ;;
    --src) src=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --timeout) per_test_timeout=$2; shift 2 ;;
    --whole) whole=1; shift ;;
    --layout) layout=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) tests+=("$1"); shift ;;
  esac
done

die() { echo "unionmount: $*" >&2; exit 2; }

# --- prerequisites -----------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (the suite mounts tmpfs, overlay and FUSE filesystems)"
case $layout in default|env) ;; *) die "--layout is default or env" ;; esac
[ -c /dev/fuse ] || die "needs /dev/fuse (FUSE kernel module)"
command -v unshare >/dev/null || die "needs unshare (util-linux)"

need_pkgs=()
[ -x /usr/bin/python3 ] || need_pkgs+=(python3)
command -v git >/dev/null || need_pkgs+=(git)
case ",$systems," in *,fuse-overlayfs,*) command -v fuse-overlayfs >/dev/null || need_pkgs+=(fuse-overlayfs) ;; esac
if [ ${#need_pkgs[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing: ${need_pkgs[*]} (no apt-get to install them)"
  echo "installing Debian packages: ${need_pkgs[*]}" >&2
  apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2; } \
    || die "could not install ${need_pkgs[*]}"
fi
python=/usr/bin/python3

# --- the suite at the pinned commit --------------------------------------------------------
cache=${UNIONMOUNT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata/unionmount-testsuite}
suite=$cache/$SUITE_COMMIT
if [ ! -f "$suite/run" ]; then
  mkdir -p "$cache"
  tmpclone=$(mktemp -d "$cache/clone.XXXXXX")
  echo "cloning unionmount-testsuite from $src at ${SUITE_COMMIT:0:12}" >&2
  if ! git clone -q "$src" "$tmpclone" 2>"$tmpclone.err" || ! git -C "$tmpclone" -c advice.detachedHead=false checkout -q "$SUITE_COMMIT" 2>>"$tmpclone.err"; then
    cat "$tmpclone.err" >&2
    rm -rf "$tmpclone" "$tmpclone.err"
    die "cannot get unionmount-testsuite commit $SUITE_COMMIT from $src.
  It needs access to GitHub ($SUITE_URL_DEFAULT), or --src / UNIONMOUNT_TESTSUITE_SRC
  naming a local clone or mirror that holds that commit."
  fi
  rm -f "$tmpclone.err"
  mv "$tmpclone" "$suite"
fi

# --- the mount helper for fuse.strata ------------------------------------------------------
# mount(8) looks for mount.fuse.strata in /sbin only and runs it with PATH reset to
# /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, so node must be found there.
helper=/sbin/mount.fuse.strata
shipped=$repo/bin/mount.fuse.strata
installed_helper=
cleanup() { if [ -n "$installed_helper" ]; then rm -f "$installed_helper"; fi; }
trap cleanup EXIT
case ",$systems," in
  *,strata,*)
    [ -f "$repo/dist/fuse/cli.js" ] || die "build Strata first: (cd $repo && npx tsc -p .)"
    [ -x "$shipped" ] || die "no $shipped in this checkout"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh -c 'command -v node' >/dev/null \
      || die "node is not in the PATH mount(8) gives its helpers (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin);
  link it there, e.g. ln -s $(command -v node) /usr/local/bin/node"
    if [ ! -e "$helper" ] && [ ! -L "$helper" ]; then
      ln -s "$shipped" "$helper"
      installed_helper=$helper
    elif [ "$(readlink -f "$helper")" != "$(readlink -f "$shipped")" ]; then
      echo "note: $helper is not this checkout's helper ($(readlink -f "$helper")); testing what it runs" >&2
    fi
    ;;
esac

# --- the test list ---------------------------------------------------------------------------
# The suite's own list (from its `run` script), so a new test upstream is picked up with the pin.
all_tests() {
  "$python" - "$suite/run" "$1" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
main = re.search(r'^tests = \[(.*?)\]', src, re.S | re.M).group(1)
names = re.findall(r'"([^"]+)"', main)
xdev = sys.argv[2] == '1'
extra = re.findall(r'tests \+= \[(.*?)\]', src, re.S)
names += re.findall(r'"([^"]+)"', extra[0] if xdev else extra[1])
print('\n'.join(names))
EOF
}

stamp=$(date +%Y%m%d-%H%M%S)
out=${out:-$repo/bench/results/unionmount-$stamp}
mkdir -p "$out"
summary=$out/summary.md
{
  echo "# unionmount-testsuite ${SUITE_COMMIT:0:12} — $(date -Is)"
  echo
  echo "kernel $(uname -r); systems: $systems; modes: $modes${xdev:+; --xdev}; layout: $layout"
  echo
} >"$summary"

# Runs one invocation of the suite in a fresh private mount namespace. Leftover processes in
# that namespace (FUSE daemons that outlived their umount) are listed and killed by pid.
run_in_ns() {
  local log=$1; shift
  local nsfile
  nsfile=$(mktemp)
  set +e
  UNIONMOUNT_MNTOPTIONS=$mntopts timeout -k 10 "$per_test_timeout" unshare -m --propagation private sh -c '
    readlink /proc/self/ns/mnt > "$1"; shift
    layout=$1; shift
    if [ "$layout" = env ]; then
      t=$(mktemp -d /tmp/unionmount.XXXXXX) && chmod 755 "$t"
      mkdir "$t/lower" "$t/base"
      mount -t tmpfs lower_layer "$t/lower" && mount -t tmpfs upper_layer "$t/base" || exit 3
      export UNIONMOUNT_LOWERDIR="$t/lower" UNIONMOUNT_BASEDIR="$t/base"
    else
      mkdir -p /lower /upper
    fi
    cd "$1"; shift
    "$@"; rc=$?
    timeout 60 /usr/bin/python3 ./run -c >/dev/null 2>&1 || umount -l /mnt 2>/dev/null
    if [ "$layout" = env ]; then umount -l "$t/base/m" "$t/base" "$t/lower" 2>/dev/null; rm -rf "$t"; fi
    exit $rc' sh "$nsfile" "$layout" "$suite" "$python" ./run "$@" >"$log" 2>&1
  local rc=$?
  set -e
  local ns
  ns=$(cat "$nsfile"); rm -f "$nsfile"
  if [ -n "$ns" ]; then
    local p
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] || continue
      echo "leftover process in the test namespace: ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" >>"$log"
      kill -9 "${p#/proc/}" 2>/dev/null || true
    done
  fi
  [ $rc = 124 ] && echo "TIMEOUT after ${per_test_timeout}s" >>"$log"
  return $rc
}

# The failing subtest: from the last "TEST" header to the end, at most 25 lines.
failure_excerpt() {
  awk '/^TEST |^\*\*\* \.\/run/ { n = 0; delete buf } { buf[n++] = $0 } END { s = n > 25 ? n - 25 : 0; for (i = s; i < n; i++) print buf[i] }' "$1"
}

total_fail=0
IFS=, read -r -a sys_list <<<"$systems"
IFS=, read -r -a mode_list <<<"$modes"
for mode in "${mode_list[@]}"; do
  case $mode in ov) sel=--ov ;; ov10) sel=--ov=10 ;; ov*) sel=--ov=${mode#ov} ;; *) die "unknown mode $mode (ov, ov10, ovN)" ;; esac
  if [ ${#tests[@]} -gt 0 ]; then list=("${tests[@]}"); else mapfile -t list < <(all_tests "$([ -n "$xdev" ] && echo 1 || echo 0)"); fi
  for sys in "${sys_list[@]}"; do
    # --xdev tells the suite to expect EXDEV on renaming a lower dir: the kernel here has
    # redirect_dir=N, fuse-overlayfs never redirects, Strata needs redirect_dir=off for it.
    mntopts=${UNIONMOUNT_MNTOPTIONS:-}
    case $sys in
      kernel) fuse=() ;;
      strata) fuse=(--fuse="$sys"); [ -n "$xdev" ] && mntopts=${mntopts:-redirect_dir=off} ;;
      fuse-overlayfs) fuse=(--fuse="$sys") ;;
      *) die "unknown system $sys (strata, kernel, fuse-overlayfs)" ;;
    esac
    label="$sys $sel${xdev:+ $xdev}${mntopts:+ (-o $mntopts)}"
    [ "$layout" = env ] && label="$label (layout env)"
    dir=$out/$sys-$mode${xdev:+-xdev}-$layout
    mkdir -p "$dir"
    echo "== $label" >&2
    pass=(); fail=()
    if [ -n "$whole" ]; then
      if run_in_ns "$dir/all.log" "$sel" "${fuse[@]}" $xdev "${list[@]}"; then pass+=(all); else fail+=(all); fi
    else
      for t in "${list[@]}"; do
        if run_in_ns "$dir/$t.log" "$sel" "${fuse[@]}" $xdev "$t"; then
          pass+=("$t"); printf '  ok    %s\n' "$t" >&2
        else
          fail+=("$t"); printf '  FAIL  %s\n' "$t" >&2
        fi
      done
    fi
    total_fail=$((total_fail + ${#fail[@]}))
    {
      echo "## $label: ${#pass[@]} passed, ${#fail[@]} failed"
      echo
      for t in "${fail[@]}"; do
        echo "### $t"
        echo
        echo '```'
        failure_excerpt "$dir/$t.log"
        echo '```'
        echo
      done
    } >>"$summary"
  done
done

cat "$summary"
echo "logs: $out" >&2
[ $total_fail = 0 ]

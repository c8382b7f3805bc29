#!/usr/bin/env bash
# shellcheck disable=SC2059  # the table format FMT is a constant
# tune.sh - compare the running kernel against an Aurora sysctl profile, or apply it.
#
#   tune.sh check [PROFILE] [--only PREFIX]...   table: key / current / recommended / status
#                                                exit 0 all OK (or SKIP), 1 MISMATCH or MISSING, 2 usage
#   tune.sh apply [PROFILE] [--only PREFIX]...   write what differs (root only), report each change
#                 [--dry-run]                    exit 0 done, 1 a write failed, 2 usage / not root
#   tune.sh diff  [PROFILE] [--only PREFIX]...   sysctl.d-style -current/+recommended lines for what differs
#                                                exit 0 no difference, 1 differences
#
# PROFILE is a name under profiles/ ("default", "million") or a path; default: "default".
# --only PREFIX restricts to keys starting with PREFIX (e.g. --only net.); may be repeated.
#
# Profile format: sysctl.d(5). The comment line directly above a setting may start with a marker:
#   [min]   each field of the current value >= recommended is fine (size-like keys)
#   [max]   each field <= recommended is fine
#   [range] "LOW HIGH": current LOW <= recommended LOW and current HIGH >= recommended HIGH is fine
#   [boot]  like [min], but the key is read-only at run time (sized at boot by a kernel command-line
#           parameter named in the comment): check compares it, apply never writes it and prints BOOT
#   none    exact match (whitespace-normalised)
# A key prefixed with "-" is optional: if absent on this host it is SKIP, otherwise it is MISSING (a failure).
#
# Network namespaces: inside a non-initial netns, fs.*/vm.*/kernel.* keys are host-wide, and net.* keys the
# kernel does not namespace are either absent or read-only there; those are SKIP for check and never
# written by apply (so apply inside a netns cannot change the host).
#
# TUNE_PROC_SYS=DIR replaces /proc/sys (tests use a fake tree).
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROC_SYS=${TUNE_PROC_SYS:-/proc/sys}
INIT_NETNS_INO=4026531833   # PROC_NET_INIT_INO: fixed inode of the initial network namespace

usage() {
    sed -n '3,/^set -u/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- arguments ----
[ $# -ge 1 ] || usage
CMD=$1; shift
case "$CMD" in check|apply|diff) ;; -h|--help|help) usage ;; *) echo "tune.sh: unknown command '$CMD'" >&2; usage ;; esac
PROFILE=""
ONLY=()
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --only) [ $# -ge 2 ] || usage; ONLY+=("$2"); shift 2 ;;
        --only=*) ONLY+=("${1#--only=}"); shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage ;;
        -*) echo "tune.sh: unknown option '$1'" >&2; usage ;;
        *) [ -z "$PROFILE" ] || usage; PROFILE=$1; shift ;;
    esac
done
[ -n "$PROFILE" ] || PROFILE=default
if [ -f "$PROFILE" ]; then
    PFILE=$PROFILE
elif [ -f "$HERE/profiles/$PROFILE.conf" ]; then
    PFILE=$HERE/profiles/$PROFILE.conf
else
    echo "tune.sh: no profile '$PROFILE' (looked for $PROFILE and $HERE/profiles/$PROFILE.conf)" >&2
    exit 2
fi

# ---- environment ----
IN_NETNS=0
if [ -z "${TUNE_PROC_SYS:-}" ]; then
    ns=$(readlink /proc/self/ns/net 2>/dev/null || true)
    if [ -n "$ns" ] && [ "$ns" != "net:[$INIT_NETNS_INO]" ]; then IN_NETNS=1; fi
else
    [ -n "${TUNE_FAKE_NETNS:-}" ] && IN_NETNS=1
fi

# ---- profile parsing: parallel arrays ----
KEYS=(); VALS=(); SEMS=(); OPTS=()
selected() {
    local k=$1 p
    [ ${#ONLY[@]} -eq 0 ] && return 0
    for p in "${ONLY[@]}"; do [[ "$k" == "$p"* ]] && return 0; done
    return 1
}
norm() { local -a f; read -r -a f <<<"$*"; echo "${f[*]}"; }

sem=exact
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    t=$(norm "$line")
    case "$t" in
        "") sem=exact; continue ;;
        "#"*|";"*)
            case "$t" in
                "# [min]"*) sem=min ;;
                "# [max]"*) sem=max ;;
                "# [range]"*) sem=range ;;
                "# [boot]"*) sem=boot ;;
                *) sem=exact ;;
            esac
            continue ;;
    esac
    if [[ "$line" != *=* ]]; then
        echo "tune.sh: $PFILE:$lineno: not 'key = value'" >&2; exit 2
    fi
    key=$(norm "${line%%=*}"); val=$(norm "${line#*=}")
    opt=0
    if [[ "$key" == -* ]]; then opt=1; key=${key#-}; fi
    key=${key//\//.}
    if selected "$key"; then
        KEYS+=("$key"); VALS+=("$val"); SEMS+=("$sem"); OPTS+=("$opt")
    fi
    sem=exact
done <"$PFILE"

# ---- comparison helpers ----
is_uint_list() { [[ "$1" =~ ^[0-9]+( [0-9]+)*$ ]]; }

# satisfies SEM CURRENT RECOMMENDED -> 0 if the current value is acceptable
satisfies() {
    local s=$1 cur=$2 rec=$3 i
    [ "$cur" = "$rec" ] && return 0
    [ "$s" = exact ] && return 1
    [ "$s" = boot ] && s=min
    is_uint_list "$cur" && is_uint_list "$rec" || return 1
    local -a c r; read -r -a c <<<"$cur"; read -r -a r <<<"$rec"
    [ ${#c[@]} -eq ${#r[@]} ] || return 1
    case "$s" in
        min) for i in "${!r[@]}"; do [ "${c[$i]}" -ge "${r[$i]}" ] || return 1; done ;;
        max) for i in "${!r[@]}"; do [ "${c[$i]}" -le "${r[$i]}" ] || return 1; done ;;
        range) [ ${#r[@]} -eq 2 ] && [ "${c[0]}" -le "${r[0]}" ] && [ "${c[1]}" -ge "${r[1]}" ] || return 1 ;;
    esac
    return 0
}

# target SEM CURRENT RECOMMENDED -> the value apply writes: never lowers a [min] field that is larger, etc.
target() {
    local s=$1 cur=$2 rec=$3 i
    [ "$s" = boot ] && s=min
    if [ "$s" = exact ] || ! is_uint_list "$cur" || ! is_uint_list "$rec"; then echo "$rec"; return; fi
    local -a c r o=(); read -r -a c <<<"$cur"; read -r -a r <<<"$rec"
    if [ ${#c[@]} -ne ${#r[@]} ]; then echo "$rec"; return; fi
    case "$s" in
        min) for i in "${!r[@]}"; do o+=("$(( c[i] > r[i] ? c[i] : r[i] ))"); done ;;
        max) for i in "${!r[@]}"; do o+=("$(( c[i] < r[i] ? c[i] : r[i] ))"); done ;;
        range) o=("$(( c[0] < r[0] ? c[0] : r[0] ))" "$(( c[1] > r[1] ? c[1] : r[1] ))") ;;
    esac
    echo "${o[*]}"
}

sem_label() {
    case "$1" in min|boot) echo ">= $2" ;; max) echo "<= $2" ;; range) echo "within $2" ;; *) echo "$2" ;; esac
}

keypath() { echo "$PROC_SYS/${1//.//}"; }

# state KEY -> sets CUR and STATE: present | absent | hostwide | readonly
state_of() {
    local key=$1 p
    p=$(keypath "$key")
    CUR=""
    if [ ! -e "$p" ]; then
        STATE=absent
        [ "$IN_NETNS" = 1 ] && STATE=hostwide
        return
    fi
    CUR=$(norm "$(cat "$p" 2>/dev/null)")
    STATE=present
    if [ "$IN_NETNS" = 1 ]; then
        if [[ "$key" != net.* ]]; then STATE=hostwide
        elif [ ! -w "$p" ]; then STATE=hostwide   # read-only in a child netns: a host-wide value
        fi
    elif [ ! -w "$p" ] && [ "$(id -u)" = 0 ]; then
        STATE="readonly"
    fi
}

# ---- commands ----
FMT="%-38s %-24s %-27s %s\n"

do_check() {
    local i bad=0 nok=0 nmis=0 nskip=0 st
    printf "$FMT" KEY CURRENT RECOMMENDED STATUS
    for i in "${!KEYS[@]}"; do
        state_of "${KEYS[$i]}"
        local rec=${VALS[$i]}
        case "$STATE" in
            absent)
                if [ "${OPTS[$i]}" = 1 ]; then st="SKIP (not on this kernel)"; nskip=$((nskip + 1))
                else st="MISSING"; bad=1; nmis=$((nmis + 1)); fi
                CUR="-" ;;
            hostwide)
                st="SKIP (host-wide, not in this netns)"; nskip=$((nskip + 1))
                [ -n "$CUR" ] || CUR="-" ;;
            *)
                if satisfies "${SEMS[$i]}" "$CUR" "$rec"; then st=OK; nok=$((nok + 1))
                else st=MISMATCH; bad=1; nmis=$((nmis + 1)); fi ;;
        esac
        printf "$FMT" "${KEYS[$i]}" "${CUR:-\"\"}" "$(sem_label "${SEMS[$i]}" "$rec")" "$st"
    done
    echo "profile $(basename "$PFILE"): ${#KEYS[@]} keys, $nok OK, $nmis MISMATCH/MISSING, $nskip SKIP$([ "$IN_NETNS" = 1 ] && echo ' (inside a network namespace)')"
    return $bad
}

do_diff() {
    local i differ=0
    for i in "${!KEYS[@]}"; do
        state_of "${KEYS[$i]}"
        [ "$STATE" = hostwide ] && continue
        if [ "$STATE" = absent ]; then
            [ "${OPTS[$i]}" = 1 ] && continue
            echo "-${KEYS[$i]} (absent)"; echo "+${KEYS[$i]} = ${VALS[$i]}"; differ=1; continue
        fi
        satisfies "${SEMS[$i]}" "$CUR" "${VALS[$i]}" && continue
        if [ "${SEMS[$i]}" = boot ]; then   # not a run-time setting: a comment, not a sysctl.d line
            echo "# ${KEYS[$i]} = $CUR, wants >= ${VALS[$i]}: set at boot (kernel command line)"; differ=1; continue
        fi
        echo "-${KEYS[$i]} = $CUR"
        echo "+${KEYS[$i]} = $(target "${SEMS[$i]}" "$CUR" "${VALS[$i]}")"
        differ=1
    done
    return $differ
}

do_apply() {
    if [ "$(id -u)" != 0 ] && [ $DRY = 0 ]; then
        echo "tune.sh apply: must run as root (use --dry-run to see what would change)" >&2
        return 2
    fi
    local i fail=0 nchg=0 want got p
    for i in "${!KEYS[@]}"; do
        local key=${KEYS[$i]}
        state_of "$key"
        case "$STATE" in
            absent)
                if [ "${OPTS[$i]}" = 1 ]; then echo "SKIP     $key (not on this kernel)"
                else echo "MISSING  $key (not on this kernel)"; fail=1; fi
                continue ;;
            hostwide) echo "SKIP     $key (host-wide, not changed from inside a netns)"; continue ;;
            readonly)
                if [ "${SEMS[$i]}" != boot ]; then
                    echo "FAIL     $key (read-only)"; [ "${OPTS[$i]}" = 1 ] || fail=1; continue
                fi ;;
        esac
        if satisfies "${SEMS[$i]}" "$CUR" "${VALS[$i]}"; then
            echo "OK       $key = $CUR"
            continue
        fi
        if [ "${SEMS[$i]}" = boot ]; then   # cannot be changed at run time: say how, do not count a failure
            echo "BOOT     $key = $CUR: wants >= ${VALS[$i]}, set at boot (see the profile's comment)"
            continue
        fi
        want=$(target "${SEMS[$i]}" "$CUR" "${VALS[$i]}")
        if [ $DRY = 1 ]; then echo "WOULD    $key: ${CUR:-\"\"} -> $want"; nchg=$((nchg + 1)); continue; fi
        p=$(keypath "$key")
        if ! printf '%s\n' "$want" >"$p" 2>/dev/null; then
            echo "FAIL     $key: write of '$want' refused"; [ "${OPTS[$i]}" = 1 ] || fail=1; continue
        fi
        got=$(norm "$(cat "$p" 2>/dev/null)")
        if satisfies "${SEMS[$i]}" "$got" "${VALS[$i]}"; then
            echo "CHANGED  $key: ${CUR:-\"\"} -> $got"; nchg=$((nchg + 1))
        else
            echo "FAIL     $key: wrote '$want', reads back '$got'"; fail=1
        fi
    done
    echo "profile $(basename "$PFILE"): $nchg $([ $DRY = 1 ] && echo 'would change' || echo changed)$([ $fail = 1 ] && echo ', with failures')"
    [ $DRY = 0 ] && [ $nchg -gt 0 ] && [ "$IN_NETNS" = 0 ] && [ -z "${TUNE_PROC_SYS:-}" ] &&
        echo "note: runtime only; install $PFILE as /etc/sysctl.d/90-aurora.conf to keep it across reboots"
    return $fail
}

case "$CMD" in
    check) do_check ;;
    diff) do_diff ;;
    apply) do_apply ;;
esac

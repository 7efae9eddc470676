# Shared helpers for the bench scripts (sourced, not run).

now_ns() { date +%s%N; }

# Median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# timed NAME CMD...: runs CMD, appends "NAME seconds" to $log; output goes
# to $out/.out and $out/.err, shown only if CMD fails (which ends the script).
timed() {
    local name="$1"; shift
    local t0 t1
    t0=$(now_ns)
    "$@" >"$out/.out" 2>"$out/.err" || { echo "$name failed:" >&2; cat "$out/.err" >&2; exit 1; }
    t1=$(now_ns)
    echo "$name $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" | tee -a "$log" >&2
}

# The seconds logged under NAME, one per line.
col() { awk -v n="$1" '$1 == n { print $2 }' "$log"; }

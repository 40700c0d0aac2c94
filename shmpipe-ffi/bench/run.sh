#!/usr/bin/env bash
# Runs the C (libshmpipe) and Rust (shmpipe crate) benchmarks interleaved,
# REPS times each (C first on odd repetitions, Rust first on even ones), and
# prints the medians, the best figures and the C/Rust ratios. Usage: run.sh BENCH_C BENCH_RUST
# (make -C shmpipe-ffi bench). STREAM_N, PINGPONG_N and REPS override the
# sizes.
set -euo pipefail
bench_c=$1 bench_rust=$2
reps=${REPS:-5} stream_n=${STREAM_N:-5000000} pingpong_n=${PINGPONG_N:-200000}
declare -a c_stream=() r_stream=() c_pp=() r_pp=()
value() { awk '{print $2}'; }
for rep in $(seq "$reps"); do
    if ((rep % 2)); then order="c rust"; else order="rust c"; fi
    for who in $order; do
        if [ "$who" = c ]; then
            c_stream+=("$("$bench_c" stream "$stream_n" | value)")
            c_pp+=("$("$bench_c" pingpong "$pingpong_n" | value)")
        else
            r_stream+=("$("$bench_rust" stream "$stream_n" | value)")
            r_pp+=("$("$bench_rust" pingpong "$pingpong_n" | value)")
        fi
    done
    echo "rep $rep: stream C ${c_stream[-1]} / Rust ${r_stream[-1]} msgs/s;" \
        "ping-pong p50 C ${c_pp[-1]} / Rust ${r_pp[-1]} ns"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
best_max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
best_min() { printf '%s\n' "$@" | sort -g | head -n 1; }
cs=$(median "${c_stream[@]}") rs=$(median "${r_stream[@]}")
cp=$(median "${c_pp[@]}") rp=$(median "${r_pp[@]}")
# Best of the repetitions too: on a shared machine other work only ever
# slows a spinning benchmark down, so the best figure is the least
# disturbed one.
bcs=$(best_max "${c_stream[@]}") brs=$(best_max "${r_stream[@]}")
bcp=$(best_min "${c_pp[@]}") brp=$(best_min "${r_pp[@]}")
awk -v reps="$reps" -v cs="$cs" -v rs="$rs" -v cp="$cp" -v rp="$rp" \
    -v bcs="$bcs" -v brs="$brs" -v bcp="$bcp" -v brp="$brp" 'BEGIN {
    printf "\n%-38s %14s %14s %8s\n", reps " repetitions", "C (libshmpipe)", "Rust (shmpipe)", "C/Rust"
    printf "%-38s %14.2f %14.2f %8.3f\n", "64 B stream, M msgs/s, median", cs / 1e6, rs / 1e6, cs / rs
    printf "%-38s %14.2f %14.2f %8.3f\n", "64 B stream, M msgs/s, best", bcs / 1e6, brs / 1e6, bcs / brs
    printf "%-38s %14.0f %14.0f %8.3f\n", "64 B ping-pong p50 ns, median", cp, rp, cp / rp
    printf "%-38s %14.0f %14.0f %8.3f\n", "64 B ping-pong p50 ns, best", bcp, brp, bcp / brp
}'

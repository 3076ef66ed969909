#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets (Fuzz/, a package of its own, so `swift build` of the
# project never pays for them) and runs each for FUZZ_SECONDS (default 300). `make test` runs it
# with FUZZ_SECONDS=25. The seed corpus is Fuzz/corpus/<target>/ (read, never written); what a run
# finds goes to Fuzz/.work/<target>/, crashes to Fuzz/.artifacts/. FUZZ_MERGE=1 merges the new
# inputs that add coverage into the committed corpus. FUZZ_TARGETS picks targets.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-300}
targets=${FUZZ_TARGETS:-"client_frame resp"}
# Release: a clean build costs the same CPU as debug here (~2.5 CPU-minutes, swift-nio's NIOCore
# included) and runs the targets 2-5 times faster.
config=${FUZZ_CONFIG:-release}

mkdir -p Fuzz/.artifacts
# (ld.gold warns about every ASan symbol it cannot export: noise, kept out of the output.)
if ! swift build --package-path Fuzz -c "$config" >Fuzz/.artifacts/build.log 2>&1; then
    grep -v 'warning: Cannot export' Fuzz/.artifacts/build.log | tail -40
    echo "fuzz: FAILED (build)"
    exit 1
fi
grep -E '^Build complete' Fuzz/.artifacts/build.log
bin=Fuzz/.build/$config

# The Swift runtime's backtracer and ASan both want the crash; let ASan and libFuzzer report it.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-handle_abort=1}
status=0
for target in $targets; do
    case $target in
        client_frame) exe=FuzzClientFrame; max_len=8192 ;;
        resp) exe=FuzzRESP; max_len=4096 ;;
        *) echo "fuzz: unknown target $target"; exit 2 ;;
    esac
    work=Fuzz/.work/$target
    mkdir -p "$work"
    log=Fuzz/.artifacts/$target.log
    echo "fuzz: $target for ${seconds}s (log $log)"
    touch "Fuzz/.artifacts/.$target.start"
    # New inputs go to the first directory; the committed corpus (second) is only read. Every
    # corpus input runs first, so a regression input in it fails at once.
    "$bin/$exe" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -dict="Fuzz/dict/$target.dict" -artifact_prefix="Fuzz/.artifacts/$target-" -print_final_stats=1 \
        "$work" "Fuzz/corpus/$target" >"$log" 2>&1
    rc=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | tr '\n' ' '; echo
    if [ "$rc" != 0 ]; then
        status=1
        echo "fuzz: $target FAILED (exit $rc); the end of its log:"
        grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -40
        find Fuzz/.artifacts -name "$target-*" -newer "Fuzz/.artifacts/.$target.start" \
            -exec echo "fuzz: reproduce with SWIFT_BACKTRACE=enable=no $bin/$exe" {} \;
    elif [ "${FUZZ_MERGE:-0}" = 1 ]; then
        "$bin/$exe" -merge=1 -max_len="$max_len" "Fuzz/corpus/$target" "$work" >>"$log" 2>&1 || status=1
        echo "fuzz: $target corpus now $(ls "Fuzz/corpus/$target" | wc -l) inputs"
    fi
done
[ "$status" = 0 ] && echo "fuzz: no crash" || echo "fuzz: FAILED"
exit "$status"

#!/bin/bash
# Figure "gui": a full-window update at 1280x800, from a program's drawing to pixels on the host
# display. The program (bulkhead-gui-testclient frames --image) uploads a whole new frame as fast as its
# X server takes it, each in a colour that encodes the time it was drawn (CLOCK_MONOTONIC, 100 us units);
# an observer on the host display reads one pixel of the window the user sees, counts the frames that
# reach it and their latency (now - the time in the pixel). Side by side in the same run, on the same
# headless host display (Xvfb 1600x1000):
#   direct:   the program on the host display itself (the physical floor here);
#   bulkhead: the program in a gui compartment, its window shown by bulkhead-guid;
#   xpra:     the program in an xpra server, shown by `xpra attach` (rgb, mmap, 3-px border), when
#             xpra is installed (Debian's 3.1).
# BENCH_GUI_ROUNDS rounds (default 3) of BENCH_GUI_SECONDS (default 4) each; figures are medians.
# The same with a program whose X server fills the window itself is in the notes. The headline is the frame time (1000 / frames seen per second) against direct: ratio = bulkhead's
# frame time / direct's (target <= 2, i.e. at least half the direct frame rate, and ahead of xpra).
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require python3 Xvfb xdpyinfo
[ "$(id -u)" -eq 0 ] || bench_fail "gui: the broker needs root"
CLIENT=$(dirname "$BULKHEAD")/tests/bulkhead-gui-testclient
[ -x "$CLIENT" ] || bench_fail "gui: $CLIENT not built"
ROUNDS=${BENCH_GUI_ROUNDS:-3}
SECONDS_EACH=${BENCH_GUI_SECONDS:-4}

number=170
while [[ -e /tmp/.X$number-lock || -e /tmp/.X11-unix/X$number ]]; do number=$((number + 1)); done
Xvfb ":$number" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
stop_xvfb() { kill "$XVFB_PID" 2>/dev/null || true; pkill -f '^sleep 617$' 2>/dev/null || true; }
bench_extra_cleanup+=(stop_xvfb)
export DISPLAY=:$number
for _ in $(seq 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.05; done

bench_broker_start "[system]
display = \"$DISPLAY\"

[templates.host]
kind = \"host\"

[compartments.work]
label = \"red\"
gui = true
disk = \"none\""
"$BULKHEAD" start --root "$BENCH_ROOT" work >/dev/null
"$BULKHEAD" run --root "$BENCH_ROOT" work -- sh -c 'cat > ~/gtc && chmod +x ~/gtc' <"$CLIENT"

# observe PREFIX X Y: the observer's JSON for the window titled PREFIX..., read at X,Y of it
observe() {
    local id
    id=$("$CLIENT" find --name-prefix "$1" --timeout-ms 10000 | cut -f1) || return 1
    sleep 0.5 # past the first frames
    "$CLIENT" observe --window "$id" --x "$2" --y "$3" --seconds "$SECONDS_EACH"
}
direct=() ours=() xpra=() direct_fill=() ours_fill=() xpra_fill=()
have_xpra=0
command -v xpra >/dev/null && have_xpra=1
# measure KIND ROUND: one figure of each side; KIND is "image" (the program uploads each frame, as
# client-side renderers do) or "fill" (its X server fills the window: no pixels cross from the program)
measure() {
    local kind=$1 round=$2 args program xnum server client
    args="frames --width 1280 --height 800 --seconds $((SECONDS_EACH + 3))"
    [[ $kind == image ]] && args="$args --image"
    local -n direct_out=direct ours_out=ours xpra_out=xpra
    if [[ $kind == fill ]]; then local -n direct_out=direct_fill ours_out=ours_fill xpra_out=xpra_fill; fi
    # shellcheck disable=SC2086
    "$CLIENT" $args --title "direct-$kind-$round" >/dev/null &
    program=$!
    direct_out+=("$(observe "direct-$kind-$round" 10 10)")
    wait "$program"
    "$BULKHEAD" run --root "$BENCH_ROOT" work -- sh -c "~/gtc $args --title ours-$kind-$round" >/dev/null < <(exec sleep 617) &
    program=$!
    ours_out+=("$(observe "[work] ours-$kind-$round" 13 13)")
    wait "$program" 2>/dev/null || true
    [[ $have_xpra -eq 1 ]] || return 0
    xnum=$((number + 1))
    while [[ -e /tmp/.X$xnum-lock || -e /tmp/.X11-unix/X$xnum ]]; do xnum=$((xnum + 1)); done
    xpra start ":$xnum" --daemon=no --no-mdns --no-pulseaudio --no-notifications --no-clipboard --no-printing --no-webcam \
        --no-speaker --no-microphone --mmap=yes --encoding=rgb --xvfb="Xvfb +extension Composite -screen 0 1600x1000x24+32 -nolisten tcp -noreset" \
        --start-child="$CLIENT $args --title xpra-$kind-$round" --exit-with-children=yes >"$BENCH_ROOT/xpra-server.log" 2>&1 &
    server=$!
    sleep 3
    xpra attach ":$xnum" --encoding=rgb --mmap=yes --border=red,3 --title='[work] @title@' >"$BENCH_ROOT/xpra-client.log" 2>&1 &
    client=$!
    xpra_out+=("$(observe "[work] xpra-$kind-$round" 10 10 || echo '{}')")
    xpra stop ":$xnum" >/dev/null 2>&1 || true
    kill "$client" "$server" 2>/dev/null || true
    wait "$client" "$server" 2>/dev/null || true
}
for round in $(seq "$ROUNDS"); do
    measure image "$round"
    measure fill "$round"
done

python3 - "$(printf '%s\n' "${direct[@]}")" "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${xpra[@]}")" \
    "$(printf '%s\n' "${direct_fill[@]}")" "$(printf '%s\n' "${ours_fill[@]}")" "$(printf '%s\n' "${xpra_fill[@]}")" <<'PY'
import json, statistics, sys
def parse(text):
    return [json.loads(line) for line in text.splitlines() if line.strip() and json.loads(line).get("frames_seen")]
direct, ours, xpra, direct_fill, ours_fill, xpra_fill = (parse(a) for a in sys.argv[1:7])
m = statistics.median
def frame_ms(runs):
    return [1000 / r["fps"] for r in runs if r["fps"] > 0]
def side(label, runs, command):
    values = frame_ms(runs)
    return {"label": label, "command": command, "median_ms": m(values), "mean_ms": statistics.mean(values),
            "stddev_ms": statistics.stdev(values) if len(values) > 1 else 0.0, "min_ms": min(values), "max_ms": max(values), "runs": len(values)}
def say(name, runs):
    if not runs:
        return f"{name}: not measured (xpra not installed)"
    return (f"{name}: {m([r['fps'] for r in runs]):.0f} frames/s seen on the host display, latency p50 "
            f"{m([r['latency_ms_p50'] for r in runs]):.2f} ms, p90 {m([r['latency_ms_p90'] for r in runs]):.2f} ms")
def rate(a, b):
    return m([r["fps"] for r in a]) / m([r["fps"] for r in b]) if a and b else float("nan")
notes = ["frame time = 1000 / frames seen per second on the host display (a full 1280x800 update each); ratio = bulkhead / direct",
         "a program that uploads each frame (PutImage, as client-side renderers do):",
         say("  direct (the host display itself)", direct), say("  bulkhead (gui compartment, bulkhead-guid)", ours),
         say("  xpra 3.1 (rgb, mmap)", xpra),
         f"  bulkhead / direct frame rate {rate(ours, direct):.2f} (target >= 0.5), bulkhead / xpra {rate(ours, xpra):.2f}",
         "a program whose X server fills the window (no pixels cross from the program: the direct side moves nothing):",
         say("  direct", direct_fill), say("  bulkhead", ours_fill), say("  xpra", xpra_fill),
         f"  bulkhead / direct frame rate {rate(ours_fill, direct_fill):.2f}, bulkhead / xpra {rate(ours_fill, xpra_fill):.2f}"]
print(json.dumps({"figure": "gui: full-window update at 1280x800, frame time on the host display",
                  "bulkhead": side("bulkhead", ours, "run work -- bulkhead-gui-testclient frames --image"),
                  "peer": side("direct on the host display", direct, "bulkhead-gui-testclient frames --image"),
                  "ratio": m(frame_ms(ours)) / m(frame_ms(direct)), "notes": notes}))
PY

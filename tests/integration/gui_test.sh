#!/usr/bin/env bash
# The desktop end to end, headless: a host Xvfb is the display, a broker shows gui compartments on it.
# A hostile program in `work` paints its window in another label's blue, draws a fake green frame and
# titles itself "[vault] login"; the screenshot must show a ring of exactly work's red around it and
# the title "[work] [vault] login". Also: a full-screen override-redirect window is framed and kept on
# the screen, typing reaches the focused window's program, a compartment cannot reach the host display
# or another compartment's windows, Ctrl-Shift-C/V through the broker (ask = the keystroke's consent,
# deny still refuses, emptied after paste, shared with bulkhead-clip), resizing, a stopped compartment's
# windows go, a killed GUI daemon comes back, a disposable's window; then a hostile GUI agent speaking
# to bulkhead-guid directly: sealed buffers, malformed records disconnect, the daemon's confinement.
# Usage: gui_test.sh PATH/TO/bulkhead PATH/TO/bulkhead-gui-testclient
set -u
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
broker_test_setup gui "${1:-}"
CLIENT=$(realpath "${2:?usage: gui_test.sh PATH/TO/bulkhead PATH/TO/bulkhead-gui-testclient}")
GUID=$(dirname "$BULKHEAD")/bulkhead-guid
XVFB_PID=

test_cleanup_extra() {
    pkill -f '^sleep 613$' 2>/dev/null # the stdin of the background programs
    [[ -n $XVFB_PID ]] && kill "$XVFB_PID" 2>/dev/null
    [[ -n $XVFB_PID ]] && wait "$XVFB_PID" 2>/dev/null
}

for tool in Xvfb xwd convert xdotool xclip xterm xprop; do
    command -v "$tool" >/dev/null || { echo "FAIL $tool is not installed (make test installs it)"; exit 1; }
done

# ---- the host display: not :0, which is every compartment's own display's name ----
number=150
while [[ -e /tmp/.X$number-lock || -e /tmp/.X11-unix/X$number ]]; do number=$((number + 1)); done
Xvfb ":$number" -screen 0 1280x800x24 -nolisten tcp >"$ROOT/xvfb.log" 2>&1 &
XVFB_PID=$!
export DISPLAY=:$number
for _ in $(seq 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.05; done
xdpyinfo >/dev/null 2>&1 || { echo "FAIL the host Xvfb did not start: $(cat "$ROOT/xvfb.log")"; exit 1; }

mkdir -p "$ROOT/etc/policy.d"
cat >"$ROOT/etc/system.toml" <<EOF
[system]
display = "$DISPLAY"
default_disposable = "untrusted"

[templates.host]
kind = "host"

[compartments.work]
label = "red"
gui = true
disk = "none"

[compartments.vault]
label = "black"
gui = true
disk = "none"

[compartments.plain]
label = "green"
disk = "none"

[compartments.untrusted]
label = "red"
gui = true
disposable_template = true
EOF
cat >"$ROOT/etc/policy.d/50-clipboard.policy" <<'EOF'
bulkhead.Clipboard  *  @any  @any  ask
EOF
start_daemon --config "$ROOT/etc/system.toml"

# find PREFIX: "ID X Y W H" of the host window titled PREFIX... (5 s at most)
find_window() { "$CLIENT" find --name-prefix "$1" --timeout-ms "${2:-5000}" 2>/dev/null | tr '\t' ' '; }
wait_viewable() { for _ in $(seq 50); do xwininfo -id "$1" 2>/dev/null | grep -q IsViewable && return; sleep 0.1; done; }
shot() { xwd -root -silent | convert xwd:- "$ROOT/shot.png"; }
pixel() { convert "$ROOT/shot.png" -crop "1x1+$1+$2" -depth 8 txt:- | grep -o '#[0-9A-F]\{6\}' | head -1; }
# ring_colours X Y W H: every colour of the 3-pixel ring of the host window at X,Y of W x H
ring_colours() {
    local x=$1 y=$2 w=$3 h=$4
    for crop in "${w}x3+$x+$y" "${w}x3+$x+$((y + h - 3))" "3x${h}+$x+$y" "3x${h}+$((x + w - 3))+$y"; do
        convert "$ROOT/shot.png" -crop "$crop" +repage -unique-colors -depth 8 txt:- | grep -o '#[0-9A-F]\{6\}'
    done | sort -u | tr '\n' ' '
}
# raised_ring ID X Y W H: the colours of that window's ring once it is on top of the others
raised_ring() {
    xdotool windowraise "$1"
    sleep 0.3
    shot
    ring_colours "$2" "$3" "$4" "$5"
}
install_client() { "$B" run "$1" -- sh -c 'cat > ~/gtc && chmod +x ~/gtc' <"$CLIENT"; }
# A program that runs until the test ends (its `run` is in the background; its stdin stays open,
# held by a `sleep 613` that holds none of the test's own streams).
run_bg() { # NAME|--disposable TEMPLATE ARGS... ; sets BG_PID
    local out=$ROOT/bg-$1${2:+-$2}.out
    "$B" run "$@" < <(exec sleep 613 2>/dev/null) >"$out" 2>&1 &
    BG_PID=$!
}

# ---- a hostile window: the ring is the label's, the title starts with [work] ----
check gui-env-display 0 ":0" -- "$B" run work -- sh -c 'echo $DISPLAY'
check plain-has-no-display 0 "" -- "$B" run plain -- sh -c '[ -z "${DISPLAY:-}" ]'
install_client work
install_client vault
run_bg work -- sh -c '~/gtc hostile --override-fullscreen'
read -r fs_id fs_x fs_y fs_w fs_h <<<"$(find_window '[work] fullscreen')"
read -r id x y w h <<<"$(find_window '[work] [vault] login')"
if [[ -z ${id:-} ]]; then
    fail "hostile-window-shown: no host window titled '[work] [vault] login'; $(xwininfo -root -tree 2>&1 | grep -c '"') windows; log: $(tail -5 "$LOG")"
else
    pass "hostile-window-shown"
    title=$(xprop -id "$id" _NET_WM_NAME)
    [[ $title == *'"[work] [vault] login"' ]] && pass "title-prefixed" || fail "title-prefixed: $title"
    [[ $(xprop -id "$id" WM_NAME) == *'"[work] [vault] login"' ]] && pass "wm-name-prefixed" || fail "wm-name-prefixed: $(xprop -id "$id" WM_NAME)"
    [[ $(xprop -id "$id" WM_CLASS) == *'"bulkhead-work"'* ]] && pass "wm-class" || fail "wm-class: $(xprop -id "$id" WM_CLASS)"
    [[ $w -eq 406 && $h -eq 306 ]] && pass "frame-is-window-plus-ring" || fail "frame-is-window-plus-ring: ${w}x$h"
fi
# The full-screen override-redirect window: framed, within the screen, not above everything unframed.
if [[ -z ${fs_id:-} ]]; then
    fail "fullscreen-window-shown: none"
else
    [[ "$fs_x $fs_y $fs_w $fs_h" == "0 0 1280 800" ]] && pass "fullscreen-frame-on-screen" || fail "fullscreen-frame-on-screen: $fs_x $fs_y $fs_w $fs_h"
    colours=$(raised_ring "$fs_id" "$fs_x" "$fs_y" "$fs_w" "$fs_h")
    [[ $colours == "#CC0000 " ]] && pass "fullscreen-ring-is-red" || fail "fullscreen-ring-is-red: $colours"
    [[ $(pixel 640 400) == "#75507B" ]] && pass "fullscreen-content-is-the-program's" || fail "fullscreen-content: $(pixel 640 400)"
    grep -q "covers more than 90% of the screen" "$LOG" && pass "fullscreen-override-redirect-dropped" || fail "fullscreen-override-redirect-dropped: $(tail -3 "$LOG")"
    xdotool windowunmap "$fs_id"
fi
if [[ -n ${id:-} ]]; then
    colours=$(raised_ring "$id" "$x" "$y" "$w" "$h")
    [[ $colours == "#CC0000 " ]] && pass "ring-is-exactly-red" || fail "ring-is-exactly-red: $colours"
    # Inside the ring: the program's own fake green frame, then its blue.
    [[ $(pixel $((x + 3)) $((y + 3))) == "#73D216" ]] && pass "content-starts-inside-ring" || fail "content-starts-inside-ring: $(pixel $((x + 3)) $((y + 3)))"
    [[ $(pixel $((x + w / 2)) $((y + h / 2))) == "#3465A4" ]] && pass "content-is-the-program's" || fail "content-is-the-program's: $(pixel $((x + w / 2)) $((y + h / 2)))"
fi
ls_gui=$(json_field work gui)
[[ $ls_gui == shown ]] && pass "ls-says-shown" || fail "ls-says-shown: $ls_gui"

# ---- isolation: no way to the host display or to another compartment's windows ----
check no-host-display-socket 1 "" -- "$B" run work -- sh -c "xdpyinfo -display '$DISPLAY' >/dev/null 2>&1 && exit 0 || exit 1"
check no-host-x-socket-file 1 "" -- "$B" run work -- test -e "/tmp/.X11-unix/X${DISPLAY#:}"
run_bg vault -- sh -c '~/gtc hostile'
VAULT_BG=$BG_PID
read -r vid vx vy vw vh <<<"$(find_window '[vault] [vault] login')"
[[ -n ${vid:-} ]] && pass "vault-window-shown" || fail "vault-window-shown"
own_windows=$("$B" run work -- sh -c 'xwininfo -root -tree' 2>&1)
[[ $own_windows == *'"[vault] login"'* && $own_windows != *"[work]"* ]] && pass "work-sees-only-its-own-x-server" || fail "work-sees-only-its-own-x-server: $own_windows"
if [[ -n ${vid:-} ]]; then
    colours=$(raised_ring "$vid" "$vx" "$vy" "$vw" "$vh")
    [[ $colours == "#000000 " ]] && pass "vault-ring-is-black" || fail "vault-ring-is-black: $colours"
fi

# ---- input: typed keys reach the program of the focused window ----
run_bg work -- xterm -T typing -e sh -c 'read line; echo "got:$line" > ~/typed'
TYPING_BG=$BG_PID
read -r tid _ <<<"$(find_window '[work] typing')"
if [[ -n ${tid:-} ]]; then
    wait_viewable "$tid"
    xdotool windowfocus "$tid"
    sleep 0.5
    xdotool type --delay 30 "hello"
    xdotool key Return
    for _ in $(seq 50); do "$B" run work -- test -s /home/user/typed && break; sleep 0.1; done
    check typing-reaches-program 0 "got:hello" -- "$B" run work -- cat /home/user/typed
else
    fail "typing-window-shown: $(cat "$ROOT"/bg-*.out)"
fi
kill "$TYPING_BG" 2>/dev/null

# ---- clipboard: Ctrl-Shift-C in work, Ctrl-Shift-V in vault, through the broker ----
press_in() { # WINDOW_ID KEYS
    xdotool windowfocus "$1"
    sleep 0.3
    xdotool key "$2"
    sleep 0.5
}
"$B" run work -- sh -c 'printf secret-from-work | xclip -selection clipboard' </dev/null
if [[ -n ${id:-} && -n ${vid:-} ]]; then
    press_in "$id" ctrl+shift+c
    last=$("$B" audit --json | tail -1)
    [[ $last == *'"service":"bulkhead.Clipboard"'* && $last == *'"arg":"copy"'* && $last == *Ctrl-Shift-C* && $last != *secret-from-work* ]] \
        && pass "copy-audited-without-content" || fail "copy-audited-without-content: $last"
    press_in "$vid" ctrl+shift+v
    check paste-reaches-vault 0 "secret-from-work" -- "$B" run vault -- xclip -o -selection clipboard
    last=$("$B" audit --json | tail -1)
    [[ $last == *'"arg":"paste"'* && $last == *'"verdict":"allow"'* && $last == *consent* && $last != *secret-from-work* ]] \
        && pass "ask-paste-allowed-by-keystroke" || fail "ask-paste-allowed-by-keystroke: $last"
    check emptied-after-paste 1 "empty" -- "$B" run work -- bulkhead-clip paste
    # bulkhead-clip and the windows share one clipboard.
    "$B" run work -- sh -c 'printf from-the-cli | bulkhead-clip copy' >/dev/null
    press_in "$vid" ctrl+shift+v
    check cli-copy-gui-paste 0 "from-the-cli" -- "$B" run vault -- xclip -o -selection clipboard
    # A deny rule wins over the keystroke.
    cat >"$ROOT/etc/policy.d/10-deny.policy" <<'EOF'
bulkhead.Clipboard  *  work  vault  deny
EOF
    "$B" apply "$ROOT/etc/system.toml" >/dev/null
    "$B" run work -- sh -c 'printf denied-text | xclip -selection clipboard' </dev/null
    press_in "$id" ctrl+shift+c
    press_in "$vid" ctrl+shift+v
    check deny-keeps-vault-clipboard 0 "from-the-cli" -- "$B" run vault -- xclip -o -selection clipboard
    last=$("$B" audit --json | tail -1)
    [[ $last == *'"arg":"paste"'* && $last == *'"verdict":"deny"'* ]] && pass "deny-paste-audited" || fail "deny-paste-audited: $last"
    # The keys of a clipboard chord never reach the program (its window sees no Ctrl-Shift-V).
    rm -f "$ROOT/etc/policy.d/10-deny.policy"
    "$B" apply "$ROOT/etc/system.toml" >/dev/null
fi

# ---- resizing from the host: the compartment's window follows, the ring stays ----
if [[ -n ${id:-} ]]; then
    xdotool windowsize "$id" 506 406
    sleep 1
    inside=$("$B" run work -- sh -c 'xwininfo -name "[vault] login"' 2>&1)
    [[ $inside == *"Width: 500"* && $inside == *"Height: 400"* ]] && pass "resize-reaches-compartment" || fail "resize-reaches-compartment: $inside"
    read -r id x y w h <<<"$(find_window '[work] [vault] login')"
    colours=$(raised_ring "$id" "$x" "$y" "$w" "$h")
    [[ $w -eq 506 && $colours == "#CC0000 " ]] && pass "ring-after-resize" || fail "ring-after-resize: ${w}x$h $colours"
fi

# ---- a GUI daemon that dies comes back; the compartment keeps running ----
pkill -KILL -P "$DAEMON" -f -- "bulkhead-guid --name work " && pass "guid-killed" || fail "guid-killed"
sleep 0.3
[[ $(json_field work state) == running ]] && pass "compartment-survives-guid" || fail "compartment-survives-guid: $(json_field work state)"
read -r id2 _ <<<"$(find_window '[work] [vault] login' 8000)"
[[ -n ${id2:-} ]] && pass "windows-come-back" || fail "windows-come-back: $(tail -5 "$LOG")"
guid_pid=$(pgrep -P "$DAEMON" -f -- "bulkhead-guid --name work " | head -1)
if [[ -n $guid_pid ]]; then
    status=$(cat "/proc/$guid_pid/status")
    uid=$(awk '/^Uid:/ {print $2}' <<<"$status")
    [[ $uid -ne 0 ]] && pass "guid-own-uid" || fail "guid-own-uid: $uid"
    [[ $(awk '/^CapEff:/ {print $2}' <<<"$status") == 0000000000000000 ]] && pass "guid-no-caps" || fail "guid-no-caps"
    [[ $(awk '/^Seccomp:/ {print $2}' <<<"$status") == 2 && $(awk '/^NoNewPrivs:/ {print $2}' <<<"$status") == 1 ]] \
        && pass "guid-seccomp" || fail "guid-seccomp: $status"
    fds=$(ls -l "/proc/$guid_pid/fd" | grep -c -- '->')
    [[ $fds -le 6 ]] && pass "guid-holds-only-its-sockets" || fail "guid-holds-only-its-sockets: $(ls -l "/proc/$guid_pid/fd")"
fi

# ---- a broker restart: compartments keep running, their windows come back ----
kill "$DAEMON"
wait "$DAEMON" 2>/dev/null
start_daemon --config "$ROOT/etc/system.toml"
read -r id3 _ <<<"$(find_window '[work] [vault] login' 10000)"
[[ -n ${id3:-} ]] && pass "windows-back-after-broker-restart" || fail "windows-back-after-broker-restart: $(tail -5 "$LOG")"
sleep 0.5
[[ $(pgrep -c -P "$DAEMON" -f -- "bulkhead-guid --name work ") -eq 1 ]] && pass "one-guid-after-restart" || fail "one-guid-after-restart: $(pgrep -a -f bulkhead-guid)"

# ---- closing from the host: WM_DELETE_WINDOW reaches a program that takes it, else it is disconnected ----
run_bg work -- xterm -T closeme
CLOSE_BG=$BG_PID
read -r cid _ <<<"$(find_window '[work] closeme')"
if [[ -n ${cid:-} ]]; then
    wait_viewable "$cid"
    "$CLIENT" close --window "$cid"
    for _ in $(seq 50); do kill -0 "$CLOSE_BG" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$CLOSE_BG" 2>/dev/null && [[ -z $(find_window '[work] closeme' 500) ]] && pass "close-ends-program" || fail "close-ends-program"
else
    fail "closeme-window-shown"
fi
read -r id _ <<<"$(find_window '[work] [vault] login')"
if [[ -n ${id:-} ]]; then
    "$CLIENT" close --window "$id" # the hostile program takes no WM_DELETE_WINDOW: its connection is closed
    sleep 1
    [[ -z $(find_window '[work] [vault] login' 500) && -z $(find_window '[work] fullscreen' 500) ]] && pass "close-disconnects-impolite-program" || fail "close-disconnects-impolite-program"
fi

# ---- a stopped compartment's windows disappear ----
"$B" stop vault >/dev/null
sleep 0.5
[[ -z $(find_window '[vault] ' 500) ]] && pass "stopped-windows-gone" || fail "stopped-windows-gone"
kill "$VAULT_BG" 2>/dev/null

# ---- a disposable's window: [disp-N], red ----
run_bg --disposable untrusted -- xterm -T disposable-window
DISP_BG=$BG_PID
read -r did _ <<<"$(find_window '[disp-' 8000)"
sleep 0.5 # xterm sizes its window once it has its font
read -r did dx dy dw dh <<<"$(find_window '[disp-' 8000)"
if [[ -n ${did:-} ]]; then
    [[ $(xprop -id "$did" _NET_WM_NAME) =~ \"\[disp-[0-9]+\]\ disposable-window\" ]] && pass "disposable-title" || fail "disposable-title: $(xprop -id "$did" _NET_WM_NAME)"
    colours=$(raised_ring "$did" "$dx" "$dy" "$dw" "$dh")
    [[ $colours == "#CC0000 " ]] && pass "disposable-ring-red" || fail "disposable-ring-red: $colours"
else
    fail "disposable-window-shown: $(cat "$ROOT"/bg-*disposable*.out; tail -3 "$LOG")"
fi
kill "$DISP_BG" 2>/dev/null

# ---- a hostile GUI agent, speaking to bulkhead-guid directly ----
hostile_agent() { # SCENARIO: prints what happened
    python3 - "$GUID" "$SCENARIO" <<'PYTHON'
import array, os, socket, struct, subprocess, sys, time
guid, scenario = sys.argv[1], sys.argv[2]
agent, daemon_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
broker, control_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
def setup():  # the daemon's two sockets at descriptors 3 and 4 (pass_fds keeps 3 and 4 open)
    d, c = os.dup(daemon_end.fileno()), os.dup(control_end.fileno())
    os.dup2(d, 3); os.dup2(c, 4)
p = subprocess.Popen([guid, "--name", "evil", "--color", "0xcc0000", "--uid", "1073600000"], pass_fds=(3, 4),
                     preexec_fn=setup, env={"DISPLAY": os.environ["DISPLAY"]})
daemon_end.close(); control_end.close()
u = lambda *v: b"".join(struct.pack("<i" if x < 0 else "<I", x) for x in v)
agent.settimeout(5)
agent.recv(100)  # Hello
agent.send(bytes([1]) + u(7, 50, 50, 200, 100, 0))  # Create
fds = array.array("i")
msg, anc, flags, addr = agent.recvmsg(100, socket.CMSG_LEN(4))
for level, kind, data in anc:
    fds.frombytes(data[: len(data) - len(data) % 4])
buf = fds[0]
try:
    os.ftruncate(buf, 10)
    print("shrink:allowed")
except OSError as e:
    print("shrink:refused")
try:
    os.ftruncate(buf, 1 << 30)
    print("grow:allowed")
except OSError:
    print("grow:refused")
agent.send(bytes([3]) + u(7))  # Map
time.sleep(0.5)
print("shown:%d" % subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True).stdout.count('"[evil] '))
if scenario == "malformed":
    agent.send(bytes([6]) + b"\x07\x00")
elif scenario == "outside":
    agent.send(bytes([6]) + u(7, 1, 0, 150, 200, 100))  # rows 150..250 of a 100-row window
elif scenario == "unknown-window":
    agent.send(bytes([3]) + u(99))
elif scenario == "flood":
    try:
        for i in range(600):
            agent.send(bytes([1]) + u(100 + i, 0, 0, 10, 10, 0))
    except OSError:
        pass  # disconnected part-way
try:
    print("status:%d" % p.wait(timeout=5))
except subprocess.TimeoutExpired:
    p.kill(); print("status:alive")
time.sleep(0.3)
print("after:%d" % subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True).stdout.count('"[evil] '))
PYTHON
}
for SCENARIO in malformed outside unknown-window flood; do
    out=$(hostile_agent 2>&1)
    [[ $out == *shrink:refused* && $out == *grow:refused* ]] && pass "$SCENARIO: buffer-sealed" || fail "$SCENARIO: buffer-sealed: $out"
    [[ $out == *shown:1* ]] && pass "$SCENARIO: window-shown-first" || fail "$SCENARIO: window-shown-first: $out"
    [[ $out == *status:3* && $out == *after:0* ]] && pass "$SCENARIO: disconnected" || fail "$SCENARIO: disconnected: $out"
done

echo "gui_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

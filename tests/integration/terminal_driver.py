#!/usr/bin/env python3
"""Drives `bulkhead run` on a pty, as the administrator's terminal, for terminal_test.sh.

Usage: terminal_driver.py BULKHEAD SCENARIO

Each scenario is an attack from inside a compartment on the terminal that runs the client, or a
check that what a session needs still works. It prints what it saw and exits 0 when the client
held, 1 when it did not. Waits are bounded only to notice a client that never ends (a hang is the
failure); nothing is judged by how long something took.
"""
import os
import pty
import select
import signal
import subprocess
import sys
import time

BULKHEAD = sys.argv[1]
HANG = 20  # seconds after which a client that should have ended is said to hang


class Client:
    """`bulkhead ARGS` with its stdin, stdout and stderr on a new pty (the terminal)."""

    def __init__(self, args, rows=24, cols=80):
        env = dict(os.environ, TERM="xterm-256color")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(BULKHEAD, [BULKHEAD] + args, env)
        import fcntl, struct, termios
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.out = b""
        self.code = None

    def pump(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.out += chunk

    def until(self, token, seconds=HANG):
        end = time.time() + seconds
        while token not in self.out and time.time() < end:
            self.pump(0.1)
        return token in self.out

    def type(self, data):
        try:
            os.write(self.fd, data)
        except OSError:
            pass  # the client is gone: what is typed goes nowhere

    def wait(self, seconds=HANG):
        """The client's exit code, or None if it is still running after `seconds`."""
        end = time.time() + seconds
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pump(0.2)
                self.code = os.waitstatus_to_exitcode(status)
                return self.code
            self.pump(0.1)
        return None

    def kill(self):
        if self.code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        os.close(self.fd)


def bulkhead(*args):
    return subprocess.run([BULKHEAD] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60).stdout


def session(args, typed, ready=b"ready"):
    """`bulkhead ARGS` on a terminal that types `typed` once `ready` has appeared; ended."""
    c = Client(args)
    c.until(ready)
    c.type(typed)
    c.wait()
    c.kill()
    return c


def verdict(ok, what, client=None):
    print(("held: " if ok else "BROKEN: ") + what)
    if client is not None:
        print("  exit:", client.code, " output:", repr(client.out[-1500:]))
    sys.exit(0 if ok else 1)


ESCAPES = r"\033]0;PWNED\007\033[2J"


def title_without_tty():
    """(a) run without --tty writes ESC/BEL to the terminal: shown escaped, not obeyed."""
    c = Client(["run", "work", "--", "sh", "-c", f"printf '{ESCAPES}'; printf '{ESCAPES}' >&2; echo done"])
    code = c.wait()
    c.kill()
    ok = code == 0 and b"\x1b" not in c.out and b"\x07" not in c.out and c.out.count(b"?]0;PWNED??[2J") == 2
    verdict(ok, "a command's ESC and BEL reach the terminal as '?' (stdout and stderr)", c)


def title_raw():
    """--raw: the administrator asked for the bytes."""
    c = Client(["run", "--raw", "work", "--", "printf", ESCAPES])
    code = c.wait()
    c.kill()
    verdict(code == 0 and b"\x1b]0;PWNED\x07\x1b[2J" in c.out, "--raw passes the bytes unchanged", c)


def message_defused():
    """What the client prints about a run (here the broker's answer, naming what it was given)
    reaches the terminal defused too."""
    c = Client(["run", "no\x1b]0;PWNED\x07such", "--", "true"])
    code = c.wait()
    c.kill()
    verdict(code == 2 and b"no?]0;PWNED?such" in c.out and b"\x1b" not in c.out, "a message's ESC and BEL are shown as '?'", c)


def prompt_capture():
    """(b) A process left behind holds the pty (its own session, HUP ignored, the tty reopened) and
    forges a prompt: the client must end with the command, and what is typed next must not reach it."""
    script = (
        'rm -f ~/captured; t=$(tty); '
        'setsid sh -c \'trap "" HUP; exec <"$1" >"$1" 2>&1; '
        'while :; do printf "root@host:~# "; IFS= read -r line || break; echo "$line" >> ~/captured; done\' sh "$t" & '
        'sleep 0.5; echo command-done; exit 7'
    )
    c = Client(["run", "--tty", "work", "--", "sh", "-c", script])
    started = c.until(b"command-done")
    code = c.wait()
    # The administrator, back at what looks like a prompt, types the next line.
    c.type(b"echo the-secret-line\r")
    c.pump(1.0)
    c.kill()
    captured = bulkhead("run", "work", "--", "sh", "-c", "cat ~/captured 2>/dev/null; rm -f ~/captured")
    print("  captured inside:", repr(captured))
    ok = started and code == 7 and b"the-secret-line" not in captured
    verdict(ok, "the client ended with the command's code (7) and the next line stayed out", c)


def escape_dot():
    """(c) stty -isig raw inside: Ctrl-C is a byte for the compartment; ~. still ends the client,
    and the command with it."""
    script = "stty -isig raw -echo; trap '' HUP INT TERM; echo ready; exec python3 -c 'import time; time.sleep(3600)' escape-marker"
    c = Client(["run", "--tty", "work", "--", "sh", "-c", script])
    ready = c.until(b"ready")
    c.type(b"\x03")
    still = c.wait(1.0) is None  # Ctrl-C went to the compartment as a byte
    c.type(b"\r~.")
    code = c.wait()
    c.kill()
    left = b""
    for _ in range(50):  # the broker has the agent end the command; give it a moment
        left = bulkhead("run", "work", "--", "sh", "-c", "pgrep -f escape-marke[r] || true").strip()
        if not left:
            break
        time.sleep(0.2)
    print("  left running inside:", repr(left))
    ok = ready and still and code == 130 and b"session ended with ~." in c.out and not left
    verdict(ok, "~. ended the session (exit 130) and the command, whatever the pty's settings", c)


def escape_tilde():
    """~~ sends one ~; ~ elsewhere is text."""
    script = 'stty -echo; echo ready; IFS= read -r a; IFS= read -r b; echo "got:$a:$b"'
    c = session(["run", "--tty", "work", "--", "sh", "-c", script], b"~~x\rx~.y\r")
    verdict(c.code == 0 and b"got:~x:x~.y" in c.out, "~~ sends one ~, a ~ inside a line is text", c)


QUERIES = (
    r"\033]52;c;cHduZWQ=\007"  # OSC 52: write the clipboard
    r"\033]52;c;?\007"  # OSC 52: read it
    r'\033P$q"p\033\\'  # DECRQSS
    r"\033[6n\033[5n"  # DSR
    r"\033[c\033[>c"  # DA1, DA2
    r"\005"  # ENQ: answerback
    r"\033[21t\033[14t"  # window title and size reports
    r"\033]11;?\007"  # background colour query
    r"\033]0;PWNED\007"  # a title
    r"\033[1mbold\033[0m\033[?1049h\033[5;10Hmoved\033[?1000h"
)


def queries_tty():
    """(d) On the tty path the sequences that make the terminal answer, type or write its clipboard
    are dropped; what full-screen programs use passes; the title carries the compartment's name;
    modes left on are turned off at the end."""
    c = Client(["run", "--tty", "work", "--", "printf", QUERIES])
    code = c.wait()
    c.kill()
    dropped = [b"\x1b]52", b"\x1bP", b"\x1b[6n", b"\x1b[5n", b"\x1b[c", b"\x1b[>c", b"\x05", b"\x1b[21t", b"\x1b[14t", b"\x1b]11"]
    kept = [b"\x1b[1mbold\x1b[0m", b"\x1b[?1049h", b"\x1b[5;10Hmoved", b"\x1b[?1000h", b"\x1b]0;[work] PWNED\x07"]
    reached = [d for d in dropped if d in c.out]
    lost = [k for k in kept if k not in c.out]
    restored = c.out.find(b"\x1b[?1000l") > c.out.find(b"moved") and c.out.rstrip().endswith(b"\x1b[?1049l\x1b[23;0t")
    print("  reached the terminal:", reached, " lost:", lost, " restored:", restored)
    verdict(code == 0 and not reached and not lost and restored, "queries, clipboard and answerback dropped; the rest passes", c)


def queries_tty_raw():
    """--raw on the tty path passes everything."""
    c = Client(["run", "--tty", "--raw", "work", "--", "printf", QUERIES])
    code = c.wait()
    c.kill()
    verdict(code == 0 and b"\x1b]52;c;cHduZWQ=\x07" in c.out and b"\x1b[6n" in c.out, "--raw passes the queries", c)


def full_screen():
    """vim (if installed) and less work through the filter; tput's sequences arrive unchanged."""
    tput = "tput smcup; tput cup 3 5; tput setaf 2; printf X; tput sgr0; tput civis; tput cnorm; tput rmcup"
    expected = subprocess.run(["sh", "-c", tput], stdout=subprocess.PIPE, env=dict(os.environ, TERM="xterm-256color")).stdout
    c = Client(["run", "--tty", "work", "--", "sh", "-c", tput])
    code = c.wait()
    c.kill()
    ok = code == 0 and expected in c.out
    print("  tput:", "unchanged" if ok else f"expected {expected!r}")
    results = [ok]
    c = Client(["run", "--tty", "work", "--", "less", "/etc/os-release"])
    shown = c.until(b"\x1b[?1049h") and c.until(b"VERSION")
    c.type(b"q")
    results.append(shown and c.wait() == 0)
    print("  less:", results[-1])
    c.kill()
    if os.path.exists("/usr/bin/vim"):
        c = Client(["run", "--tty", "work", "--", "vim", "-u", "NONE", "-N", "-n", "/home/user/vim-test.txt"])
        c.until(b"\x1b[?1049h")
        c.pump(1.0)
        c.type(b"ihello from vim\x1b:wq\r")
        results.append(c.wait() == 0 and bulkhead("run", "work", "--", "cat", "/home/user/vim-test.txt") == b"hello from vim\n")
        print("  vim:", results[-1])
        c.kill()
    else:
        print("  vim: not installed, skipped")
    verdict(all(results), "full-screen programs work through the filter", c)


def window_and_ctrl_c():
    """Ctrl-C still reaches a command that did not ask otherwise (and the session's end is its end)."""
    script = "trap 'echo got-int; exit 3' INT; echo ready; while :; do sleep 0.1; done"
    c = session(["run", "--tty", "work", "--", "sh", "-c", script], b"\x03")
    verdict(c.code == 3 and b"got-int" in c.out, "Ctrl-C reaches the command", c)


if __name__ == "__main__":
    globals()[sys.argv[2].replace("-", "_")]()

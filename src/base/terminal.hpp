// What a compartment writes, made safe for the terminal it is shown on; and the client's escape.
//
// A terminal obeys the bytes it is given: a compartment that reaches the administrator's (or a
// caller's) terminal could retitle or clear it and forge a prompt, write its clipboard (OSC 52), or
// ask it questions whose answers the terminal types into its own input (DSR, DA, DECRQSS, ENQ,
// colour and window reports). Two filters stand between, both streaming (a sequence or a UTF-8
// character split across reads is judged whole) with bounded state:
//
//  - ControlFilter, for output that is text (a command's output without --tty, messages, a
//    service's answer): every control character but newline and tab, DEL, and the C1 controls
//    (U+0080-U+009F, and bytes 0x80-0x9F that continue no UTF-8 character) become '?'.
//  - SessionFilter, for a terminal session (run --tty, shell), where full-screen programs need
//    cursor movement, colours, modes and the alternate screen: escape sequences are parsed and
//    passed on only in a canonical form, and only those that neither answer, type, write the
//    clipboard, print, redefine keys nor run anything; titles are prefixed with the compartment's
//    name. Modes a session left on that make the terminal type (mouse, focus, keyboard protocols)
//    or hide things (alternate screen, hidden cursor) are turned off at the end (restore()).
//
// Both assume a terminal that decodes UTF-8 (a terminal in an 8-bit mode obeys C1 bytes that are
// valid UTF-8 continuation bytes here).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace bulkhead::terminal {

namespace detail {
// The UTF-8 side of both filters: characters pass, C1 controls (and what is not UTF-8 at all:
// overlong forms, which a lenient decoder would take for ESC or CSI) become '?'.
class Utf8 {
public:
    // An ASCII byte comes next: a character cut short ends here.
    void before_ascii(std::string& out);
    // A byte of 0x80 or above.
    void high(uint8_t byte, std::string& out);

private:
    int m_need = 0; // continuation bytes the current character still needs
    uint8_t m_low = 0x80, m_high = 0xbf; // the range of the next one
    bool m_after_c2 = false; // 0xC2, the lead byte of U+0080-U+00BF, held back until the next byte
};
} // namespace detail

class ControlFilter {
public:
    std::string filter(std::span<uint8_t const> bytes);

private:
    detail::Utf8 m_utf8;
};

class SessionFilter {
public:
    // `name`: the compartment's, shown before every title it sets ("[work] vim"); control
    // characters in it are dropped.
    explicit SessionFilter(std::string_view name);

    std::string filter(std::span<uint8_t const> bytes);
    // The sequences that turn off what the session left on (nothing when it left nothing on).
    std::string restore() const;

    static constexpr size_t max_sequence = 64; // bytes of a CSI's parameters; longer: dropped
    static constexpr size_t max_string = 512;  // bytes of an OSC; longer: dropped

private:
    enum class State : uint8_t { Ground, Escape, EscapeIntermediate, Csi, Osc, OscEscape, String, StringEscape };
    void ground(uint8_t byte, std::string& out);
    void start_escape();
    bool interrupts(uint8_t byte, std::string& out);
    void control(uint8_t byte, std::string& out);
    void escape(uint8_t byte, std::string& out);
    void csi(uint8_t byte, std::string& out);
    void osc(uint8_t byte, std::string& out);
    void string(uint8_t byte, std::string& out);
    void end_escape(uint8_t final, std::string& out);
    void end_csi(uint8_t final, std::string& out);
    void end_osc(std::string& out);

    std::string m_prefix;
    State m_state = State::Ground;
    std::string m_sequence;  // intermediates, parameters or string collected so far
    bool m_overflow = false; // the sequence outgrew its bound: it is dropped whole
    detail::Utf8 m_utf8;
    // What the session changed (see restore()): DEC private modes by their index in the table of
    // terminal_session.cpp, and the rest.
    uint32_t m_modes_changed = 0;
    int m_keyboard_pushes = 0; // kitty keyboard protocol: entries pushed and not popped
    bool m_keyboard_set = false;
    uint8_t m_modify_keys = 0; // XTMODKEYS resources set (bit per resource 0-4)
    bool m_keypad = false, m_charset = false, m_shifted = false, m_attributes = false, m_margins = false;
    bool m_insert = false, m_newline = false;
    bool m_title_saved = false;
};

// The ssh-style escape of a terminal session's input: after a newline (or at the start), `~.`
// ends the session, `~?` asks for help, `~~` sends one `~`; `~` before anything else is sent with
// it. It works whatever the compartment did to its pty (raw mode, -isig), because the client reads it.
class EscapeScanner {
public:
    struct Scan {
        std::string forward;     // what goes on to the compartment
        bool disconnect = false; // `~.`: the rest of the input is not looked at
        bool help = false;       // `~?` was typed
    };
    Scan scan(std::span<uint8_t const> bytes);

private:
    bool m_line_start = true;
    bool m_tilde = false;
};

// The help `~?` shows (lines end in CR LF: the terminal is in raw mode).
extern char const* const escape_help;

} // namespace bulkhead::terminal

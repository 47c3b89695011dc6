// SessionFilter: a terminal session's output, with only the escape sequences that cannot make the
// terminal answer, type, copy or run anything (see terminal.hpp).
//
// The parser follows the states of a VT500-style terminal's own (Paul Williams' DEC parser:
// ground, escape, CSI, OSC, DCS/SOS/PM/APC strings; CAN and SUB abort a sequence, ESC starts a new
// one, C0 controls inside a sequence act at once). A sequence is held back until it is complete and
// then passed on rebuilt from what was parsed, or dropped whole: the terminal therefore only ever
// sees whole, well-formed sequences, and a sequence this parser and the terminal would read
// differently (a byte above 0x7F inside one, a parameter after an intermediate, an overlong one)
// never reaches it. Decisions are allowlists where the set is small (escape finals, ANSI modes,
// OSC numbers, CSI intermediates) and a list of the sequences that answer or type where it is not
// (CSI finals of the DEC and xterm control sequences, ctlseqs).
#include "base/terminal.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace bulkhead::terminal {

namespace {

constexpr uint8_t esc = 0x1b, can = 0x18, sub = 0x1a, bel = 0x07;

// DEC private modes a session may leave on, turned back to their default by restore(). The
// alternate screen comes last, so that the rest is undone on the screen the shell is on.
struct Mode {
    uint16_t number;
    bool default_on;
};
constexpr std::array<Mode, 22> tracked_modes = {{
    {1, false},    // application cursor keys
    {5, false},    // reverse video
    {6, false},    // origin mode
    {7, true},     // autowrap
    {25, true},    // cursor visible
    {66, false},   // application keypad
    {69, false},   // left and right margins (CSI s would not save the cursor)
    {9, false},    // mouse reports (X10)
    {1000, false}, // mouse reports
    {1002, false}, // mouse reports with motion
    {1003, false}, // mouse reports, all motion
    {1005, false}, // mouse report encodings
    {1006, false},
    {1015, false},
    {1016, false},
    {1004, false}, // focus in/out reports
    {2004, false}, // bracketed paste
    {2026, false}, // synchronized output (holds the screen)
    {2031, false}, // colour scheme change reports
    {2048, false}, // in-band window size reports
    {1047, false}, // alternate screen
    {1049, false}, // alternate screen, cursor saved
}};
constexpr uint16_t alternate_screen_47 = 47; // the oldest form; restored as 1047

// DEC private modes never passed on: VT52 mode (another parser, whose ESC Z answers), the
// Tektronix window (another parser), xterm's logging to a file, and highlight mouse tracking (the
// terminal waits for an answer from the program).
constexpr std::array<uint16_t, 4> refused_modes = {2, 38, 46, 1001};

bool is_param(uint8_t byte)
{
    return byte >= 0x30 && byte <= 0x3f;
}

bool is_intermediate(uint8_t byte)
{
    return byte >= 0x20 && byte <= 0x2f;
}

// The numbers of "1;20;1049" (an empty one is 0; sub-parameters after ':' are ignored). A CSI's
// parameters are at most max_sequence bytes, so they never hold more than max_sequence + 1 numbers.
class Numbers {
public:
    explicit Numbers(std::string_view params)
    {
        m_values[0] = 0;
        bool in_sub = false;
        for (char c : params) {
            if (c == ';') {
                m_values[m_count++] = 0;
                in_sub = false;
            } else if (c == ':') {
                in_sub = true;
            } else if (c >= '0' && c <= '9' && !in_sub && m_values[m_count - 1] < 100000) {
                m_values[m_count - 1] = m_values[m_count - 1] * 10 + static_cast<unsigned>(c - '0');
            }
        }
    }
    unsigned const* begin() const { return m_values.data(); }
    unsigned const* end() const { return m_values.data() + m_count; }
    size_t size() const { return m_count; }
    unsigned front() const { return m_values[0]; }
    unsigned operator[](size_t i) const { return m_values[i]; }

private:
    std::array<unsigned, SessionFilter::max_sequence + 2> m_values;
    size_t m_count = 1;
};

// A CSI without intermediates that a terminal answers, or that prints, or reports windows:
// DA (c), DSR/CPR and their DEC forms (n), window operations and reports (t, but for saving and
// restoring the title), media copy (i),
// DECREQTPARM (x); with '?': XTSMGRAPHICS (S), XTQMODKEYS (m), the kitty keyboard query (u);
// with '>': XTVERSION (q).
bool answers(char prefix, uint8_t final)
{
    if (final == 'c' || final == 'n' || final == 't' || final == 'i' || final == 'x')
        return true;
    if (prefix == '?')
        return final == 'S' || final == 'm' || final == 'u';
    if (prefix == '>')
        return final == 'q';
    return false;
}

} // namespace

SessionFilter::SessionFilter(std::string_view name)
{
    ControlFilter clean;
    std::string shown = clean.filter({reinterpret_cast<uint8_t const*>(name.data()), name.size()});
    m_prefix = "[" + shown.substr(0, 64) + "] ";
}

std::string SessionFilter::filter(std::span<uint8_t const> bytes)
{
    std::string out;
    out.reserve(bytes.size() + 16);
    for (size_t i = 0; i < bytes.size(); ++i) {
        uint8_t const byte = bytes[i];
        switch (m_state) {
        case State::Ground:
            if (byte >= 0x20 && byte < 0x7f) { // text: the run of it at once
                m_utf8.before_ascii(out);
                size_t end = i + 1;
                while (end < bytes.size() && bytes[end] >= 0x20 && bytes[end] < 0x7f)
                    ++end;
                out.append(reinterpret_cast<char const*>(bytes.data() + i), end - i);
                i = end - 1;
                break;
            }
            ground(byte, out);
            break;
        case State::Escape:
        case State::EscapeIntermediate:
            escape(byte, out);
            break;
        case State::Csi:
            csi(byte, out);
            break;
        case State::Osc:
        case State::OscEscape:
            osc(byte, out);
            break;
        case State::String:
        case State::StringEscape:
            string(byte, out);
            break;
        }
    }
    return out;
}

void SessionFilter::ground(uint8_t byte, std::string& out)
{
    if (byte >= 0x80) {
        m_utf8.high(byte, out);
        return;
    }
    m_utf8.before_ascii(out);
    if (byte == esc) {
        start_escape();
    } else if (byte < 0x20) {
        control(byte, out);
    } else if (byte != 0x7f) {
        out += static_cast<char>(byte);
    }
}

// A C0 control, in ground or inside a sequence (where the terminal acts on it at once). ENQ (the
// answerback), NUL and the rest a terminal has no use for are dropped.
void SessionFilter::control(uint8_t byte, std::string& out)
{
    if (byte < bel || byte > 0x0f)
        return;
    if (byte == 0x0e || byte == 0x0f)
        m_shifted = byte == 0x0e; // SO: G1 in use, SI: G0 again
    out += static_cast<char>(byte);
}

void SessionFilter::start_escape()
{
    m_state = State::Escape;
    m_sequence.clear();
    m_overflow = false;
}

// What an escape sequence or a CSI does with a byte that is not its own: ESC starts a new
// sequence, CAN and SUB abort it, a C0 control acts at once, DEL is ignored, and a byte above
// 0x7F ends it unseen (it is text). True when `byte` was one of those.
bool SessionFilter::interrupts(uint8_t byte, std::string& out)
{
    if (byte == esc) {
        start_escape();
    } else if (byte == can || byte == sub) {
        m_state = State::Ground;
    } else if (byte < 0x20) {
        control(byte, out);
    } else if (byte >= 0x80) {
        m_state = State::Ground;
        ground(byte, out);
    } else if (byte != 0x7f) {
        return false;
    }
    return true;
}

void SessionFilter::escape(uint8_t byte, std::string& out)
{
    if (interrupts(byte, out))
        return;
    if (is_intermediate(byte)) {
        if (m_sequence.size() >= 2)
            m_overflow = true;
        else
            m_sequence += static_cast<char>(byte);
        m_state = State::EscapeIntermediate;
        return;
    }
    if (m_state == State::Escape) {
        if (byte == '[' || byte == ']') {
            m_state = byte == '[' ? State::Csi : State::Osc;
            m_sequence.clear();
            m_overflow = false;
            return;
        }
        if (byte == 'P' || byte == 'X' || byte == '^' || byte == '_') { // DCS, SOS, PM, APC
            m_state = State::String;
            return;
        }
    }
    m_state = State::Ground;
    end_escape(byte, out);
}

void SessionFilter::end_escape(uint8_t final, std::string& out)
{
    if (m_overflow)
        return;
    if (m_sequence.empty()) {
        // Cursor save/restore, keypad modes, index, next line, tab set, reverse index, single and
        // locking shifts, full reset, back/forward index. Not ESC Z (DECID: answers) nor ST alone.
        if (std::string_view("78=>DEHMNOcno|}~69").find(static_cast<char>(final)) == std::string_view::npos)
            return;
        if (final == '=' || final == '>')
            m_keypad = final == '=';
        if (final == 'n' || final == 'o')
            m_shifted = true; // G2 or G3 in use
        if (final == 'c') { // a full reset turns every mode off by itself
            m_modes_changed = 0;
            m_keyboard_pushes = 0;
            m_keyboard_set = false;
            m_modify_keys = 0;
            m_keypad = m_charset = m_shifted = m_attributes = m_margins = m_insert = m_newline = false;
        }
        out += static_cast<char>(esc);
        out += static_cast<char>(final);
        return;
    }
    char const intermediate = m_sequence.front();
    bool allowed = false;
    if (m_sequence.size() == 1 && std::string_view("()*+-./").find(intermediate) != std::string_view::npos) {
        allowed = true; // character set designations
        if (intermediate == '(')
            m_charset = final != 'B'; // G0 is not ASCII (line drawing, say)
    } else if (m_sequence == "#") {
        allowed = std::string_view("34568").find(static_cast<char>(final)) != std::string_view::npos; // line sizes, DECALN
    } else if (m_sequence == "%") {
        allowed = final == '@' || final == 'G'; // ISO 2022 / UTF-8
    }
    if (!allowed)
        return;
    out += static_cast<char>(esc);
    out += m_sequence;
    out += static_cast<char>(final);
}

void SessionFilter::csi(uint8_t byte, std::string& out)
{
    if (interrupts(byte, out))
        return;
    if (byte < 0x40) {
        if (m_sequence.size() >= max_sequence)
            m_overflow = true;
        else
            m_sequence += static_cast<char>(byte);
        return;
    }
    m_state = State::Ground;
    end_csi(byte, out);
}

void SessionFilter::end_csi(uint8_t final, std::string& out)
{
    if (m_overflow)
        return;
    std::string_view sequence = m_sequence;
    char prefix = 0;
    if (!sequence.empty() && std::string_view("<=>?").find(sequence.front()) != std::string_view::npos) {
        prefix = sequence.front();
        sequence.remove_prefix(1);
    }
    size_t params_end = 0;
    while (params_end < sequence.size() && is_param(static_cast<uint8_t>(sequence[params_end])))
        ++params_end;
    std::string_view params = sequence.substr(0, params_end), intermediates = sequence.substr(params_end);
    // A private marker inside the parameters, or a parameter after an intermediate: malformed.
    if (params.find_first_of("<=>?") != std::string_view::npos)
        return;
    for (char c : intermediates)
        if (!is_intermediate(static_cast<uint8_t>(c)))
            return;
    Numbers const values(params);
    if (!intermediates.empty()) {
        // Cursor style (DECSCUSR), soft reset (DECSTR), character protection (DECSCA), shifts
        // left and right. The rest with intermediates requests reports (DECRQM, DECRQPSR,
        // DECRQTSR, DECRQCRA, locator reports ...) or is of no use to a session.
        static constexpr std::array<std::string_view, 5> allowed = {" q", "!p", "\"q", " @", " A"};
        std::string key = std::string(intermediates) + static_cast<char>(final);
        if (prefix != 0 || std::find(allowed.begin(), allowed.end(), key) == allowed.end())
            return;
    } else if (final == 't' && prefix == 0 && (values.front() == 22 || values.front() == 23)) {
        // Saving and restoring the title (terminfo's smcup/rmcup for xterm send them): no answer.
    } else if (answers(prefix, final)) {
        return;
    }
    if (final == 'h' || final == 'l' || (prefix == '?' && final == 'r')) {
        for (unsigned value : values) {
            if (prefix == '?' && std::find(refused_modes.begin(), refused_modes.end(), value) != refused_modes.end())
                return;
            if (prefix == 0 && value != 4 && value != 20) // ANSI modes: only insert and newline
                return;
        }
        if (prefix != '?' && prefix != 0)
            return;
    }
    if (prefix == 0 && (final == 'h' || final == 'l')) {
        for (unsigned value : values)
            (value == 4 ? m_insert : m_newline) = final == 'h';
    } else if (prefix == '?' && (final == 'h' || final == 'l' || final == 'r')) {
        for (unsigned value : values) {
            if (value == alternate_screen_47)
                value = 1047;
            for (size_t i = 0; i < tracked_modes.size(); ++i) {
                if (tracked_modes[i].number != value)
                    continue;
                // XTRESTORE (?r) may bring back any saved state: counted as changed.
                bool on = final == 'h' || final == 'r';
                bool changed = final == 'r' || on != tracked_modes[i].default_on;
                m_modes_changed = changed ? m_modes_changed | (1u << i) : m_modes_changed & ~(1u << i);
            }
        }
    } else if (prefix == 0 && final == 'm') {
        m_attributes = !(values.size() == 1 && values.front() == 0);
    } else if (prefix == 0 && final == 'r') {
        m_margins = !params.empty();
    } else if (prefix == '>' && final == 'm') {
        // XTMODKEYS: resource, value; no value (or 0) is the resource's default again.
        if (values.front() < 8 && (values.size() < 2 || values[1] == 0))
            m_modify_keys &= static_cast<uint8_t>(~(1u << values.front()));
        else if (values.front() < 8)
            m_modify_keys |= static_cast<uint8_t>(1u << values.front());
    } else if (final == 'u' && prefix == '>') {
        m_keyboard_pushes = std::min(m_keyboard_pushes + 1, 4096);
    } else if (final == 'u' && prefix == '<') {
        m_keyboard_pushes = std::max(0, m_keyboard_pushes - static_cast<int>(std::max(1u, std::min(values.front(), 4096u))));
    } else if (final == 'u' && prefix == '=') {
        m_keyboard_set = true;
    }
    out += "\x1b[";
    out += m_sequence;
    out += static_cast<char>(final);
}

void SessionFilter::osc(uint8_t byte, std::string& out)
{
    if (m_state == State::OscEscape) {
        if (byte == '\\') { // ST
            m_state = State::Ground;
            end_osc(out);
            return;
        }
        start_escape(); // cut short by another sequence: dropped
        escape(byte, out);
        return;
    }
    if (byte == bel) {
        m_state = State::Ground;
        end_osc(out);
        return;
    }
    if (byte == esc) {
        m_state = State::OscEscape;
        return;
    }
    if (byte == can || byte == sub) {
        m_state = State::Ground;
        return;
    }
    if (byte < 0x20) // ignored inside a string, as a terminal does
        return;
    if (m_sequence.size() >= max_string)
        m_overflow = true;
    else
        m_sequence += static_cast<char>(byte);
}

// Only titles pass (OSC 0, 1, 2), with the compartment's name in front and nothing but printable
// characters; the terminal's title is saved first (XTWINOPS 22) and restored at the end. The rest
// is dropped: the clipboard (52), colour sets and queries (4, 10-19, 104 ...), fonts (50),
// hyperlinks (8), notifications and file transfers of particular terminals (9, 777, 1337, 5113).
void SessionFilter::end_osc(std::string& out)
{
    if (m_overflow)
        return;
    size_t semicolon = m_sequence.find(';');
    std::string_view number = std::string_view(m_sequence).substr(0, semicolon);
    if (semicolon == std::string::npos || (number != "0" && number != "1" && number != "2"))
        return;
    std::string_view text = std::string_view(m_sequence).substr(semicolon + 1);
    ControlFilter clean;
    if (!m_title_saved) {
        out += "\x1b[22;0t";
        m_title_saved = true;
    }
    out += "\x1b]";
    out += number;
    out += ';';
    out += m_prefix;
    out += clean.filter({reinterpret_cast<uint8_t const*>(text.data()), text.size()});
    out += static_cast<char>(bel);
}

// DCS, SOS, PM and APC strings (DECRQSS and XTGETTCAP answer, DECUDK redefines keys, sixel and
// kitty graphics, tmux's passthrough) are dropped whole, up to ST (or BEL, CAN, SUB).
void SessionFilter::string(uint8_t byte, std::string& out)
{
    if (m_state == State::StringEscape) {
        if (byte == '\\') {
            m_state = State::Ground;
            return;
        }
        start_escape();
        escape(byte, out);
        return;
    }
    if (byte == esc)
        m_state = State::StringEscape;
    else if (byte == bel || byte == can || byte == sub)
        m_state = State::Ground;
}

std::string SessionFilter::restore() const
{
    std::string out;
    if (m_attributes)
        out += "\x1b[0m";
    if (m_charset || m_shifted)
        out += "\x0f\x1b(B";
    if (m_margins)
        out += "\x1b" "7\x1b[r\x1b" "8";
    if (m_insert)
        out += "\x1b[4l";
    if (m_newline)
        out += "\x1b[20l";
    if (m_keyboard_pushes > 0)
        out += "\x1b[<" + std::to_string(m_keyboard_pushes) + "u";
    if (m_keyboard_set)
        out += "\x1b[=0;1u";
    for (unsigned resource = 0; resource < 8; ++resource)
        if (m_modify_keys & (1u << resource))
            out += "\x1b[>" + std::to_string(resource) + "m";
    if (m_keypad)
        out += "\x1b>";
    for (size_t i = 0; i < tracked_modes.size(); ++i)
        if (m_modes_changed & (1u << i))
            out += "\x1b[?" + std::to_string(tracked_modes[i].number) + (tracked_modes[i].default_on ? "h" : "l");
    if (m_title_saved)
        out += "\x1b[23;0t";
    return out;
}

} // namespace bulkhead::terminal

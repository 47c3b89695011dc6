// ControlFilter, the UTF-8 checks both filters share, and the session's escape (see terminal.hpp).
// SessionFilter: terminal_session.cpp.
#include "base/terminal.hpp"

namespace bulkhead::terminal {

namespace detail {

void Utf8::before_ascii(std::string& out)
{
    if (m_after_c2)
        out += '?'; // a lone 0xC2 is no character
    m_after_c2 = false;
    m_need = 0;
}

void Utf8::high(uint8_t byte, std::string& out)
{
    if (m_after_c2) {
        m_after_c2 = false;
        if (byte <= 0x9f && byte >= 0x80) {
            out += '?'; // U+0080-U+009F: a C1 control
            return;
        }
        if (byte >= 0xa0 && byte <= 0xbf) {
            out += static_cast<char>(0xc2);
            out += static_cast<char>(byte);
            return;
        }
        out += '?'; // a lone 0xC2; `byte` starts afresh
    }
    if (m_need > 0 && byte >= m_low && byte <= m_high) {
        out += static_cast<char>(byte);
        --m_need;
        m_low = 0x80, m_high = 0xbf;
        return;
    }
    m_need = 0;
    m_low = 0x80, m_high = 0xbf;
    if (byte <= 0xbf || byte == 0xc0 || byte == 0xc1 || byte >= 0xf5) {
        out += '?'; // a continuation byte out of place, or a byte that never occurs in UTF-8
        return;
    }
    if (byte == 0xc2) {
        m_after_c2 = true;
        return;
    }
    // The second byte's range rules out overlong forms and surrogates (RFC 3629).
    if (byte <= 0xdf) {
        m_need = 1;
    } else if (byte <= 0xef) {
        m_need = 2;
        if (byte == 0xe0)
            m_low = 0xa0;
        if (byte == 0xed)
            m_high = 0x9f;
    } else {
        m_need = 3;
        if (byte == 0xf0)
            m_low = 0x90;
        if (byte == 0xf4)
            m_high = 0x8f;
    }
    out += static_cast<char>(byte);
}

} // namespace detail

std::string ControlFilter::filter(std::span<uint8_t const> bytes)
{
    std::string out;
    out.reserve(bytes.size() + 1);
    auto plain = [](uint8_t byte) { return (byte >= 0x20 && byte < 0x7f) || byte == '\n' || byte == '\t'; };
    for (size_t i = 0; i < bytes.size(); ++i) {
        uint8_t const byte = bytes[i];
        if (byte >= 0x80) {
            m_utf8.high(byte, out);
            continue;
        }
        m_utf8.before_ascii(out);
        if (!plain(byte)) {
            out += '?';
            continue;
        }
        size_t end = i + 1; // the run of plain text at once
        while (end < bytes.size() && plain(bytes[end]))
            ++end;
        out.append(reinterpret_cast<char const*>(bytes.data() + i), end - i);
        i = end - 1;
    }
    return out;
}

EscapeScanner::Scan EscapeScanner::scan(std::span<uint8_t const> bytes)
{
    Scan scan;
    for (uint8_t byte : bytes) {
        if (m_tilde) {
            m_tilde = false;
            if (byte == '.') {
                scan.disconnect = true;
                return scan;
            }
            if (byte == '?') {
                scan.help = true;
                continue; // still at the start of a line
            }
            m_line_start = false;
            scan.forward += '~';
            if (byte == '~')
                continue;
        } else if (m_line_start && byte == '~') {
            m_tilde = true;
            continue;
        }
        scan.forward += static_cast<char>(byte);
        m_line_start = byte == '\r' || byte == '\n';
    }
    return scan;
}

char const* const escape_help = "\r\nbulkhead escapes (after Enter):\r\n"
                                "  ~.  end the session (the command is ended)\r\n"
                                "  ~~  send one ~\r\n"
                                "  ~?  this help\r\n";

} // namespace bulkhead::terminal

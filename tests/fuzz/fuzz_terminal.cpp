// Fuzzes what stands between a compartment and a terminal (base/terminal.hpp). The first byte picks
// a chunk size; the rest is a compartment's output, fed to ControlFilter and SessionFilter whole
// and in chunks, and a terminal's input fed to EscapeScanner. Checks, with a reader of its own
// (not the filters' code):
//  - chunks change nothing: the same bytes come out, the same restore() and escape decisions;
//  - ControlFilter's output has no control character but newline and tab, no DEL, no C1 control
//    (neither U+0080-U+009F nor a byte 0x80-0x9F outside a UTF-8 character), nothing that is not UTF-8
//    where a lenient decoder could find ESC (overlong forms);
//  - SessionFilter's output (and its restore()) holds only complete sequences of the kinds it
//    passes: no ENQ or other dropped C0, no DCS/SOS/PM/APC, no OSC but a title with the
//    compartment's name in front, no CSI that makes a terminal answer, print or report, no C1.
#include "base/terminal.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace bulkhead::terminal;

namespace {

void check(bool condition, char const* what, std::string const& text)
{
    if (!condition) {
        std::fprintf(stderr, "fuzz_terminal: invariant broken: %s in output of %zu bytes\n", what, text.size());
        std::abort();
    }
}

// The UTF-8 character at `at` (a byte >= 0x80), checked: the bytes it spans. A character may be
// cut short (by ASCII, or by the end of the input): the terminal shows a replacement for it.
size_t check_utf8(std::string const& out, size_t at)
{
    auto byte = [&](size_t i) { return static_cast<uint8_t>(out[i]); };
    uint8_t lead = byte(at);
    check(lead >= 0xc2 && lead <= 0xf4, "a byte that starts no UTF-8 character (C1, or an overlong form)", out);
    size_t need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : 1;
    uint32_t code = lead & (0x7f >> (need + 1));
    size_t i = at + 1;
    while (i < out.size() && i - at <= need && (byte(i) & 0xc0) == 0x80) {
        code = (code << 6) | (byte(i) & 0x3f);
        ++i;
    }
    if (i - at - 1 == need) {
        uint32_t const smallest[] = {0, 0x80, 0x800, 0x10000};
        check(code >= smallest[need] && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff), "an overlong or invalid character", out);
        check(!(code >= 0x80 && code <= 0x9f), "a C1 control in UTF-8", out);
        return i - at;
    }
    check(lead != 0xc2, "a C1 control cut short", out);
    if (i > at + 1) { // what a lenient decoder could still take for an overlong form
        uint8_t second = byte(at + 1);
        check(!(lead == 0xe0 && second < 0xa0) && !(lead == 0xf0 && second < 0x90) && !(lead == 0xf4 && second > 0x8f)
                && !(lead == 0xed && second > 0x9f),
            "the start of an overlong or invalid character", out);
    }
    return i - at;
}

void check_text(std::string const& out)
{
    for (size_t i = 0; i < out.size();) {
        auto byte = static_cast<uint8_t>(out[i]);
        if (byte >= 0x80) {
            i += check_utf8(out, i);
            continue;
        }
        check(byte >= 0x20 || byte == '\n' || byte == '\t', "a control character", out);
        check(byte != 0x7f, "DEL", out);
        ++i;
    }
}

// One CSI from after "ESC [": its end, having checked it is of a kind SessionFilter passes.
size_t check_csi(std::string const& out, size_t at)
{
    size_t i = at;
    while (i < out.size() && out[i] >= 0x30 && out[i] <= 0x3f)
        ++i;
    std::string_view params(out.data() + at, i - at);
    size_t intermediates_at = i;
    while (i < out.size() && out[i] >= 0x20 && out[i] <= 0x2f)
        ++i;
    std::string_view intermediates(out.data() + intermediates_at, i - intermediates_at);
    check(i < out.size() && out[i] >= 0x40 && out[i] <= 0x7e, "a CSI without its final byte", out);
    char final = out[i];
    char prefix = !params.empty() && std::string_view("<=>?").find(params.front()) != std::string_view::npos ? params.front() : 0;
    check(params.substr(prefix ? 1 : 0).find_first_of("<=>?") == std::string_view::npos, "a private marker inside a CSI", out);
    if (!intermediates.empty()) {
        std::string key = std::string(intermediates) + final;
        check(prefix == 0 && (key == " q" || key == "!p" || key == "\"q" || key == " @" || key == " A"), "a CSI with intermediates", out);
    } else {
        // Only saving and restoring the title (XTWINOPS 22 and 23) among the window operations.
        unsigned first = 0;
        for (size_t k = 0; k < params.size() && params[k] >= '0' && params[k] <= '9' && first < 1000; ++k)
            first = first * 10 + static_cast<unsigned>(params[k] - '0');
        check(final != 't' || (prefix == 0 && (first == 22 || first == 23)), "a window operation or report", out);
        check(std::string_view("cnix").find(final) == std::string_view::npos, "a CSI that answers or prints", out);
        check(!(prefix == '?' && std::string_view("Smu").find(final) != std::string_view::npos), "a CSI ? query", out);
        check(!(prefix == '>' && final == 'q'), "XTVERSION", out);
    }
    return i + 1;
}

void check_session(std::string const& out)
{
    for (size_t i = 0; i < out.size();) {
        auto byte = static_cast<uint8_t>(out[i]);
        if (byte >= 0x80) {
            i += check_utf8(out, i);
            continue;
        }
        if (byte != 0x1b) {
            check(byte >= 0x20 || (byte >= 0x07 && byte <= 0x0f), "a dropped control character", out);
            check(byte != 0x7f, "DEL", out);
            ++i;
            continue;
        }
        check(i + 1 < out.size(), "a lone ESC", out);
        char next = out[i + 1];
        if (next == '[') {
            i = check_csi(out, i + 2);
        } else if (next == ']') {
            size_t end = out.find('\x07', i);
            check(end != std::string::npos, "an OSC without BEL", out);
            std::string_view osc(out.data() + i + 2, end - i - 2);
            check(osc.starts_with("0;[") || osc.starts_with("1;[") || osc.starts_with("2;["), "an OSC that is no title", out);
            for (char c : osc)
                check(static_cast<uint8_t>(c) >= 0x20 && c != 0x7f, "a control character in a title", out);
            i = end + 1;
        } else {
            check(std::string_view("PX^_Z\\").find(next) == std::string_view::npos, "a string or DECID", out);
            size_t j = i + 1;
            while (j < out.size() && out[j] >= 0x20 && out[j] <= 0x2f)
                ++j;
            check(j < out.size() && out[j] >= 0x30 && out[j] <= 0x7e, "an escape sequence without its final byte", out);
            i = j + 1;
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = data[0] % 64 + 1;
    std::span<uint8_t const> input(data + 1, size - 1);

    ControlFilter text_whole, text_chunks;
    SessionFilter session_whole("work"), session_chunks("work");
    EscapeScanner escape_whole, escape_chunks;
    std::string text = text_whole.filter(input), session = session_whole.filter(input);
    auto scan = escape_whole.scan(input);
    std::string text_split, session_split, forward_split;
    bool disconnect = false, help = false;
    for (size_t at = 0; at < input.size(); at += chunk) {
        auto piece = input.subspan(at, std::min(chunk, input.size() - at));
        text_split += text_chunks.filter(piece);
        session_split += session_chunks.filter(piece);
        if (!disconnect) {
            auto part = escape_chunks.scan(piece);
            forward_split += part.forward;
            disconnect = part.disconnect;
            help = help || part.help;
        }
    }
    check(text == text_split, "ControlFilter: chunks change the output", text);
    check(session == session_split, "SessionFilter: chunks change the output", session);
    check(session_whole.restore() == session_chunks.restore(), "SessionFilter: chunks change restore()", session);
    check(scan.forward == forward_split && scan.disconnect == disconnect && scan.help == help, "EscapeScanner: chunks change the scan", scan.forward);
    check(scan.forward.size() <= input.size(), "EscapeScanner: more out than in", scan.forward);
    check_text(text);
    check_session(session);
    check_session(session_whole.restore());
    return 0;
}

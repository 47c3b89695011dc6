// What a compartment writes to a terminal: the text filter (control characters defused), the
// session filter (the sequences full-screen programs need pass, the ones that make the terminal
// answer, type, copy or run something do not), both fed whole and split at every byte; and the
// session's `~.` escape.
#include "base/terminal.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace bulkhead::terminal;

namespace {

std::span<uint8_t const> bytes_of(std::string const& text)
{
    return {reinterpret_cast<uint8_t const*>(text.data()), text.size()};
}

std::string session(std::string const& text, std::string* restore = nullptr)
{
    SessionFilter filter("work");
    std::string out = filter.filter(bytes_of(text));
    if (restore != nullptr)
        *restore = filter.restore();
    return out;
}

// The same text fed one byte at a time must give the same bytes.
std::string session_bytewise(std::string const& text)
{
    SessionFilter filter("work");
    std::string out;
    for (char c : text)
        out += filter.filter(bytes_of(std::string(1, c)));
    return out;
}

} // namespace

TEST(ControlFilter, ControlCharactersBecomeQuestionMarks)
{
    ControlFilter filter;
    auto shown = [&](std::string const& text) { return filter.filter(bytes_of(text)); };
    EXPECT_EQ(shown("plain text\twith tab\n"), "plain text\twith tab\n");
    EXPECT_EQ(shown("\x1b]0;owned\x07"), "?]0;owned?"); // window title
    EXPECT_EQ(shown("\x1b[2J\x1b[1;1Hfake prompt$ "), "?[2J?[1;1Hfake prompt$ ");
    EXPECT_EQ(shown("ok\rforged\b\x7f"), "ok?forged??");
    EXPECT_EQ(shown("caf\xc3\xa9 \xe2\x82\xac \xc2\xa0 \xf0\x9f\x99\x82"), "caf\xc3\xa9 \xe2\x82\xac \xc2\xa0 \xf0\x9f\x99\x82"); // é € nbsp 🙂
    EXPECT_EQ(shown("\xc2\x9b" "2J"), "?2J"); // C1 CSI in UTF-8
}

TEST(ControlFilter, C1BytesOutsideACharacterAndOverlongFormsAreDefused)
{
    ControlFilter filter;
    auto shown = [&](std::string const& text) { return filter.filter(bytes_of(text)); };
    EXPECT_EQ(shown("\x9b" "6n"), "?6n");                   // a raw C1 CSI
    EXPECT_EQ(shown("\xc0\x9b"), "??");                     // ESC, overlong (C0 1B would be the same)
    EXPECT_EQ(shown("\xe0\x80\x9b"), "\xe0??");             // ESC as an overlong three-byte form
    EXPECT_EQ(shown("\xe2\x94\x80\xe2\x94\x82"), "\xe2\x94\x80\xe2\x94\x82"); // box drawing: 0x94, 0x80 inside
    EXPECT_EQ(shown("\xe2\x94" "a"), "\xe2\x94" "a");       // a character cut short by ASCII
    EXPECT_EQ(shown("\xc2" "a"), "?a");                     // a lone 0xC2
    EXPECT_EQ(shown("\xff\xfe"), "??");
}

TEST(ControlFilter, ACharacterSplitAcrossChunksIsJudgedWhole)
{
    ControlFilter filter;
    EXPECT_EQ(filter.filter(bytes_of("a\xc2")), "a");
    EXPECT_EQ(filter.filter(bytes_of("\x9b")), "?");
    EXPECT_EQ(filter.filter(bytes_of("\xc2")), "");
    EXPECT_EQ(filter.filter(bytes_of("\xa9")), "\xc2\xa9");
    EXPECT_EQ(filter.filter(bytes_of("\xe2")), "\xe2");
    EXPECT_EQ(filter.filter(bytes_of("\x94")), "\x94");
    EXPECT_EQ(filter.filter(bytes_of("\x80")), "\x80");
}

TEST(SessionFilter, WhatFullScreenProgramsUsePassesUnchanged)
{
    // vim, less, htop, top, bash: alternate screen, cursor moves and visibility, erase, colours
    // (256 and true colour, with sub-parameters), scroll regions, insert/delete, charsets for line
    // drawing, keypad and cursor key modes, mouse and focus reports, bracketed paste, cursor style,
    // save/restore cursor, UTF-8 text.
    std::vector<std::string> sequences = {
        "\x1b[?1049h", "\x1b[?1049l", "\x1b[?1h\x1b=", "\x1b[?1l\x1b>", "\x1b[H\x1b[2J", "\x1b[3J", "\x1b[12;40H",
        "\x1b[K", "\x1b[1K", "\x1b[?25l", "\x1b[?25h", "\x1b[1;31mred\x1b[0m", "\x1b[38;5;208mx\x1b[m",
        "\x1b[38:2::10:20:30my", "\x1b[1;24r", "\x1b[r", "\x1b[5L", "\x1b[3M", "\x1b[2P", "\x1b[4@", "\x1b[4h\x1b[4l",
        "\x1b(0lqqk\x1b(B", "\x1b)0\x0e" "x\x0f", "\x1b" "7\x1b" "8", "\x1b[s\x1b[u", "\x1bM", "\x1b" "D", "\x1b" "E",
        "\x1b[?1000h\x1b[?1006h", "\x1b[?1006l\x1b[?1000l", "\x1b[?1004h\x1b[?1004l", "\x1b[?2004h\x1b[?2004l",
        "\x1b[2 q", "\x1b[?12h", "\x1b[?7l\x1b[?7h", "\x1b[>4;2m", "\x1b[>4m", "\x1b[>1u", "\x1b[<u", "\x1b[=1;1u",
        "\x1b[!p", "\x1b[10;20r\x1b[?6h\x1b[?6l", "\x1b#8", "\x1b%G", "\x1b[?2026h\x1b[?2026l", "\x1b[?1047h\x1b[?1047l",
        "\x1b[10X", "\x1b[2S\x1b[2T", "\x1b[?1049h\x1b[22;0;0t", "\x1b[?1049l\x1b[23;0;0t", "\x1b[3g\x1bH\x1b[I\x1b[Z", "\x1b[?s\x1b[?r", "\x1b[6;1f", "\x1b[>0s",
        "caf\xc3\xa9 \xe2\x94\x80\xe2\x94\x82 \xf0\x9f\x99\x82", "tab\tbs\bcr\rlf\nbell\x07",
    };
    for (auto const& sequence : sequences) {
        EXPECT_EQ(session(sequence), sequence) << testing::PrintToString(sequence);
        EXPECT_EQ(session_bytewise(sequence), sequence) << testing::PrintToString(sequence);
    }
}

TEST(SessionFilter, SequencesThatMakeTheTerminalAnswerOrTypeAreDropped)
{
    std::vector<std::string> dropped = {
        "\x05",                             // ENQ: the answerback
        "\x1b[5n", "\x1b[6n", "\x1b[?6n",   // DSR, cursor position reports
        "\x1b[?15n", "\x1b[?996n",          // printer status, colour scheme
        "\x1b[c", "\x1b[0c", "\x1b[>c", "\x1b[>0c", "\x1b[=c", // DA1, DA2, DA3
        "\x1bZ",                            // DECID
        "\x1b[?1$p", "\x1b[4$p",            // DECRQM
        "\x1b[14t", "\x1b[18t", "\x1b[21t", "\x1b[20t", "\x1b[8;100;100t", "\x1b[>2t", // window ops, title report
        "\x1b[>q", "\x1b[>0q",              // XTVERSION
        "\x1b[?u",                          // kitty keyboard query
        "\x1b[?1;1S",                       // XTSMGRAPHICS
        "\x1b[?4m",                         // XTQMODKEYS
        "\x1b[1x",                          // DECREQTPARM
        "\x1b[1$w", "\x1b[1$u",             // DECRQPSR, DECRQTSR
        "\x1b[1;1;1;1;1;1*y",               // DECRQCRA: a checksum of the screen
        "\x1b[1'z", "\x1b[1'|", "\x1b[1;1;1;1'w", // locator reports
        "\x1b[#R", "\x1b[#|",               // XTREPORTCOLORS, XTREPORTSGR
        "\x1b[5i", "\x1b[?5i", "\x1b[0i",   // media copy: printer controller, print screen
        "\x1bP$q\"p\x1b\\", "\x1bP$qm\x1b\\", // DECRQSS
        "\x1bP+q544e\x1b\\",                // XTGETTCAP
        "\x1bP1;1|17/41\x1b\\",             // DECUDK: redefine a key
        "\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\", // tmux passthrough
        "\x1bPq#0;2;0;0;0#0~~@@\x1b\\",     // sixel
        "\x1b_Gi=1,a=q;\x1b\\",             // kitty graphics query
        "\x1b^privacy\x1b\\", "\x1bXsos\x1b\\",
        "\x1b]52;c;cHduZWQ=\x07", "\x1b]52;c;?\x07", "\x1b]52;p;cHduZWQ=\x1b\\", // the clipboard
        "\x1b]4;1;?\x07", "\x1b]10;?\x07", "\x1b]11;?\x1b\\", "\x1b]12;?\x07", "\x1b]4;1;#ff0000\x07", // colours
        "\x1b]50;?\x07",                    // font query
        "\x1b]8;;http://evil/\x07", "\x1b]7;file://host/\x07", "\x1b]1337;File=inline=1:AAAA\x07",
        "\x1b]9;notify\x07", "\x1b]777;notify;a;b\x07", "\x1b]5113;ac=file\x07", "\x1b]133;A\x07",
        "\x1b[?2l",                         // VT52 mode
        "\x1b[?38h",                        // Tektronix mode
        "\x1b[?46h",                        // xterm's log file
        "\x1b[?1001h",                      // highlight mouse tracking
        "\x1b[2h", "\x1b[12l", "\x1b[3h",   // keyboard lock, local echo, show controls
        "\x1b \x47", "\x1b[62;1\"p",        // 8-bit controls in answers
        "\x1b[?1049;2h",                    // one refused mode refuses the whole sequence
    };
    for (auto const& sequence : dropped) {
        EXPECT_EQ(session("a" + sequence + "b"), "ab") << testing::PrintToString(sequence);
        EXPECT_EQ(session_bytewise("a" + sequence + "b"), "ab") << testing::PrintToString(sequence);
    }
}

TEST(SessionFilter, TitlesCarryTheCompartmentsName)
{
    EXPECT_EQ(session("\x1b]0;PWNED\x07"), "\x1b[22;0t\x1b]0;[work] PWNED\x07");
    EXPECT_EQ(session("\x1b]2;vim\x1b\\x"), "\x1b[22;0t\x1b]2;[work] vim\x07x");
    // Control characters cannot appear inside (they are dropped), C1 become '?'.
    EXPECT_EQ(session("\x1b]2;a\x05" "b\xc2\x9c" "c\x07"), "\x1b[22;0t\x1b]2;[work] ab?c\x07");
    std::string restore;
    session("\x1b]2;one\x07\x1b]2;two\x07", &restore);
    EXPECT_EQ(restore, "\x1b[23;0t");
    SessionFilter odd("we\x1bird");
    EXPECT_EQ(odd.filter(bytes_of("\x1b]2;t\x07")), "\x1b[22;0t\x1b]2;[we?ird] t\x07");
}

TEST(SessionFilter, SequencesCutShortOrMalformedAreDroppedNotMisread)
{
    EXPECT_EQ(session("a\x1b[6\x1b[1mb"), "a\x1b[1mb");            // ESC starts a new sequence
    EXPECT_EQ(session("a\x1b[6\x18n"), "an");                       // CAN aborts
    EXPECT_EQ(session("a\x1b[6\x1an"), "an");                       // SUB aborts
    EXPECT_EQ(session("a\x1b[1\n;2H"), "a\n\x1b[1;2H");             // C0 inside acts at once
    EXPECT_EQ(session("a\x1b[6\x05n"), "a");                        // ENQ inside: dropped, 6n too
    EXPECT_EQ(session("a\x1b[6\xc3\xa9n"), "a\xc3\xa9n");           // a byte above 0x7F ends it: text
    EXPECT_EQ(session("a\x1b[1;?2hb"), "ab");                       // a private marker inside
    EXPECT_EQ(session("a\x1b[1 2qb"), "ab");                        // a parameter after an intermediate
    EXPECT_EQ(session("a\x1b]52;c;x\x1b[6nb"), "ab");               // an OSC cut short by a CSI
    EXPECT_EQ(session("a\x1bP$q\x1b[6nb"), "ab");                   // a DCS cut short
    EXPECT_EQ(session("a\x1b]0;t\x1b[1mb"), "a\x1b[1mb");           // a title cut short: dropped
    EXPECT_EQ(session("a\x9b" "6nb"), "a?6nb");                     // a raw C1 CSI is text ('?')
    EXPECT_EQ(session("a\xc2\x9b" "6nb"), "a?6nb");                 // and in UTF-8
    EXPECT_EQ(session("a\xc2\x9d" "52;c;eA==\x07" "b"), "a?52;c;eA==\x07" "b"); // C1 OSC
    EXPECT_EQ(session("a\xc0\x9b" "6nb"), "a??6nb");                // an overlong ESC
    EXPECT_EQ(session(std::string("\x00\x01\x7f" "x", 4)), "x");
}

TEST(SessionFilter, StateIsBounded)
{
    std::string long_csi = "\x1b[" + std::string(10000, '1') + "m";
    EXPECT_EQ(session("a" + long_csi + "b"), "ab");
    std::string long_osc = "\x1b]2;" + std::string(100000, 'x') + "\x07";
    EXPECT_EQ(session("a" + long_osc + "b"), "ab");
    std::string long_escape = "\x1b" + std::string(100, '(') + "B";
    EXPECT_EQ(session("a" + long_escape + "b"), "ab");
    std::string long_dcs = "\x1bP" + std::string(1 << 20, 'q') + "\x1b\\";
    EXPECT_EQ(session("a" + long_dcs + "b"), "ab");
}

TEST(SessionFilter, EverySplitGivesTheSameBytes)
{
    std::string text = "x\x1b[?1049h\x1b]2;title\x07\x1b[6n\xe2\x94\x80\x1bP$q\"p\x1b\\\x1b[1;31mred\x1b[m\x05"
                       "\x1b]52;c;eA==\x1b\\\xc2\xa0\x1b(0q\x1b(B\x1b[?1049l";
    SessionFilter whole("work");
    std::string expected = whole.filter(bytes_of(text));
    for (size_t cut = 0; cut <= text.size(); ++cut) {
        SessionFilter split("work");
        std::string out = split.filter(bytes_of(text.substr(0, cut)));
        out += split.filter(bytes_of(text.substr(cut)));
        EXPECT_EQ(out, expected) << "cut at " << cut;
        EXPECT_EQ(split.restore(), whole.restore());
    }
}

TEST(SessionFilter, RestoreTurnsOffWhatTheSessionLeftOn)
{
    std::string restore;
    session("\x1b[?1049h\x1b[?1000h\x1b[?1006h\x1b[?1004h\x1b[?2004h\x1b[?25l\x1b[1;31m\x1b(0\x1b=\x1b[>4;2m\x1b[>1u\x1b[>1u"
            "\x1b[1;10r\x1b[4h",
        &restore);
    for (std::string expected : {"\x1b[?1049l", "\x1b[?1000l", "\x1b[?1006l", "\x1b[?1004l", "\x1b[?2004l", "\x1b[?25h",
             "\x1b[0m", "\x0f\x1b(B", "\x1b>", "\x1b[>4m", "\x1b[<2u", "\x1b" "7\x1b[r\x1b" "8", "\x1b[4l"})
        EXPECT_NE(restore.find(expected), std::string::npos) << testing::PrintToString(expected) << " in " << testing::PrintToString(restore);
    EXPECT_EQ(restore.rfind("\x1b[?1049l"), restore.size() - 8) << "the alternate screen is left last";
    // A program that undid what it did (vim, less) leaves nothing to restore.
    session("\x1b[?1049h\x1b[?1h\x1b=\x1b[?25l\x1b[1m\x1b(0\x1b[?2004h\x1b[1;10r\x1b[r\x1b[?2004l\x1b(B\x1b[m\x1b[?25h\x1b[?1l\x1b>"
            "\x1b[>4;2m\x1b[>4;m"
            "\x1b[?1049l",
        &restore);
    EXPECT_EQ(restore, "");
    // A full reset turns everything off by itself.
    session("\x1b[?1000h\x1b" "c", &restore);
    EXPECT_EQ(restore, "");
    // XTRESTORE may bring back saved modes: they are turned off at the end.
    session("\x1b[?1000r", &restore);
    EXPECT_EQ(restore, "\x1b[?1000l");
}

TEST(EscapeScanner, TildeDotAfterANewlineEndsTheSession)
{
    EscapeScanner scanner;
    auto scan = scanner.scan(bytes_of("ls\r~."));
    EXPECT_TRUE(scan.disconnect);
    EXPECT_EQ(scan.forward, "ls\r");
    EscapeScanner at_start;
    EXPECT_TRUE(at_start.scan(bytes_of("~.")).disconnect);
    EscapeScanner split;
    EXPECT_EQ(split.scan(bytes_of("x\n~")).forward, "x\n");
    EXPECT_TRUE(split.scan(bytes_of(".")).disconnect);
}

TEST(EscapeScanner, OtherTildesPass)
{
    EscapeScanner scanner;
    EXPECT_EQ(scanner.scan(bytes_of("a~.b")).forward, "a~.b"); // not after a newline
    auto doubled = scanner.scan(bytes_of("\r~~.")); // ~~ sends one ~, then '.' is text
    EXPECT_FALSE(doubled.disconnect);
    EXPECT_EQ(doubled.forward, "\r~.");
    EXPECT_EQ(scanner.scan(bytes_of("\r~/x")).forward, "\r~/x");
    auto help = scanner.scan(bytes_of("\r~?~."));
    EXPECT_TRUE(help.help);
    EXPECT_TRUE(help.disconnect); // still at the start of the line after ~?
    EXPECT_EQ(help.forward, "\r");
    EscapeScanner raw;
    EXPECT_EQ(raw.scan(bytes_of("\x03\x1b[A~x")).forward, "\x03\x1b[A~x");
}

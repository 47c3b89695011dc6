// The GUI protocol: what the in-compartment GUI agent (bulkhead-gui-agent), the host-side GUI daemon
// (bulkhead-guid) and the broker say to each other. Pure encode/decode, no syscalls. One message per
// SOCK_SEQPACKET record; a window's pixel buffer travels beside a Buffer record as SCM_RIGHTS.
//
// The agent runs inside a compartment that may be hostile, so the daemon decodes its records
// strictly: every record has the exact size of its type (only Title and ClipboardData carry a length,
// bounded), every number is range-checked here, and anything else is an Error (the daemon then
// disconnects that compartment's display). Decoded fields are still "untrusted" in the sense that
// the daemon checks them against its own state (a window it knows, a buffer of that size).
//
// Record layout: u8 type, then the fields of that type in order, little-endian 32-bit integers; a
// byte string is a u32 length and that many bytes.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace bulkhead::gui {

inline constexpr uint32_t protocol_version = 1;
// A compartment's windows, and their sizes: bounded so that no message can make the host allocate
// much (a buffer is w*h*4 bytes, at most 8192x8192).
inline constexpr uint32_t max_windows = 500;
inline constexpr uint32_t max_dimension = 8192;
inline constexpr int32_t max_coordinate = 32767;
inline constexpr size_t max_title = 128;          // bytes of a title as the compartment sets it
inline constexpr size_t max_clipboard = 64000;    // bytes of text that cross with Ctrl-Shift-C/V
inline constexpr size_t max_record = 16 + max_clipboard;

enum class Type : uint8_t {
    // agent -> daemon
    Create = 1,
    Destroy = 2,
    Map = 3,
    Unmap = 4,
    Configure = 5,
    Damage = 6,
    Title = 7,
    ClipboardData = 8,
    // daemon -> agent
    Hello = 32,
    Buffer = 33, // a sealed memfd of w*h*4 bytes beside it
    Key = 34,
    Button = 35,
    Motion = 36,
    Resize = 37,
    Close = 38,
    Focus = 39,
    ClipboardRequest = 40,
    ClipboardPaste = 41,
    // daemon <-> broker (control socket)
    Ready = 64,      // daemon -> broker: connected to the display, its screen's size
    Copy = 65,       // daemon -> broker: Ctrl-Shift-C, the text the compartment gave
    PasteAsk = 66,   // daemon -> broker: Ctrl-Shift-V
    PasteGive = 67,  // broker -> daemon: the text to paste (the broker's clipboard is now empty)
    PasteRefused = 68,
};

// ---- agent -> daemon ----
struct Geometry {
    int32_t x = 0, y = 0;
    uint32_t width = 0, height = 0;
};
struct Create {
    uint32_t window = 0;
    Geometry geometry;
    bool override_redirect = false;
};
struct Destroy {
    uint32_t window = 0;
};
struct Map {
    uint32_t window = 0;
};
struct Unmap {
    uint32_t window = 0;
};
struct Configure {
    uint32_t window = 0;
    Geometry geometry;
    bool override_redirect = false;
};
// Rows [y, y+height) and columns [x, x+width) of the window's buffer number `serial` hold new pixels.
struct Damage {
    uint32_t window = 0;
    uint32_t serial = 0;
    Geometry rect;
};
struct Title {
    uint32_t window = 0;
    std::string text; // at most max_title bytes, any bytes: the daemon sanitises
};
struct ClipboardData {
    std::string text; // at most max_clipboard bytes
};

// ---- daemon -> agent ----
struct Hello {
    uint32_t version = protocol_version;
    uint32_t screen_width = 0, screen_height = 0;
};
struct Buffer {
    uint32_t window = 0;
    uint32_t serial = 0;
    uint32_t width = 0, height = 0;
};
struct Key {
    uint32_t window = 0;
    uint32_t keycode = 0;
    bool pressed = false;
};
struct Button {
    uint32_t window = 0;
    uint32_t button = 0;
    bool pressed = false;
    int32_t x = 0, y = 0;
};
struct Motion {
    uint32_t window = 0;
    int32_t x = 0, y = 0;
};
struct Resize {
    uint32_t window = 0;
    Geometry geometry;
};
struct Close {
    uint32_t window = 0;
};
struct Focus {
    uint32_t window = 0;
};
struct ClipboardRequest {};
struct ClipboardPaste {
    std::string text;
};

// ---- daemon <-> broker ----
struct Ready {
    uint32_t screen_width = 0, screen_height = 0;
};
struct Copy {
    std::string text;
};
struct PasteAsk {};
struct PasteGive {
    std::string text;
};
struct PasteRefused {
    std::string reason; // printable, at most 200 bytes
};

using AgentMessage = std::variant<Create, Destroy, Map, Unmap, Configure, Damage, Title, ClipboardData>;
using DaemonMessage = std::variant<Hello, Buffer, Key, Button, Motion, Resize, Close, Focus, ClipboardRequest, ClipboardPaste>;
using ControlMessage = std::variant<Ready, Copy, PasteAsk, PasteGive, PasteRefused>;

std::vector<uint8_t> encode(AgentMessage const& message);
std::vector<uint8_t> encode(DaemonMessage const& message);
std::vector<uint8_t> encode(ControlMessage const& message);

// Strict decoders: the whole record is consumed, every field is in range, else an Error that says what.
Result<AgentMessage> decode_agent(std::span<uint8_t const> record);
Result<DaemonMessage> decode_daemon(std::span<uint8_t const> record);
Result<ControlMessage> decode_control(std::span<uint8_t const> record);

// The title the host shows for a compartment window: "[NAME] " and the compartment's title with every
// byte that is not printable ASCII replaced by '_' (no UTF-8 in titles: less text-rendering surface).
std::string framed_title(std::string const& compartment, std::string const& untrusted_title);

// Whether `text` is valid UTF-8 without NUL (the clipboard carries text only).
bool valid_text(std::string const& text);

// 0xRRGGBB of a label (the eight Qubes colours), by label name; 0 for an unknown name.
uint32_t label_color(std::string const& label);

} // namespace bulkhead::gui

// Fuzzes the GUI protocol's decoders (src/gui/protocol.hpp) with records as a hostile compartment's
// GUI agent (or a confused daemon) could send them. Besides "no crash, no sanitizer report":
//   a record either decodes or fails with a message;
//   what decodes re-encodes to the very bytes that were decoded (one encoding per message), and
//   stays within the bounds the decoders promise (window ids, sizes, coordinates, string lengths);
//   framed_title always starts with the compartment's "[NAME] " and holds printable ASCII only.
#include "gui/protocol.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

using namespace bulkhead;

namespace {

void check(bool holds, char const* invariant)
{
    if (holds)
        return;
    std::fprintf(stderr, "invariant broken: %s\n", invariant);
    std::abort();
}

bool geometry_ok(gui::Geometry const& g)
{
    return g.width >= 1 && g.width <= gui::max_dimension && g.height >= 1 && g.height <= gui::max_dimension && g.x >= -gui::max_coordinate
        && g.x <= gui::max_coordinate && g.y >= -gui::max_coordinate && g.y <= gui::max_coordinate;
}

template<typename Message, typename Decode>
void round_trip(std::span<uint8_t const> record, Decode decode)
{
    auto decoded = decode(record);
    if (decoded.is_error()) {
        check(!decoded.error().message().empty(), "a refusal says why");
        return;
    }
    auto encoded = gui::encode(Message(decoded.value()));
    check(std::vector<uint8_t>(record.begin(), record.end()) == encoded, "what decodes re-encodes to the same bytes");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::span<uint8_t const> record(data, size);
    round_trip<gui::AgentMessage>(record, gui::decode_agent);
    round_trip<gui::DaemonMessage>(record, gui::decode_daemon);
    round_trip<gui::ControlMessage>(record, gui::decode_control);

    if (auto agent = gui::decode_agent(record); agent.has_value()) {
        std::visit([](auto const& m) {
            if constexpr (requires { m.window; })
                check(m.window != 0, "no window 0");
            if constexpr (requires { m.geometry; })
                check(geometry_ok(m.geometry), "a window's geometry is in range");
            if constexpr (requires { m.rect; })
                check(geometry_ok(m.rect) && m.rect.x >= 0 && m.rect.y >= 0 && m.rect.x + m.rect.width <= gui::max_dimension
                          && m.rect.y + m.rect.height <= gui::max_dimension,
                    "a damaged area is inside the largest window");
            if constexpr (requires { m.text; })
                check(m.text.size() <= gui::max_clipboard, "a string is bounded");
        }, agent.value());
        if (auto const* title = std::get_if<gui::Title>(&agent.value())) {
            check(title->text.size() <= gui::max_title, "a title is bounded");
            std::string const framed = gui::framed_title("work", title->text);
            check(framed.rfind("[work] ", 0) == 0, "a title starts with [NAME]");
            for (char c : framed)
                check(c >= 0x20 && c < 0x7f, "a title is printable ASCII");
        }
    }
    if (auto control = gui::decode_control(record); control.has_value())
        if (auto const* copy = std::get_if<gui::Copy>(&control.value()))
            check(gui::valid_text(copy->text), "a copy is UTF-8 text");
    return 0;
}

// The GUI protocol (src/gui/protocol.hpp): what a hostile compartment's GUI agent can and cannot say.
#include "gui/protocol.hpp"

#include <gtest/gtest.h>

using namespace bulkhead;
using namespace bulkhead::gui;

namespace {

std::vector<uint8_t> bytes_of(std::initializer_list<uint32_t> words, uint8_t type)
{
    std::vector<uint8_t> out {type};
    for (uint32_t w : words)
        for (int i = 0; i < 4; ++i)
            out.push_back(static_cast<uint8_t>(w >> (8 * i)));
    return out;
}

} // namespace

TEST(GuiProtocol, EveryMessageRoundTrips)
{
    std::vector<AgentMessage> agent = {Create {7, {-3, 4, 640, 480}, true}, Destroy {7}, Map {7}, Unmap {7}, Configure {7, {1, 2, 3, 4}, false},
        Damage {7, 9, {0, 10, 640, 20}}, Title {7, "[vault] login"}, ClipboardData {"text"}};
    for (auto const& m : agent) {
        auto decoded = decode_agent(encode(m));
        ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
        EXPECT_EQ(encode(decoded.value()), encode(m));
    }
    std::vector<DaemonMessage> daemon = {Hello {1, 1280, 800}, Buffer {7, 2, 640, 480}, Key {7, 38, true}, Button {7, 3, false, -1, 5},
        Motion {7, 1, 1}, Resize {7, {0, 0, 10, 10}}, Close {7}, Focus {7}, ClipboardRequest {}, ClipboardPaste {"x"}};
    for (auto const& m : daemon) {
        auto decoded = decode_daemon(encode(m));
        ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
        EXPECT_EQ(encode(decoded.value()), encode(m));
    }
    std::vector<ControlMessage> control = {Ready {1280, 800}, Copy {"caf\xc3\xa9"}, PasteAsk {}, PasteGive {"y"}, PasteRefused {"denied"}};
    for (auto const& m : control) {
        auto decoded = decode_control(encode(m));
        ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
        EXPECT_EQ(encode(decoded.value()), encode(m));
    }
}

TEST(GuiProtocol, HostileRecordsAreRefused)
{
    // One byte too many, one too few.
    auto create = encode(AgentMessage(Create {7, {0, 0, 10, 10}, false}));
    auto longer = create;
    longer.push_back(0);
    EXPECT_TRUE(decode_agent(longer).is_error());
    EXPECT_TRUE(decode_agent(std::span(create).first(create.size() - 1)).is_error());
    // Window 0, a zero or huge size, a coordinate far off, a flag that is not 0/1.
    EXPECT_TRUE(decode_agent(bytes_of({0, 0, 0, 10, 10, 0}, 1)).is_error());
    EXPECT_TRUE(decode_agent(bytes_of({7, 0, 0, 0, 10, 0}, 1)).is_error());
    EXPECT_TRUE(decode_agent(bytes_of({7, 0, 0, max_dimension + 1, 10, 0}, 1)).is_error());
    EXPECT_TRUE(decode_agent(bytes_of({7, 100000, 0, 10, 10, 0}, 1)).is_error());
    EXPECT_TRUE(decode_agent(bytes_of({7, 0, 0, 10, 10, 2}, 1)).is_error());
    // Damage outside the largest window; negative offsets.
    EXPECT_TRUE(decode_agent(bytes_of({7, 1, 8000, 0, 500, 10}, 6)).is_error());
    EXPECT_TRUE(decode_agent(bytes_of({7, 1, static_cast<uint32_t>(-1), 0, 5, 5}, 6)).is_error());
    // A title longer than 128 bytes, a length that runs past the record, a clipboard over the cap.
    EXPECT_TRUE(decode_agent(encode(AgentMessage(Title {7, std::string(max_title + 1, 'a')}))).is_error());
    auto lying = bytes_of({7, 1000}, 7);
    lying.push_back('x');
    EXPECT_TRUE(decode_agent(lying).is_error());
    EXPECT_TRUE(decode_agent(encode(AgentMessage(ClipboardData {std::string(max_clipboard + 1, 'a')}))).is_error());
    // Unknown types, an empty record, a daemon's record on the agent's side and back.
    EXPECT_TRUE(decode_agent(std::vector<uint8_t> {}).is_error());
    EXPECT_TRUE(decode_agent(std::vector<uint8_t> {99}).is_error());
    EXPECT_TRUE(decode_agent(encode(DaemonMessage(Focus {7}))).is_error());
    EXPECT_TRUE(decode_daemon(encode(AgentMessage(Map {7}))).is_error());
    // Keys and buttons out of X's range.
    EXPECT_TRUE(decode_daemon(bytes_of({7, 300, 1}, 34)).is_error());
    EXPECT_TRUE(decode_daemon(bytes_of({7, 0, 1, 0, 0}, 35)).is_error());
    // The broker takes only UTF-8 text without NUL from a daemon.
    EXPECT_TRUE(decode_control(encode(ControlMessage(Copy {std::string("a\0b", 3)}))).is_error());
    EXPECT_TRUE(decode_control(encode(ControlMessage(Copy {"\xff\xfe"}))).is_error());
}

TEST(GuiProtocol, TitlesAlwaysSayTheCompartment)
{
    EXPECT_EQ(framed_title("work", "[vault] login"), "[work] [vault] login");
    EXPECT_EQ(framed_title("work", "tab\there\n\xe2\x80\xae"), "[work] tab_here____");
    EXPECT_EQ(framed_title("work", std::string(500, 'a')).size(), std::string("[work] ").size() + max_title);
}

TEST(GuiProtocol, TextIsUtf8WithoutNul)
{
    EXPECT_TRUE(valid_text(""));
    EXPECT_TRUE(valid_text("plain"));
    EXPECT_TRUE(valid_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    EXPECT_FALSE(valid_text(std::string("a\0", 2)));
    EXPECT_FALSE(valid_text("\xc3"));         // cut short
    EXPECT_FALSE(valid_text("\xc0\xaf"));     // overlong
    EXPECT_FALSE(valid_text("\xed\xa0\x80")); // a surrogate
    EXPECT_FALSE(valid_text("\xf4\x90\x80\x80")); // past U+10FFFF
}

TEST(GuiProtocol, LabelColoursAreQubes)
{
    EXPECT_EQ(label_color("red"), 0xcc0000U);
    EXPECT_EQ(label_color("blue"), 0x3465a4U);
    EXPECT_EQ(label_color("black"), 0x000000U);
    EXPECT_EQ(label_color("green"), 0x73d216U);
}

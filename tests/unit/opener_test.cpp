// The bulkhead.OpenInDisposable stream: request headers (round trip, every refusal, cut short at
// every length) and the caller's decoder of the disposable's answer, fed whole and byte by byte.
#include "agent/opener.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::opener;

namespace {

std::vector<uint8_t> bytes_of(std::string const& text)
{
    return {text.begin(), text.end()};
}

// An answer built frame by frame; `length` overrides the frame's announced length.
class Answer {
public:
    Answer& frame(FrameType type, std::string const& payload = {}, int64_t length = -1)
    {
        auto header = encode_frame_header(type, length < 0 ? payload.size() : static_cast<uint64_t>(length));
        m_bytes.insert(m_bytes.end(), header.begin(), header.end());
        m_bytes.insert(m_bytes.end(), payload.begin(), payload.end());
        return *this;
    }
    Answer& raw(std::vector<uint8_t> const& bytes)
    {
        m_bytes.insert(m_bytes.end(), bytes.begin(), bytes.end());
        return *this;
    }
    std::vector<uint8_t> const& bytes() const { return m_bytes; }

private:
    std::vector<uint8_t> m_bytes;
};

// What a parser made of an answer, in a form easy to compare.
struct Decoded {
    std::string output;
    std::string edited;
    int edits_begun = 0, edits_ended = 0, ends = 0;
    uint64_t announced = 0;
    std::string error;     // of feed
    std::string finished;  // of finish (empty: complete)
};

Decoded decode(std::vector<uint8_t> const& bytes, bool view_only, size_t step)
{
    ReplyParser parser(view_only);
    Decoded decoded;
    for (size_t at = 0; at < bytes.size() && decoded.error.empty(); at += step) {
        std::vector<Event> events;
        auto fed = parser.feed(std::span<uint8_t const>(bytes).subspan(at, std::min(step, bytes.size() - at)), events);
        for (auto const& event : events) {
            std::string data(event.data.begin(), event.data.end());
            switch (event.kind) {
            case Event::Kind::Output: decoded.output += data; break;
            case Event::Kind::EditedBegin: ++decoded.edits_begun; decoded.announced = event.size; break;
            case Event::Kind::EditedData: decoded.edited += data; break;
            case Event::Kind::EditedEnd: ++decoded.edits_ended; break;
            case Event::Kind::End: ++decoded.ends; break;
            }
        }
        if (fed.is_error())
            decoded.error = fed.error().message();
    }
    auto finished = parser.finish();
    if (finished.is_error())
        decoded.finished = finished.error().message();
    return decoded;
}

} // namespace

TEST(OpenerRequest, RoundTrip)
{
    Request request {"report (2).pdf", "wc -c", 12345678901ull, true};
    auto bytes = encode_request(request);
    bytes.push_back('x'); // the file's first byte follows the header
    size_t used = 0;
    auto decoded = decode_request(bytes, used);
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    EXPECT_EQ(used, bytes.size() - 1);
    EXPECT_EQ(decoded.value().name, request.name);
    EXPECT_EQ(decoded.value().command, request.command);
    EXPECT_EQ(decoded.value().size, request.size);
    EXPECT_TRUE(decoded.value().view_only);
}

TEST(OpenerRequest, EveryShorterPrefixNeedsMoreBytes)
{
    auto bytes = encode_request({"a.txt", "cat", 5, false});
    for (size_t length = 0; length < bytes.size(); ++length) {
        size_t used = 99;
        auto decoded = decode_request(std::span<uint8_t const>(bytes).first(length), used);
        ASSERT_TRUE(decoded.is_error()) << length;
        EXPECT_EQ(decoded.error().code(), EAGAIN) << length << ": " << decoded.error().message();
        EXPECT_EQ(used, 0u);
    }
}

TEST(OpenerRequest, RefusesWhatIsMalformed)
{
    auto refused = [](std::vector<uint8_t> bytes, std::string const& why) {
        size_t used = 0;
        auto decoded = decode_request(bytes, used);
        ASSERT_TRUE(decoded.is_error()) << why;
        EXPECT_NE(decoded.error().code(), EAGAIN) << why << ": " << decoded.error().message();
    };
    refused(bytes_of("BHFC"), "another stream's magic");
    refused(bytes_of("X"), "a wrong first byte is known at once");
    auto good = encode_request({"a.txt", "", 1, false});
    auto bad = good;
    bad[4] = 2;
    refused(bad, "version 2");
    bad = good;
    bad[5] = 2;
    refused(bad, "an unknown flag");
    for (std::string const& name : std::vector<std::string> {"", ".", "..", "a/b", "/etc", "a\nb", std::string("a\0b", 3), std::string(256, 'n')})
        refused(encode_request({name, "", 1, false}), "name " + name);
    refused(encode_request({"a", std::string(max_command + 1, 'c'), 1, false}), "a command too long");
    refused(encode_request({"a", std::string("cat\0x", 5), 1, false}), "a command with NUL");
    refused(encode_request({"a", "", max_file_bytes + 1, false}), "a file over the limit");
}

TEST(OpenerAnswer, OutputEditAndEndAtEveryStep)
{
    Answer answer;
    answer.frame(FrameType::Output, "hello ").frame(FrameType::Output, "world\n").frame(FrameType::Edited, "new content").frame(FrameType::End);
    for (size_t step : {1u, 2u, 5u, 9u, 10u, 4096u}) {
        auto decoded = decode(answer.bytes(), false, step);
        EXPECT_EQ(decoded.error, "") << step;
        EXPECT_EQ(decoded.finished, "") << step;
        EXPECT_EQ(decoded.output, "hello world\n") << step;
        EXPECT_EQ(decoded.edited, "new content") << step;
        EXPECT_EQ(decoded.announced, 11u) << step;
        EXPECT_EQ(decoded.edits_begun, 1) << step;
        EXPECT_EQ(decoded.edits_ended, 1) << step;
        EXPECT_EQ(decoded.ends, 1) << step;
    }
}

TEST(OpenerAnswer, EmptiedFileIsAnEditOfLengthZero)
{
    auto decoded = decode(Answer().frame(FrameType::Edited).frame(FrameType::End).bytes(), false, 1);
    EXPECT_EQ(decoded.error, "");
    EXPECT_EQ(decoded.edits_begun, 1);
    EXPECT_EQ(decoded.edits_ended, 1);
    EXPECT_EQ(decoded.edited, "");
    EXPECT_EQ(decoded.finished, "");
}

TEST(OpenerAnswer, RefusesWhatIsMalformed)
{
    struct Case {
        char const* why;
        Answer answer;
        bool view_only;
    };
    std::vector<Case> cases;
    cases.push_back({"an empty output frame", Answer().frame(FrameType::Output), false});
    cases.push_back({"an output frame over the limit", Answer().frame(FrameType::Output, "x", max_output_frame + 1), false});
    cases.push_back({"an edit of a view-only file", Answer().frame(FrameType::Edited, "x"), true});
    cases.push_back({"a second edit", Answer().frame(FrameType::Edited, "a").frame(FrameType::Edited, "b"), false});
    cases.push_back({"an edit over the limit", Answer().frame(FrameType::Edited, "", int64_t(max_file_bytes + 1)), false});
    cases.push_back({"an end with a length", Answer().frame(FrameType::End, "", 1), false});
    cases.push_back({"bytes after the end", Answer().frame(FrameType::End).frame(FrameType::Output, "x"), false});
    cases.push_back({"one byte after the end", Answer().frame(FrameType::End).raw({0}), false});
    cases.push_back({"type 0", Answer().raw({0, 0, 0, 0, 0, 0, 0, 0, 0}), false});
    cases.push_back({"type 4", Answer().frame(static_cast<FrameType>(4)), false});
    for (auto const& test : cases) {
        for (size_t step : {1u, 4096u}) {
            auto decoded = decode(test.answer.bytes(), test.view_only, step);
            EXPECT_NE(decoded.error, "") << test.why << " (step " << step << ")";
            EXPECT_NE(decoded.finished, "") << test.why << ": a failed parser must not finish cleanly";
        }
    }
}

TEST(OpenerAnswer, CutShortIsNotComplete)
{
    Answer answer;
    answer.frame(FrameType::Output, "out").frame(FrameType::Edited, "edited file").frame(FrameType::End);
    auto const& bytes = answer.bytes();
    for (size_t length = 0; length < bytes.size(); ++length) {
        auto decoded = decode(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(length)), false, 3);
        EXPECT_EQ(decoded.error, "") << length;
        EXPECT_NE(decoded.finished, "") << "an answer cut at " << length << " of " << bytes.size() << " bytes finished cleanly";
        EXPECT_EQ(decoded.ends, 0) << length;
    }
    EXPECT_EQ(decode(bytes, false, 3).finished, "");
}

TEST(OpenerAnswer, AFailedParserStaysFailed)
{
    ReplyParser parser(false);
    std::vector<Event> events;
    auto bad = Answer().frame(static_cast<FrameType>(7)).bytes();
    ASSERT_TRUE(parser.feed(bad, events).is_error());
    auto good = Answer().frame(FrameType::End).bytes();
    EXPECT_TRUE(parser.feed(good, events).is_error());
    EXPECT_TRUE(parser.finish().is_error());
    EXPECT_FALSE(parser.ended());
}


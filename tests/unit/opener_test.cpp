// The bulkhead.OpenInDisposable stream: request headers (round trip, every refusal, cut short at
// every length), the caller's decoder of the disposable's answer, fed whole and byte by byte, the
// bound on an edited file, and the sparse writer of an edited file.
#include "agent/opener.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
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

Decoded decode(std::vector<uint8_t> const& bytes, bool view_only, size_t step, uint64_t max_edited = max_file_bytes)
{
    ReplyParser parser(view_only, max_edited);
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


TEST(OpenerLimit, AnEditMayGrowFourfoldOr64MiBUpToTheCap)
{
    constexpr uint64_t mib = 1 << 20, gib = 1ull << 30;
    EXPECT_EQ(edited_limit(16, default_max_edited), 16 + 64 * mib);          // a small file: 64 MiB more
    EXPECT_EQ(edited_limit(0, default_max_edited), 64 * mib);
    EXPECT_EQ(edited_limit(100 * mib, default_max_edited), 400 * mib);       // a larger one: fourfold
    EXPECT_EQ(edited_limit(2 * gib, default_max_edited), default_max_edited); // the cap
    EXPECT_EQ(edited_limit(16, mib), mib);                                  // a smaller cap
    EXPECT_EQ(edited_limit(6 * gib, default_max_edited), 6 * gib);          // an original over the cap keeps its size
    EXPECT_EQ(edited_limit(max_file_bytes, ~0ull), max_file_bytes);         // never beyond the stream's own bound
    EXPECT_EQ(edited_limit(~0ull, ~0ull), max_file_bytes);
}

TEST(OpenerAnswer, AnEditOverTheLimitIsRefusedBeforeAByteOfIt)
{
    auto bytes = Answer().frame(FrameType::Edited, std::string(101, 'x')).frame(FrameType::End).bytes();
    auto refused = decode(bytes, false, 1, 100);
    EXPECT_NE(refused.error.find("an edited file of 101 bytes, more than the 100 accepted"), std::string::npos) << refused.error;
    EXPECT_EQ(refused.edits_begun, 0);
    EXPECT_EQ(refused.edited, "");
    auto accepted = decode(bytes, false, 1, 101);
    EXPECT_EQ(accepted.error, "");
    EXPECT_EQ(accepted.edited.size(), 101U);
}

namespace {

struct TemporaryFile {
    TemporaryFile()
    {
        char pattern[] = "/tmp/bulkhead-opener-test-XXXXXX";
        fd = ::mkstemp(pattern);
        path = pattern;
    }
    ~TemporaryFile()
    {
        ::close(fd);
        ::unlink(path.c_str());
    }
    std::string content() const
    {
        std::string out;
        char buffer[65536];
        ssize_t n;
        for (off_t at = 0; (n = ::pread(fd, buffer, sizeof(buffer), at)) > 0; at += n)
            out.append(buffer, static_cast<size_t>(n));
        return out;
    }
    int fd = -1;
    std::string path;
};

std::span<uint8_t const> span_of(std::string const& text)
{
    return {reinterpret_cast<uint8_t const*>(text.data()), text.size()};
}

} // namespace

TEST(OpenerSparseWriter, ZeroBlocksBecomeHolesAndReadBackAsZeros)
{
    TemporaryFile file;
    ASSERT_GE(file.fd, 0);
    std::string expected = "head" + std::string(8 << 20, '\0') + "middle" + std::string(3 << 20, '\0');
    SparseWriter writer(file.fd);
    // Fed in odd pieces, as a socket delivers them.
    for (size_t at = 0; at < expected.size();) {
        size_t piece = std::min<size_t>(expected.size() - at, 12345 + at % 777);
        ASSERT_TRUE(writer.write(span_of(expected.substr(at, piece))).has_value());
        at += piece;
    }
    ASSERT_TRUE(writer.finish().has_value());
    EXPECT_EQ(writer.length(), expected.size());
    EXPECT_EQ(file.content(), expected);
    struct stat info {};
    ASSERT_EQ(::fstat(file.fd, &info), 0);
    EXPECT_EQ(static_cast<size_t>(info.st_size), expected.size());
    // Two blocks hold data (four where the filesystem's blocks are smaller than 4 KiB pages); the
    // 11 MiB of zeros take none.
    EXPECT_LE(info.st_blocks * 512, 64 * 1024) << "blocks: " << info.st_blocks;
}

TEST(OpenerSparseWriter, DataIsWrittenWhole)
{
    TemporaryFile file;
    ASSERT_GE(file.fd, 0);
    std::string expected;
    for (int i = 0; i < 300000; ++i)
        expected += static_cast<char>(i % 251 == 0 ? 0 : i % 256);
    SparseWriter writer(file.fd, 512);
    ASSERT_TRUE(writer.write(span_of(expected.substr(0, 1000))).has_value());
    ASSERT_TRUE(writer.write(span_of(expected.substr(1000))).has_value());
    ASSERT_TRUE(writer.finish().has_value());
    EXPECT_EQ(file.content(), expected);
    TemporaryFile empty;
    SparseWriter nothing(empty.fd);
    ASSERT_TRUE(nothing.finish().has_value());
    EXPECT_EQ(empty.content(), "");
}

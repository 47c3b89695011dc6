#include "base/wire.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::wire;

namespace {

// Writes a record byte for byte, independently of wire::encode, so that malformed records can be made.
class Record {
public:
    explicit Record(uint8_t type) { m_bytes.push_back(type); }
    explicit Record(MessageType type) : Record(static_cast<uint8_t>(type)) {}

    Record& u32(uint32_t value)
    {
        for (int i = 0; i < 4; ++i)
            m_bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
        return *this;
    }
    Record& string(std::string_view text) { return u32(static_cast<uint32_t>(text.size())).raw(text); }
    Record& raw(std::string_view bytes)
    {
        m_bytes.insert(m_bytes.end(), bytes.begin(), bytes.end());
        return *this;
    }
    std::vector<uint8_t> const& bytes() const { return m_bytes; }

private:
    std::vector<uint8_t> m_bytes;
};

// An Exec record up to and including the window size; the caller adds argv, env and cwd.
Record exec_header(uint32_t run_as = 1, uint32_t tty = 0, uint32_t rows = 0, uint32_t cols = 0)
{
    Record record(MessageType::Exec);
    record.u32(42).u32(run_as).u32(tty).u32(rows).u32(cols);
    return record;
}

// An Exec record with no argv, the given environment entry and no cwd.
std::vector<uint8_t> exec_with_env(std::string_view entry)
{
    return exec_header().u32(0).u32(1).string(entry).u32(0).bytes();
}

Exec sample_exec()
{
    Exec exec;
    exec.id = 0xdeadbeef;
    exec.run_as = RunAs::Root;
    exec.tty = true;
    exec.rows = 50;
    exec.cols = 0xffff;
    exec.argv = {"/bin/sh", "-c", "echo 'a b' \xff\x01", ""};
    exec.env = {"PATH=/usr/bin:/bin", "EMPTY=", "A==b"};
    exec.cwd = "/home/user/work dir";
    return exec;
}

std::vector<AgentMessage> sample_agent_messages()
{
    return {Hello {protocol_version, 3}, Started {7}, Exited {8, 1 << 8}, Failed {9, "cannot exec /bin/x: ENOENT"}};
}

template<typename T>
void expect_rejected(Result<T> const& result, std::string_view reason, std::string_view what)
{
    ASSERT_TRUE(result.is_error()) << what;
    EXPECT_FALSE(result.error().message().empty()) << what;
    EXPECT_NE(result.error().message().find(reason), std::string::npos)
        << what << ": error \"" << result.error().message() << "\" does not mention \"" << reason << "\"";
}

void expect_broker_rejected(std::span<uint8_t const> record, std::string_view reason, std::string_view what)
{
    expect_rejected(decode_broker_message(record), reason, what);
}

void expect_agent_rejected(std::span<uint8_t const> record, std::string_view reason, std::string_view what)
{
    expect_rejected(decode_agent_message(record), reason, what);
}

Exec decode_exec(std::span<uint8_t const> record)
{
    auto decoded = decode_broker_message(record);
    if (decoded.is_error()) {
        ADD_FAILURE() << "Exec record rejected: " << decoded.error().message();
        return {};
    }
    auto const* exec = std::get_if<Exec>(&decoded.value());
    if (exec == nullptr) {
        ADD_FAILURE() << "Exec record decoded as another message";
        return {};
    }
    return *exec;
}

Exited decode_exited(int32_t wait_status)
{
    auto decoded = decode_agent_message(encode(AgentMessage(Exited {1, wait_status})));
    if (decoded.is_error()) {
        ADD_FAILURE() << "wait status " << wait_status << " rejected: " << decoded.error().message();
        return {};
    }
    return std::get<Exited>(decoded.value());
}

void expect_same_exec(Exec const& actual, Exec const& expected)
{
    EXPECT_EQ(actual.id, expected.id);
    EXPECT_EQ(actual.run_as, expected.run_as);
    EXPECT_EQ(actual.tty, expected.tty);
    EXPECT_EQ(actual.rows, expected.rows);
    EXPECT_EQ(actual.cols, expected.cols);
    EXPECT_EQ(actual.argv, expected.argv);
    EXPECT_EQ(actual.env, expected.env);
    EXPECT_EQ(actual.cwd, expected.cwd);
}

} // namespace

TEST(WireRoundTrip, Exec)
{
    Exec const exec = sample_exec();
    expect_same_exec(decode_exec(encode(BrokerMessage(exec))), exec);

    // The defaults: the login shell, as the user, in the home directory, without a tty.
    Exec const shell;
    Exec const decoded = decode_exec(encode(BrokerMessage(shell)));
    expect_same_exec(decoded, shell);
    EXPECT_EQ(decoded.run_as, RunAs::User);
    EXPECT_FALSE(decoded.tty);
    EXPECT_TRUE(decoded.argv.empty());

    Exec user = exec;
    user.run_as = RunAs::User;
    user.tty = false;
    user.rows = 0;
    user.cols = 0;
    expect_same_exec(decode_exec(encode(BrokerMessage(user))), user);
}

TEST(WireRoundTrip, ExecAtTheBounds)
{
    Exec exec;
    exec.argv.assign(max_list_items, "");
    exec.env.assign(max_list_items, "K=");
    exec.cwd.assign(4096, 'd');
    exec.rows = 0xffff;
    exec.cols = 0xffff;
    expect_same_exec(decode_exec(encode(BrokerMessage(exec))), exec);
}

TEST(WireRoundTrip, Kill)
{
    auto decoded = decode_broker_message(encode(BrokerMessage(Kill {0xfffffffe})));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    ASSERT_TRUE(std::holds_alternative<Kill>(decoded.value()));
    EXPECT_EQ(std::get<Kill>(decoded.value()).id, 0xfffffffeu);
}

TEST(WireRoundTrip, Hello)
{
    auto decoded = decode_agent_message(encode(AgentMessage(Hello {protocol_version, 12345})));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    ASSERT_TRUE(std::holds_alternative<Hello>(decoded.value()));
    EXPECT_EQ(std::get<Hello>(decoded.value()).version, protocol_version);
    EXPECT_EQ(std::get<Hello>(decoded.value()).running, 12345u);
}

TEST(WireRoundTrip, Started)
{
    auto decoded = decode_agent_message(encode(AgentMessage(Started {77})));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    ASSERT_TRUE(std::holds_alternative<Started>(decoded.value()));
    EXPECT_EQ(std::get<Started>(decoded.value()).id, 77u);
}

TEST(WireRoundTrip, Exited)
{
    auto decoded = decode_agent_message(encode(AgentMessage(Exited {0x01020304, 3 << 8})));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    ASSERT_TRUE(std::holds_alternative<Exited>(decoded.value()));
    EXPECT_EQ(std::get<Exited>(decoded.value()).id, 0x01020304u);
    EXPECT_EQ(std::get<Exited>(decoded.value()).wait_status, 3 << 8);
}

TEST(WireRoundTrip, Failed)
{
    for (std::string const& text : {std::string(), std::string("exec /bin/nope: No such file or directory (2)"),
                                    std::string(" !~ printable ASCII edges"), std::string(max_error_text, 'x')}) {
        auto decoded = decode_agent_message(encode(AgentMessage(Failed {5, text})));
        ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
        ASSERT_TRUE(std::holds_alternative<Failed>(decoded.value()));
        EXPECT_EQ(std::get<Failed>(decoded.value()).id, 5u);
        EXPECT_EQ(std::get<Failed>(decoded.value()).message, text);
    }
}

TEST(WireRoundTrip, FailedTextIsCutToTheLimitWhenEncoded)
{
    std::string const text = std::string(max_error_text, 'a') + "tail";
    auto decoded = decode_agent_message(encode(AgentMessage(Failed {5, text})));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    EXPECT_EQ(std::get<Failed>(decoded.value()).message, std::string(max_error_text, 'a'));
}

TEST(WireLayout, MatchesTheDocumentedRecordFormat)
{
    // u8 type, then little-endian u32s; strings are a u32 length and the bytes; lists a u32 count.
    EXPECT_EQ(encode(BrokerMessage(Kill {0x04030201})), (std::vector<uint8_t> {2, 1, 2, 3, 4}));
    EXPECT_EQ(encode(AgentMessage(Hello {1, 2})), (std::vector<uint8_t> {16, 1, 0, 0, 0, 2, 0, 0, 0}));
    EXPECT_EQ(encode(AgentMessage(Started {0x100})), (std::vector<uint8_t> {17, 0, 1, 0, 0}));
    EXPECT_EQ(encode(AgentMessage(Exited {1, -1})), (std::vector<uint8_t> {18, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}));
    EXPECT_EQ(encode(AgentMessage(Failed {1, "ab"})), Record(MessageType::Failed).u32(1).string("ab").bytes());

    Exec exec;
    exec.id = 9;
    exec.run_as = RunAs::Root;
    exec.tty = true;
    exec.rows = 24;
    exec.cols = 80;
    exec.argv = {"ls", "-l"};
    exec.env = {"A=1"};
    exec.cwd = "/tmp";
    Record expected(MessageType::Exec);
    expected.u32(9).u32(0).u32(1).u32(24).u32(80).u32(2).string("ls").string("-l").u32(1).string("A=1").string("/tmp");
    EXPECT_EQ(encode(BrokerMessage(exec)), expected.bytes());
}

TEST(WireDescriptors, CountsWhatTravelsBesideEachMessage)
{
    Exec exec;
    exec.tty = false;
    EXPECT_EQ(descriptors_for(BrokerMessage(exec)), 4u); // stdin, stdout, stderr, status
    exec.tty = true;
    EXPECT_EQ(descriptors_for(BrokerMessage(exec)), 1u); // status; the agent makes the pty
    EXPECT_EQ(descriptors_for(BrokerMessage(Kill {1})), 0u);

    EXPECT_EQ(descriptors_for(AgentMessage(Started {1}), true), 1u); // the pty's master
    EXPECT_EQ(descriptors_for(AgentMessage(Started {1}), false), 0u);
    for (bool tty : {false, true}) {
        EXPECT_EQ(descriptors_for(AgentMessage(Hello {protocol_version, 0}), tty), 0u);
        EXPECT_EQ(descriptors_for(AgentMessage(Exited {1, 0}), tty), 0u);
        EXPECT_EQ(descriptors_for(AgentMessage(Failed {1, "no"}), tty), 0u);
    }
}

TEST(WireRejects, EmptyRecord)
{
    std::vector<uint8_t> const empty;
    expect_broker_rejected(empty, "empty", "broker side");
    expect_agent_rejected(empty, "empty", "agent side");
}

TEST(WireRejects, UnknownTypeByte)
{
    for (int type : {0, 3, 15, 20, 0x81, 0xff}) {
        auto const record = Record(static_cast<uint8_t>(type)).u32(1).bytes();
        expect_broker_rejected(record, "unknown message type", "broker side, type " + std::to_string(type));
        expect_agent_rejected(record, "unknown message type", "agent side, type " + std::to_string(type));
    }
}

TEST(WireRejects, AgentRecordOverItsLimit)
{
    // The largest agent message is far below the limit: a record over it is refused for its size alone.
    auto const started = Record(MessageType::Started).u32(1).raw(std::string(max_agent_record - 5 + 1, 'x')).bytes();
    ASSERT_EQ(started.size(), max_agent_record + 1);
    expect_agent_rejected(started, "at most " + std::to_string(max_agent_record), "Started + padding");

    auto const at_limit = Record(MessageType::Started).u32(1).raw(std::string(max_agent_record - 5, 'x')).bytes();
    expect_agent_rejected(at_limit, "trailing", "a record at the limit is read, then refused for its padding");

    auto const failed = Record(MessageType::Failed).u32(1).string(std::string(max_agent_record, 'x')).bytes();
    expect_agent_rejected(failed, "at most " + std::to_string(max_agent_record), "long Failed");
}

TEST(WireRejects, BrokerRecordOverItsLimit)
{
    // An Exec with one argument, no environment and no cwd is 37 bytes plus the argument.
    size_t const overhead = 37;
    auto exec_of_size = [&](size_t size) {
        return exec_header().u32(1).string(std::string(size - overhead, 'a')).u32(0).u32(0).bytes();
    };
    auto const at_limit = exec_of_size(max_broker_record);
    ASSERT_EQ(at_limit.size(), max_broker_record);
    EXPECT_EQ(decode_exec(at_limit).argv.at(0).size(), max_broker_record - overhead);

    auto const over = exec_of_size(max_broker_record + 1);
    ASSERT_EQ(over.size(), max_broker_record + 1);
    expect_broker_rejected(over, "at most " + std::to_string(max_broker_record), "Exec one byte over");
}

TEST(WireRejects, EveryTruncation)
{
    Exec exec = sample_exec();
    std::vector<std::vector<uint8_t>> records {encode(BrokerMessage(exec)), encode(BrokerMessage(Exec {})),
                                               encode(BrokerMessage(Kill {3}))};
    for (auto const& record : records) {
        ASSERT_TRUE(decode_broker_message(record).has_value());
        for (size_t length = 0; length < record.size(); ++length) {
            auto const prefix = std::span<uint8_t const>(record).first(length);
            expect_broker_rejected(prefix, "",
                                   "prefix of " + std::to_string(length) + " of " + std::to_string(record.size()));
        }
    }
    for (auto const& message : sample_agent_messages()) {
        auto const record = encode(message);
        ASSERT_TRUE(decode_agent_message(record).has_value());
        for (size_t length = 0; length < record.size(); ++length) {
            auto const prefix = std::span<uint8_t const>(record).first(length);
            expect_agent_rejected(prefix, "",
                                  "prefix of " + std::to_string(length) + " of " + std::to_string(record.size()));
        }
    }
}

TEST(WireRejects, TrailingBytes)
{
    for (uint8_t extra : {0, 1, 0xff}) {
        for (auto record : {encode(BrokerMessage(sample_exec())), encode(BrokerMessage(Kill {3}))}) {
            record.push_back(extra);
            expect_broker_rejected(record, "1 trailing byte", "broker record + 1 byte");
        }
        for (auto const& message : sample_agent_messages()) {
            auto record = encode(message);
            record.push_back(extra);
            expect_agent_rejected(record, "1 trailing byte", "agent record + 1 byte");
        }
    }
    auto kill = encode(BrokerMessage(Kill {3}));
    kill.insert(kill.end(), {0, 0, 0, 0});
    expect_broker_rejected(kill, "4 trailing bytes", "Kill + a u32");
}

TEST(WireRejects, StringLongerThanTheRecord)
{
    expect_broker_rejected(exec_header().u32(1).u32(10).raw("abc").bytes(), "ends inside", "argv[0]");
    expect_broker_rejected(exec_header().u32(0).u32(1).u32(4).raw("A=").bytes(), "ends inside", "env[0]");
    expect_broker_rejected(exec_header().u32(0).u32(0).u32(5).raw("/tmp").bytes(), "ends inside", "cwd");
    expect_agent_rejected(Record(MessageType::Failed).u32(1).u32(5).raw("ab").bytes(), "ends inside", "Failed");
    // A length that would swallow the rest of the record, leaving later fields unread.
    expect_broker_rejected(exec_header().u32(1).u32(12).raw("ab").u32(0).u32(0).bytes(), "ends inside",
                           "argv[0] over env and cwd");
}

TEST(WireRejects, LengthOfAllOnes)
{
    uint32_t const all_ones = 0xffffffff;
    expect_broker_rejected(exec_header().u32(1).u32(all_ones).raw("abc").bytes(), "longer than", "argv[0]");
    expect_broker_rejected(exec_header().u32(0).u32(1).u32(all_ones).raw("A=b").bytes(), "longer than", "env[0]");
    expect_broker_rejected(exec_header().u32(0).u32(0).u32(all_ones).bytes(), "longer than", "cwd");
    expect_agent_rejected(Record(MessageType::Failed).u32(1).u32(all_ones).bytes(), "longer than", "Failed");
    expect_broker_rejected(exec_header().u32(all_ones).bytes(), "items", "argv count");
    expect_broker_rejected(exec_header().u32(0).u32(all_ones).bytes(), "items", "env count");
}

TEST(WireRejects, CwdOverItsLimit)
{
    expect_broker_rejected(exec_header().u32(0).u32(0).string(std::string(4097, 'd')).bytes(), "longer than 4096",
                           "cwd of 4097 bytes");
}

TEST(WireRejects, ListOverMaxItems)
{
    uint32_t const count = max_list_items + 1;
    Record argv = exec_header().u32(count);
    for (uint32_t i = 0; i < count; ++i)
        argv.string("a");
    argv.u32(0).u32(0);
    expect_broker_rejected(argv.bytes(), "list of " + std::to_string(count) + " items", "argv");

    Record env = exec_header().u32(0).u32(count);
    for (uint32_t i = 0; i < count; ++i)
        env.string("A=b");
    env.u32(0);
    expect_broker_rejected(env.bytes(), "list of " + std::to_string(count) + " items", "env");

    // The same records with one item fewer are accepted.
    Exec exec;
    exec.argv.assign(max_list_items, "a");
    exec.env.assign(max_list_items, "A=b");
    EXPECT_EQ(decode_exec(encode(BrokerMessage(exec))).argv.size(), max_list_items);
}

TEST(WireRejects, NulInsideAString)
{
    using namespace std::string_view_literals;
    expect_broker_rejected(exec_header().u32(1).string("a\0b"sv).u32(0).u32(0).bytes(), "NUL", "argv");
    expect_broker_rejected(exec_header().u32(0).u32(1).string("A=\0"sv).u32(0).bytes(), "NUL", "env");
    expect_broker_rejected(exec_header().u32(0).u32(0).string("/tmp\0/etc"sv).bytes(), "NUL", "cwd");
    expect_agent_rejected(Record(MessageType::Failed).u32(1).string("\0"sv).bytes(), "NUL", "Failed");

    Exec exec;
    exec.argv = {std::string("a\0b", 3)};
    expect_broker_rejected(encode(BrokerMessage(exec)), "NUL", "encoded argv");
}

TEST(WireRejects, HelloWithAnotherVersion)
{
    for (uint32_t version : {0u, protocol_version + 1, 0x01000000u, 0xffffffffu}) {
        auto const record = encode(AgentMessage(Hello {version, 0}));
        expect_agent_rejected(record, "protocol version", "version " + std::to_string(version));
    }
}

TEST(WireExited, AcceptsRealWaitStatuses)
{
    // Normal exits (code << 8), deaths by signal, and deaths by signal with a core dump (0x80).
    for (int32_t status : {0, 1 << 8, 2 << 8, 127 << 8, 255 << 8, 1, 9, 15, 31, 64, 0x80 | 6, 0x80 | 11}) {
        EXPECT_EQ(decode_exited(status).wait_status, status) << status;
    }
}

TEST(WireExited, RejectsImpossibleWaitStatuses)
{
    // 0x7f and 0x137f: stopped; 0xffff: continued; 0x80 and 0x180: the core-dump bit on a normal exit;
    // 100: no signal above 64 exists; the rest is out of range of any wait status.
    for (uint32_t status : {0x7fu, 0x137fu, 0xffffu, 0xffu, 0x17fu, 0x80u, 0x180u, 100u, 0x10000u, 0x1ff00u, 0x80000000u, 0xffffffffu}) {
        auto const record = Record(MessageType::Exited).u32(1).u32(status).bytes();
        expect_agent_rejected(record, "impossible wait status", "wait status " + std::to_string(status));
    }
}

TEST(WireRejects, FailedWithUnprintableText)
{
    for (std::string_view bad : {"line\n", "\x1b[2J", "caf\xc3\xa9", "\x80", "tab\there", "del\x7f", "\r"}) {
        auto const record = Record(MessageType::Failed).u32(1).string(bad).bytes();
        expect_agent_rejected(record, "unprintable", "text with a byte outside 0x20..0x7e");
        // encode() does not filter: the check belongs to the decoder, which reads what a hostile agent wrote.
        expect_agent_rejected(encode(AgentMessage(Failed {1, std::string(bad)})), "unprintable", "encoded text");
    }
}

TEST(WireRejects, FailedTextOverTheLimit)
{
    auto const at_limit = Record(MessageType::Failed).u32(1).string(std::string(max_error_text, 'e')).bytes();
    auto decoded = decode_agent_message(at_limit);
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    EXPECT_EQ(std::get<Failed>(decoded.value()).message.size(), max_error_text);

    auto const over = Record(MessageType::Failed).u32(1).string(std::string(max_error_text + 1, 'e')).bytes();
    expect_agent_rejected(over, "longer than " + std::to_string(max_error_text), "513 bytes of text");
}

TEST(WireRejects, ExecWithOutOfRangeFields)
{
    expect_broker_rejected(exec_header(2).u32(0).u32(0).u32(0).bytes(), "run_as", "run_as 2");
    expect_broker_rejected(exec_header(0xffffffff).u32(0).u32(0).u32(0).bytes(), "run_as", "run_as ~0");
    expect_broker_rejected(exec_header(1, 2).u32(0).u32(0).u32(0).bytes(), "tty", "tty 2");
    expect_broker_rejected(exec_header(1, 0x100).u32(0).u32(0).u32(0).bytes(), "tty", "tty 0x100");
    expect_broker_rejected(exec_header(1, 1, 70000, 80).u32(0).u32(0).u32(0).bytes(), "window size", "rows 70000");
    expect_broker_rejected(exec_header(1, 1, 24, 0x10000).u32(0).u32(0).u32(0).bytes(), "window size", "cols 65536");
    // The same header with in-range values is accepted.
    Exec const exec = decode_exec(exec_header(0, 1, 0xffff, 0xffff).u32(0).u32(0).u32(0).bytes());
    EXPECT_EQ(exec.run_as, RunAs::Root);
    EXPECT_TRUE(exec.tty);
    EXPECT_EQ(exec.rows, 0xffffu);
}

TEST(WireRejects, EnvironmentEntryWithoutAName)
{
    for (std::string_view entry : {"NOEQUALS", "=value", "=", ""})
        expect_broker_rejected(exec_with_env(entry), "environment entry", std::string(entry));
    EXPECT_EQ(decode_exec(exec_with_env("A=")).env, std::vector<std::string> {"A="});
    EXPECT_EQ(decode_exec(exec_with_env("A==")).env, std::vector<std::string> {"A=="});
}

TEST(WireRejects, MessagesOfTheOtherSide)
{
    // The type spaces are disjoint: an agent cannot pass off a broker message, nor the other way round.
    for (auto const& message : {BrokerMessage(sample_exec()), BrokerMessage(Exec {}), BrokerMessage(Kill {1})}) {
        auto const record = encode(message);
        ASSERT_TRUE(decode_broker_message(record).has_value());
        expect_agent_rejected(record, "unknown message type", "broker record on the agent side");
    }
    for (auto const& message : sample_agent_messages()) {
        auto const record = encode(message);
        ASSERT_TRUE(decode_agent_message(record).has_value());
        expect_broker_rejected(record, "unknown message type", "agent record on the broker side");
    }
}

// ---- calls: from any process of a compartment, as hostile as its agent ----

TEST(WireCall, RoundTrip)
{
    Call call {"vault", "my.GpgSign", "work"};
    auto decoded = decode_call(encode(call));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    EXPECT_EQ(decoded.value().target, "vault");
    EXPECT_EQ(decoded.value().service, "my.GpgSign");
    EXPECT_EQ(decoded.value().arg, "work");
}

TEST(WireCall, EmptyTargetAndArgAreAllowed)
{
    auto decoded = decode_call(encode(Call {"", "bulkhead.Filecopy", ""}));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    EXPECT_EQ(decoded.value().target, "");
}

TEST(WireCall, RefusesMalformedCalls)
{
    std::string const long_field(max_call_field + 1, 'a');
    std::vector<std::pair<char const*, std::vector<uint8_t>>> cases = {
        {"not a call", Record(MessageType::Hello).u32(protocol_version).u32(0).bytes()},
        {"empty service", Record(MessageType::Call).string("vault").string("").string("").bytes()},
        {"long target", Record(MessageType::Call).string(long_field).string("s").string("").bytes()},
        {"space", Record(MessageType::Call).string("va ult").string("s").string("").bytes()},
        {"newline", Record(MessageType::Call).string("vault").string("s\n").string("").bytes()},
        {"NUL", Record(MessageType::Call).string(std::string("v\0x", 3)).string("s").string("").bytes()},
        {"high byte", Record(MessageType::Call).string("vault").string("s").string("\xc3\xa9").bytes()},
        {"trailing", Record(MessageType::Call).string("vault").string("s").string("").raw("x").bytes()},
        {"short", Record(MessageType::Call).string("vault").string("s").bytes()},
        {"length past end", Record(MessageType::Call).u32(40).raw("abc").bytes()},
        {"empty", {}},
        // The words of a call are tokens: a '+' in a service name would skip a rule about SERVICE +ARG.
        {"plus in service", Record(MessageType::Call).string("vault").string("my.Svc+dangerous").string("").bytes()},
        {"plus in arg", Record(MessageType::Call).string("vault").string("my.Svc").string("a+b").bytes()},
        {"slash in service", Record(MessageType::Call).string("vault").string("../../bin/sh").string("").bytes()},
        {"slash in arg", Record(MessageType::Call).string("vault").string("s").string("a/b").bytes()},
        {"dot service", Record(MessageType::Call).string("vault").string("..").string("").bytes()},
        {"dot arg", Record(MessageType::Call).string("vault").string("s").string("..").bytes()},
        {"option-like service", Record(MessageType::Call).string("vault").string("-x").string("").bytes()},
        {"option-like arg", Record(MessageType::Call).string("vault").string("s").string("--help").bytes()},
        {"star", Record(MessageType::Call).string("vault").string("s*").string("").bytes()},
        {"colon in service", Record(MessageType::Call).string("vault").string("a:b").string("").bytes()},
        {"quote in target", Record(MessageType::Call).string("va'ult").string("s").string("").bytes()},
        {"long service", Record(MessageType::Call).string("vault").string(long_field).string("").bytes()},
    };
    for (auto const& [what, bytes] : cases)
        EXPECT_TRUE(decode_call(bytes).is_error()) << what;
    // What the alphabet does allow.
    for (auto const& call : {Call {"@dispvm:vault-dvm", "bulkhead.Filecopy", ""}, Call {"disp-12", "my_svc.v2", "Arg-1.x_y"},
                             Call {"@default", "a", std::string(max_call_field, 'z')}})
        EXPECT_TRUE(decode_call(encode(call)).has_value()) << call.target << " " << call.service << " " << call.arg;
    std::vector<uint8_t> oversize(max_caller_record + 1, 0);
    oversize[0] = static_cast<uint8_t>(MessageType::Call);
    EXPECT_TRUE(decode_call(oversize).is_error());
}

TEST(WireCall, RepliesRoundTrip)
{
    auto connected = decode_call_reply(encode(CallReply(CallConnected {"disp-4"})));
    ASSERT_TRUE(connected.has_value()) << connected.error().message();
    EXPECT_EQ(std::get<CallConnected>(connected.value()).target, "disp-4");
    auto refused = decode_call_reply(encode(CallReply(CallRefused {126, "denied by policy (a.policy:3)"})));
    ASSERT_TRUE(refused.has_value()) << refused.error().message();
    EXPECT_EQ(std::get<CallRefused>(refused.value()).exit_code, 126U);
    EXPECT_EQ(std::get<CallRefused>(refused.value()).message, "denied by policy (a.policy:3)");
    EXPECT_TRUE(decode_call_reply(Record(MessageType::CallRefused).u32(300).string("x").bytes()).is_error());
    EXPECT_TRUE(decode_call_reply(Record(MessageType::Exec).bytes()).is_error());
    auto held = decode_call_reply(encode(CallReply(CallHeld {})));
    ASSERT_TRUE(held.has_value()) << held.error().message();
    EXPECT_TRUE(std::holds_alternative<CallHeld>(held.value()));
    EXPECT_TRUE(decode_call_reply(Record(MessageType::CallHeld).u32(1).bytes()).is_error());
}

// The audit log: the canonical line, strict reading, appending (bounds, UTF-8, a write cut short),
// reopening, read() with its seek, and verify() on real logs tampered with in every way it names.
#include "broker/audit.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::audit;

namespace {

std::string const zeros(64, '0');

using Head = std::optional<std::pair<uint64_t, std::string>>;
using Lines = std::vector<std::string>;

// The problems as `bulkhead audit verify` prints them.
Lines problems(std::string const& contents, Head head = {})
{
    std::vector<std::string> out;
    for (auto const& problem : verify(contents, head).problems)
        out.push_back("line " + std::to_string(problem.line) + " (seq " + std::to_string(problem.seq)
            + "): " + problem.what);
    return out;
}

std::string joined(std::vector<std::string> const& lines)
{
    std::string out;
    for (auto const& line : lines)
        out += line + "\n";
    return out;
}

Record parsed(std::string const& line)
{
    auto record = from_line(line);
    EXPECT_TRUE(record.has_value()) << line << ": " << record.error().message();
    return record.has_value() ? record.value() : Record {};
}

// What a careful forger writes: a record changed, then given the hash its new content must carry.
std::string reforged(std::string const& line, std::function<void(Record&)> const& change)
{
    Record record = parsed(line);
    change(record);
    record.hash = compute_hash(record);
    return to_line(record);
}

std::string slurp(std::string const& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
}

class AuditLog : public ::testing::Test {
protected:
    void SetUp() override
    {
        char dir[] = "/tmp/bulkhead-audit-test-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        m_dir = dir;
        m_path = m_dir + "/audit.log";
    }
    void TearDown() override { (void)std::system(("rm -rf " + m_dir).c_str()); }

    // Appends `count` call records; their arg is their number.
    void write_log(int count)
    {
        auto log = Log::open(m_path);
        ASSERT_TRUE(log.has_value()) << log.error().message();
        for (int i = 0; i < count; ++i) {
            Record record {.kind = "call", .caller = "work", .target = "vault", .service = "my.Sign",
                .arg = std::to_string(log.value().last_seq() + 1), .verdict = i % 2 ? "allow" : "deny",
                .rule = "/etc/bulkhead/policy.d/a.policy:" + std::to_string(i + 1)};
            ASSERT_TRUE(log.value().append(record).has_value());
        }
    }
    std::vector<std::string> lines() const
    {
        std::ifstream in(m_path);
        std::vector<std::string> out;
        for (std::string line; std::getline(in, line);)
            out.push_back(line);
        return out;
    }
    // The head the broker keeps in its database: (seq, hash) of the last line written.
    std::pair<uint64_t, std::string> head() const
    {
        Record last = parsed(lines().back());
        return {last.seq, last.hash};
    }

    std::string m_dir;
    std::string m_path;
};

} // namespace

// ---- the record ----

TEST(AuditRecord, CanonicalLineIsExactAndHashIsBlake2b256)
{
    Record record {.seq = 7, .time = "2026-11-23T10:00:00.123Z", .kind = "call", .caller = "work", .target = "vault",
        .service = "my.GpgSign", .arg = "work", .verdict = "allow", .rule = "/etc/bulkhead/policy.d/10-work.policy:3",
        .prev = zeros};
    // Computed independently: python3 hashlib.blake2b(line_with_empty_hash, digest_size=32).
    EXPECT_EQ(compute_hash(record), "d831e6d13554733c4570fe71b18e39b1de259db111e95c3282e6c22618d06cba");
    record.hash = compute_hash(record);
    EXPECT_EQ(to_line(record),
        "{\"seq\":7,\"time\":\"2026-11-23T10:00:00.123Z\",\"kind\":\"call\",\"caller\":\"work\",\"target\":\"vault\","
        "\"service\":\"my.GpgSign\",\"arg\":\"work\",\"verdict\":\"allow\",\"rule\":\"/etc/bulkhead/policy.d/10-work."
        "policy:3\",\"detail\":\"\",\"prev\":\"" + zeros + "\",\"hash\":\"" + record.hash + "\"}");
    // The hash covers every field.
    for (auto* field : {&record.time, &record.kind, &record.caller, &record.target, &record.service, &record.arg,
             &record.verdict, &record.rule, &record.detail, &record.prev}) {
        Record changed = record;
        std::string* same = &changed.time + (field - &record.time);
        *same += "x";
        EXPECT_NE(compute_hash(changed), record.hash);
    }
    Record other_seq = record;
    other_seq.seq = 8;
    EXPECT_NE(compute_hash(other_seq), record.hash);
}

TEST(AuditRecord, EscapesAndRoundTripsByteForByte)
{
    Record record {.seq = 18446744073709551615ULL, .time = "t", .kind = "call", .caller = "w", .target = "v",
        .service = "s", .arg = "a\"b\\c\nd\x01\x7f/", .verdict = "allow", .rule = "f:1",
        .detail = "\xc3\xa9\xe2\x80\xa6",
        .prev = zeros, .hash = std::string(64, 'f')};
    std::string line = to_line(record);
    EXPECT_NE(line.find(R"("arg":"a\"b\\c\u000ad\u0001\u007f/")"), std::string::npos) << line;
    EXPECT_NE(line.find("\"detail\":\"\xc3\xa9\xe2\x80\xa6\""), std::string::npos) << line; // UTF-8 as is
    EXPECT_EQ(line.find('\n'), std::string::npos);
    Record back = parsed(line);
    EXPECT_EQ(back.seq, record.seq);
    EXPECT_EQ(back.arg, record.arg);
    EXPECT_EQ(back.detail, record.detail);
    EXPECT_EQ(to_line(back), line);
}

TEST(AuditRecord, FromLineIsStrict)
{
    Record record {.seq = 3, .time = "t", .kind = "call", .arg = "A/", .prev = zeros};
    record.hash = compute_hash(record);
    std::string const line = to_line(record);
    ASSERT_TRUE(from_line(line).has_value());
    auto replaced = [&](std::string const& from, std::string const& to) {
        std::string out = line;
        size_t at = out.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return out.replace(at, from.size(), to);
    };
    std::string const rejected[] = {
        "",
        "[]",
        "{}",
        line + "\n",
        " " + line,
        replaced("{\"seq\":3,", "{ \"seq\":3,"),
        replaced("{\"seq\":3,\"time\":\"t\",", "{\"time\":\"t\",\"seq\":3,"), // key order
        replaced("\"seq\":3", "\"seq\":0"),
        replaced("\"seq\":3", "\"seq\":-3"),
        replaced("\"seq\":3", "\"seq\":3.0"),
        replaced("\"seq\":3", "\"seq\":\"3\""),
        replaced("\"seq\":3", "\"seq\":18446744073709551616"),
        replaced("\"seq\":3", "\"seq\":03"),
        replaced("\"arg\":\"A/\"", "\"arg\":\"\\u0041/\""), // same value, not the canonical spelling
        replaced("\"arg\":\"A/\"", "\"arg\":\"A\\/\""),
        replaced("\"arg\":\"A/\"", "\"arg\":\"A\xff\""), // not UTF-8
        replaced("\"arg\":\"A/\"", "\"arg\":7"),
        replaced("\"arg\":\"A/\",", ""),                                    // a field missing
        replaced("\"arg\":\"A/\",", "\"arg\":\"A/\",\"arg\":\"A/\","),    // a field twice
        replaced("\"hash\":\"", "\"x\":1,\"hash\":\""),                     // a field more
        replaced(record.hash, std::string(63, 'a')),
        replaced(record.hash, std::string(64, 'A')),
        replaced(zeros, std::string(64, 'g')),
    };
    for (auto const& text : rejected)
        EXPECT_TRUE(from_line(text).is_error()) << text;
}

// ---- appending and opening ----

// "20YY-MM-DDTHH:MM:SS.mmmZ" with each field in range.
static bool is_utc_millis(std::string const& time)
{
    std::string_view const shape = "2000-00-00T00:00:00.000Z";
    if (time.size() != shape.size() || !time.starts_with("20"))
        return false;
    for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == '0' || shape[i] == '2' ? !std::isdigit(static_cast<unsigned char>(time[i])) : time[i] != shape[i])
            return false;
    }
    auto field = [&](size_t at) { return (time[at] - '0') * 10 + (time[at + 1] - '0'); };
    return field(5) >= 1 && field(5) <= 12 && field(8) >= 1 && field(8) <= 31 && field(11) <= 23 && field(14) <= 59
        && field(17) <= 60;
}

TEST_F(AuditLog, AppendsRecordsThatChainFromZeros)
{
    for (auto const* bad : {"2026-13-01T00:00:00.000Z", "2026-01-01 00:00:00.000Z", "2026-01-01T00:00:00.00Z", "1999-01-01T00:00:00.000Z"})
        EXPECT_FALSE(is_utc_millis(bad)) << bad; // the check itself
    write_log(10);
    auto all = lines();
    ASSERT_EQ(all.size(), 10U);
    std::string prev = zeros;
    for (size_t i = 0; i < all.size(); ++i) {
        Record record = parsed(all[i]);
        EXPECT_EQ(record.seq, i + 1);
        EXPECT_EQ(record.prev, prev);
        EXPECT_EQ(record.hash, compute_hash(record));
        EXPECT_TRUE(is_utc_millis(record.time)) << record.time;
        EXPECT_EQ(record.arg, std::to_string(i + 1));
        prev = record.hash;
    }
    EXPECT_EQ(slurp(m_path), joined(all)); // one line each, newline-terminated
    auto result = verify(joined(all), head());
    EXPECT_EQ(result.records, 10U);
    EXPECT_TRUE(result.problems.empty()) << ::testing::PrintToString(problems(joined(all), head()));
}

TEST_F(AuditLog, ReopenedLogContinuesTheChain)
{
    write_log(3);
    write_log(2);
    auto all = lines();
    ASSERT_EQ(all.size(), 5U);
    EXPECT_EQ(parsed(all[3]).seq, 4U);
    EXPECT_EQ(parsed(all[3]).prev, parsed(all[2]).hash);
    EXPECT_TRUE(problems(joined(all)).empty());
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.has_value());
    EXPECT_EQ(log.value().last_seq(), 5U);
    EXPECT_EQ(log.value().last_hash(), parsed(all[4]).hash);
}

TEST_F(AuditLog, RecordsWrittenBeforeTheirSyncAreInTheFileAndChain)
{
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.has_value());
    EXPECT_FALSE(log.value().unsynced());
    for (int i = 0; i < 3; ++i) {
        Record record {.kind = "call", .caller = "work", .target = "vault", .service = "my.Sign", .verdict = "allow"};
        ASSERT_TRUE(log.value().append(record, false).has_value());
        EXPECT_TRUE(log.value().unsynced());
        EXPECT_EQ(lines().size(), size_t(i + 1)); // written at once, before any sync
    }
    ASSERT_TRUE(log.value().sync().has_value());
    EXPECT_FALSE(log.value().unsynced());
    Record synced {.kind = "admin", .caller = "@host", .service = "apply", .verdict = "ok"};
    ASSERT_TRUE(log.value().append(synced).has_value());
    EXPECT_FALSE(log.value().unsynced());
    EXPECT_EQ(lines().size(), 4U);
    EXPECT_TRUE(problems(joined(lines()), head()).empty());
}

TEST_F(AuditLog, OpensAnEmptyFileAtTheStartAndCreatesIt0600)
{
    {
        auto log = Log::open(m_path);
        ASSERT_TRUE(log.has_value());
        EXPECT_EQ(log.value().last_seq(), 0U);
        EXPECT_EQ(log.value().last_hash(), zeros);
    }
    struct stat info {};
    ASSERT_EQ(::stat(m_path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777, 0600U);
    EXPECT_EQ(info.st_size, 0);
    auto again = Log::open(m_path); // empty, not incomplete
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_EQ(again.value().last_seq(), 0U);
}

TEST_F(AuditLog, ContinuesALogLargerThanTheTailItReads)
{
    write_log(400); // ~150 KiB: the last record is found in the last 64 KiB
    ASSERT_GT(slurp(m_path).size(), 128U * 1024);
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.has_value()) << log.error().message();
    EXPECT_EQ(log.value().last_seq(), 400U);
    EXPECT_EQ(log.value().last_hash(), parsed(lines().back()).hash);
}

TEST_F(AuditLog, RefusesALogItCannotContinue)
{
    write_log(2);
    std::ofstream(m_path, std::ios::app) << "{\"seq\":3,\"ti";
    auto incomplete = Log::open(m_path);
    ASSERT_TRUE(incomplete.is_error());
    EXPECT_NE(incomplete.error().message().find("the last line is incomplete"), std::string::npos);

    std::ofstream(m_path, std::ios::app) << "me\":\"\"}\n";
    auto garbage = Log::open(m_path);
    ASSERT_TRUE(garbage.is_error());
    EXPECT_NE(garbage.error().message().find("the last line is not a record"), std::string::npos);

    std::ofstream(m_path, std::ios::trunc) << std::string(100 * 1024, 'x') << "\n";
    auto too_long = Log::open(m_path);
    ASSERT_TRUE(too_long.is_error());
    EXPECT_NE(too_long.error().message().find("longer than 64 KiB"), std::string::npos);
}

TEST_F(AuditLog, DoesNotFollowALink)
{
    std::string target = m_dir + "/elsewhere";
    std::ofstream(target) << "";
    ASSERT_EQ(::symlink(target.c_str(), m_path.c_str()), 0);
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.is_error());
    EXPECT_EQ(log.error().code(), ELOOP);
}

TEST_F(AuditLog, BoundsFieldsAndReplacesInvalidUtf8)
{
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.has_value());
    std::string const ellipsis = "\xe2\x80\xa6";
    std::string e_acute;
    for (int i = 0; i < 200; ++i)
        e_acute += "\xc3\xa9";
    Record record {.kind = "call", .caller = std::string(1000, 'c'), .target = "t\ninjected", .service = e_acute,
        .arg = std::string(10000, 'x'), .verdict = "allow", .rule = std::string(5000, 'r'),
        .detail = "bad \xff\xfe utf8; overlong \xc0\xaf surrogate \xed\xa0\x80 past \xf4\x90\x80\x80 cut \xe2\x82 "
                  "kept \xf0\x9f\x98\x80"};
    ASSERT_TRUE(log.value().append(record).has_value());
    auto all = lines();
    ASSERT_EQ(all.size(), 1U); // the newline in target is escaped, never written raw
    Record back = parsed(all[0]);
    EXPECT_EQ(back.target, "t\ninjected");
    EXPECT_EQ(back.caller, std::string(125, 'c') + ellipsis);
    EXPECT_EQ(back.arg, std::string(253, 'x') + ellipsis);
    EXPECT_EQ(back.rule, std::string(1021, 'r') + ellipsis);
    // 128 bytes at most, and the cut does not split a two-byte character.
    EXPECT_EQ(back.service, e_acute.substr(0, 124) + ellipsis);
    std::string const fffd = "\xef\xbf\xbd";
    EXPECT_EQ(back.detail, "bad " + fffd + fffd + " utf8; overlong " + fffd + fffd + " surrogate " + fffd + fffd + fffd
            + " past " + fffd + fffd + fffd + fffd + " cut " + fffd + fffd + " kept \xf0\x9f\x98\x80");
    EXPECT_EQ(record.detail, back.detail); // append filled the caller's record with what it wrote
    EXPECT_TRUE(problems(slurp(m_path)).empty());
}

TEST_F(AuditLog, ARecordStaysSmallWhateverTheFields)
{
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.has_value());
    std::string const control(100000, '\x01'); // each byte written as \u0001: six times longer
    Record record {.kind = control, .caller = control, .target = control, .service = control, .arg = control,
        .verdict = control, .rule = control, .detail = control};
    ASSERT_TRUE(log.value().append(record).has_value());
    auto all = lines();
    ASSERT_EQ(all.size(), 1U);
    EXPECT_LT(all[0].size(), 16U * 1024);
    EXPECT_TRUE(from_line(all[0]).has_value());
}

TEST_F(AuditLog, TakesBackAWriteCutShort)
{
    write_log(3);
    std::string const before = slurp(m_path);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The file may grow by 40 bytes only: the write of the next line stops part of the way.
        ::signal(SIGXFSZ, SIG_IGN);
        rlimit limit {static_cast<rlim_t>(before.size() + 40), RLIM_INFINITY};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        auto log = Log::open(m_path);
        Record record {.kind = "call", .arg = std::string(200, 'y')};
        bool refused = log.has_value() && log.value().append(record).is_error();
        ::_exit(refused && log.value().last_seq() == 3 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(slurp(m_path), before); // not half a line
    write_log(1);
    EXPECT_EQ(parsed(lines().back()).seq, 4U);
    EXPECT_TRUE(problems(slurp(m_path)).empty());
}

// ---- read ----

TEST_F(AuditLog, ReadsRecordsAfterASeqSkippingWhatIsNotARecord)
{
    write_log(5);
    auto all_lines = lines();
    all_lines.insert(all_lines.begin() + 3, "not a record");
    std::ofstream(m_path, std::ios::trunc) << joined(all_lines) << "{\"seq\":6,"; // the last one being written
    auto all = read(m_path, 0, 100);
    ASSERT_TRUE(all.has_value());
    ASSERT_EQ(all.value().size(), 5U);
    for (size_t i = 0; i < 5; ++i)
        EXPECT_EQ(all.value()[i].seq, i + 1);
    auto page = read(m_path, 2, 2);
    ASSERT_TRUE(page.has_value());
    ASSERT_EQ(page.value().size(), 2U);
    EXPECT_EQ(page.value()[0].seq, 3U);
    EXPECT_EQ(page.value()[1].seq, 4U);
    EXPECT_TRUE(read(m_path, 5, 10).value().empty());
    EXPECT_TRUE(read(m_dir + "/missing.log", 0, 10).is_error());
}

TEST_F(AuditLog, ReadsFromTheMiddleOfALargeLog)
{
    write_log(2000); // ~750 KiB: read() seeks instead of scanning from the start
    for (uint64_t after : {0U, 1U, 999U, 1500U, 1990U, 1999U, 2000U}) {
        auto page = read(m_path, after, 256);
        ASSERT_TRUE(page.has_value());
        ASSERT_EQ(page.value().size(), std::min<uint64_t>(256, 2000 - after)) << after;
        for (size_t i = 0; i < page.value().size(); ++i)
            EXPECT_EQ(page.value()[i].seq, after + 1 + i);
    }
}

// ---- verify: each kind of tampering on a real log of 10 records ----

class AuditTampering : public AuditLog {
protected:
    void SetUp() override
    {
        AuditLog::SetUp();
        write_log(10);
        m_lines = lines();
        m_head = head();
    }
    Record record(size_t seq) const { return parsed(m_lines[seq - 1]); }

    std::vector<std::string> m_lines;
    std::pair<uint64_t, std::string> m_head;
};

TEST_F(AuditTampering, CleanLogHasNoProblems)
{
    EXPECT_TRUE(problems(joined(m_lines)).empty());
    EXPECT_TRUE(problems(joined(m_lines), m_head).empty());
    EXPECT_EQ(verify(joined(m_lines), m_head).records, 10U);
    EXPECT_TRUE(problems("").empty());
}

TEST_F(AuditTampering, EditedField)
{
    m_lines[4].replace(m_lines[4].find("\"deny\""), 6, "\"allow\"");
    EXPECT_EQ(problems(joined(m_lines), m_head),
        Lines {"line 5 (seq 5): edited: its hash does not match its content"});
}

TEST_F(AuditTampering, EditedFieldWithItsHashRecomputed)
{
    m_lines[4] = reforged(m_lines[4], [](Record& r) { r.verdict = "allow"; });
    EXPECT_EQ(problems(joined(m_lines), m_head),
        Lines {"line 5 (seq 5): replaced: changed, and its hash recomputed: the next record "
                                  "(line 6) names a different hash as its prev"});
}

TEST_F(AuditTampering, EditedSeqWithItsHashRecomputed)
{
    m_lines[4] = reforged(m_lines[4], [](Record& r) { r.seq = 50; });
    EXPECT_EQ(problems(joined(m_lines), m_head),
        Lines {"line 5 (seq 50): edited: seq 50 does not follow 4, yet its prev names record 4 "
                                  "(its seq was changed and its hash recomputed)"});
}

TEST_F(AuditTampering, DeletedRecords)
{
    auto without = [&](size_t from, size_t count) {
        auto copy = m_lines;
        copy.erase(copy.begin() + static_cast<long>(from), copy.begin() + static_cast<long>(from + count));
        return joined(copy);
    };
    EXPECT_EQ(problems(without(4, 1), m_head),
        Lines {"line 5 (seq 6): deleted: seq 5 is missing: 4 is followed by 6"});
    EXPECT_EQ(problems(without(4, 2), m_head),
        Lines {"line 5 (seq 7): deleted: seqs 5 to 6 are missing: 4 is followed by 7"});
    EXPECT_EQ(problems(without(0, 1), m_head),
        Lines {"line 1 (seq 2): deleted: seq 1 is missing: the log starts at seq 2"});
}

TEST_F(AuditTampering, DeletedLastRecordNeedsTheBrokersHead)
{
    m_lines.pop_back();
    EXPECT_TRUE(problems(joined(m_lines)).empty()); // the chain alone cannot tell...
    EXPECT_EQ(problems(joined(m_lines), m_head), // ...the broker's note of its last record can
        Lines {"line 9 (seq 9): truncated: the log ends at seq 9, the broker wrote up to seq 10"});
    EXPECT_EQ(problems("", m_head),
        Lines {"line 0 (seq 0): truncated: the log ends at seq 0, the broker wrote up to seq 10"});
}

TEST_F(AuditTampering, ReplacedLastRecordNeedsTheBrokersHead)
{
    m_lines.back() = reforged(m_lines.back(), [](Record& r) { r.arg = "forged"; });
    EXPECT_TRUE(problems(joined(m_lines)).empty());
    EXPECT_EQ(problems(joined(m_lines), m_head),
        Lines {"line 10 (seq 10): replaced: it is not the record the broker wrote last (the "
                                  "broker's database names another hash for seq 10)"});
}

TEST_F(AuditTampering, RecordsPastTheBrokersHead)
{
    auto earlier = std::make_pair(uint64_t(8), record(8).hash);
    EXPECT_EQ(problems(joined(m_lines), earlier),
        Lines {"line 9 (seq 9): appended: the log goes on past seq 8, the last record the "
                                  "broker's database names (written by someone else, or the broker stopped between "
                                  "the two writes)"});
}

TEST_F(AuditTampering, InsertedForgeryWithACorrectHash)
{
    // Continues record 3 as its seq 4, with a hash of its own that is right: placed before the real 4...
    std::string forged = reforged(m_lines[3], [](Record& r) { r.arg = "forged"; });
    auto before = m_lines;
    before.insert(before.begin() + 3, forged);
    EXPECT_EQ(problems(joined(before), m_head),
        Lines {"line 4 (seq 4): inserted: the chain continues from the other record with seq 4 "
                                  "(line 5), not from this one"});
    // ...or after it.
    auto after = m_lines;
    after.insert(after.begin() + 4, forged);
    EXPECT_EQ(problems(joined(after), m_head),
        Lines {"line 5 (seq 4): inserted: a second record with seq 4 (the chain runs through line 4)"});
    // With a prev that links nothing.
    std::string unlinked = reforged(m_lines[3], [](Record& r) { r.prev = std::string(64, 'a'); });
    auto loose = m_lines;
    loose.insert(loose.begin() + 3, unlinked);
    EXPECT_EQ(problems(joined(loose), m_head),
        Lines {"line 4 (seq 4): inserted: its prev does not name record 3; the record with seq 4 "
                                  "that does is at line 5"});
    // With a seq of its own.
    std::string wild = reforged(m_lines[3], [](Record& r) { r.seq = 99, r.prev = std::string(64, 'b'); });
    auto odd = m_lines;
    odd.insert(odd.begin() + 3, wild);
    EXPECT_EQ(problems(joined(odd), m_head),
        Lines {"line 4 (seq 99): inserted: seq 99 does not belong here, and no record names its hash"});
    // Without even a correct hash.
    auto careless = m_lines;
    careless.insert(careless.begin() + 3, m_lines[3].substr(0, 30) + "X" + m_lines[3].substr(31));
    EXPECT_EQ(problems(joined(careless), m_head),
        Lines {"line 4 (seq 4): inserted: its hash does not match its content, and the next record "
                                  "continues the chain without it"});
}

TEST_F(AuditTampering, DuplicatedRecord)
{
    m_lines.insert(m_lines.begin() + 2, m_lines[1]);
    EXPECT_EQ(problems(joined(m_lines), m_head),
        Lines {"line 3 (seq 2): inserted: a copy of line 2"});
}

TEST_F(AuditTampering, SwappedRecords)
{
    auto adjacent = m_lines;
    std::swap(adjacent[2], adjacent[3]);
    EXPECT_EQ(problems(joined(adjacent), m_head),
        Lines {"line 3 (seq 4): reordered: seq 4 comes before seq 3 (line 4)"});
    auto apart = m_lines;
    std::swap(apart[2], apart[6]);
    EXPECT_EQ(problems(joined(apart), m_head),
        (Lines {"line 3 (seq 7): reordered: seq 7 comes before seq 3 (line 7)",
            "line 7 (seq 3): reordered: seq 3 comes after seq 7; it belongs before line 4 (seq 4)"}));
}

TEST_F(AuditTampering, MovedRecord)
{
    auto late = m_lines; // 3 moved to after 7
    late.erase(late.begin() + 2);
    late.insert(late.begin() + 6, m_lines[2]);
    EXPECT_EQ(problems(joined(late), m_head),
        Lines {"line 7 (seq 3): reordered: seq 3 comes after seq 7; it belongs before line 3 (seq 4)"});
    auto early = m_lines; // 8 moved to after 2
    early.erase(early.begin() + 7);
    early.insert(early.begin() + 2, m_lines[7]);
    EXPECT_EQ(problems(joined(early), m_head),
        Lines {"line 3 (seq 8): reordered: seq 8 comes before seq 3 (line 4)"});
}

TEST_F(AuditTampering, LinesThatAreNotRecords)
{
    auto replaced = m_lines;
    replaced[4] = "garbage";
    EXPECT_EQ(problems(joined(replaced), m_head),
        Lines {"line 5 (seq 0): not a record (not JSON)"}); // not also "seq 5 is missing"
    auto added = m_lines;
    added.insert(added.begin() + 4, "");
    EXPECT_EQ(problems(joined(added), m_head), Lines {"line 5 (seq 0): not a record (not JSON)"});
    std::string cut = joined(m_lines);
    cut.pop_back();
    EXPECT_EQ(problems(cut), Lines {"line 10 (seq 0): an incomplete last line (no newline: a write "
                                                       "was cut short)"});
}

// Whatever is done to the log (a line removed, moved, copied, one byte changed), verify says something.
TEST_F(AuditTampering, EveryChangeIsFound)
{
    std::string const clean = joined(m_lines);
    std::vector<std::string> changed;
    for (size_t i = 0; i < m_lines.size(); ++i) {
        auto copy = m_lines;
        copy.erase(copy.begin() + static_cast<long>(i));
        changed.push_back(joined(copy));
        for (size_t j = 0; j <= m_lines.size(); ++j) {
            auto moved = copy;
            moved.insert(moved.begin() + static_cast<long>(std::min(j, moved.size())), m_lines[i]);
            changed.push_back(joined(moved));
            auto doubled = m_lines;
            doubled.insert(doubled.begin() + static_cast<long>(j), m_lines[i]);
            changed.push_back(joined(doubled));
        }
    }
    for (size_t at = 0; at < clean.size(); at += 7) {
        std::string flipped = clean;
        flipped[at] ^= 0x01;
        changed.push_back(flipped);
    }
    size_t checked = 0;
    for (auto const& contents : changed) {
        if (contents == clean)
            continue; // moved back to where it was
        ++checked;
        EXPECT_FALSE(verify(contents, m_head).problems.empty()) << contents;
    }
    EXPECT_GT(checked, 600U);
}

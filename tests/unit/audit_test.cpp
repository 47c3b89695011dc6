#include "broker/audit.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::audit;

namespace {

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

    // A log of `count` call records.
    void write_log(int count)
    {
        auto log = Log::open(m_path);
        ASSERT_TRUE(log.has_value()) << log.error().message();
        for (int i = 0; i < count; ++i) {
            Record record {.kind = "call", .caller = "work", .target = "vault", .service = "my.Sign", .arg = std::to_string(i),
                .verdict = i % 2 ? "allow" : "deny", .rule = "/etc/bulkhead/policy.d/a.policy:" + std::to_string(i + 1)};
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
    static std::string joined(std::vector<std::string> const& lines)
    {
        std::string out;
        for (auto const& line : lines)
            out += line + "\n";
        return out;
    }
    static std::vector<std::string> problems(std::string const& contents, std::optional<std::pair<uint64_t, std::string>> expected = {})
    {
        std::vector<std::string> out;
        for (auto const& problem : verify(contents, expected).problems)
            out.push_back("line " + std::to_string(problem.line) + " seq " + std::to_string(problem.seq) + ": " + problem.what);
        return out;
    }

    std::string m_dir;
    std::string m_path;
};

// A record with its hash recomputed after an edit: what a careful forger writes.
std::string reforged(std::string const& line, std::string const& from, std::string const& to)
{
    auto record = from_line(line);
    EXPECT_TRUE(record.has_value());
    std::string edited = to_line(record.value());
    edited.replace(edited.find(from), from.size(), to);
    auto changed = from_line(edited.substr(0, edited.find(",\"hash\":")) + ",\"hash\":\"" + std::string(64, '0') + "\"}");
    EXPECT_TRUE(changed.has_value());
    changed.value().hash = compute_hash(changed.value());
    return to_line(changed.value());
}

} // namespace

TEST_F(AuditLog, AppendsAChainThatVerifies)
{
    write_log(10);
    auto all = lines();
    ASSERT_EQ(all.size(), 10U);
    auto first = from_line(all[0]);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_EQ(first.value().seq, 1U);
    EXPECT_EQ(first.value().prev, std::string(64, '0'));
    EXPECT_EQ(from_line(all[1]).value().prev, first.value().hash);
    EXPECT_EQ(first.value().time.size(), 24U); // 2026-11-23T10:00:00.123Z
    auto result = verify(joined(all), std::nullopt);
    EXPECT_EQ(result.records, 10U);
    EXPECT_TRUE(result.problems.empty()) << ::testing::PrintToString(problems(joined(all)));
}

TEST_F(AuditLog, ReopenedLogContinuesTheChain)
{
    write_log(3);
    write_log(2);
    auto all = lines();
    ASSERT_EQ(all.size(), 5U);
    EXPECT_EQ(from_line(all[3]).value().seq, 4U);
    EXPECT_TRUE(problems(joined(all)).empty());
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.has_value());
    EXPECT_EQ(log.value().last_seq(), 5U);
    EXPECT_EQ(log.value().last_hash(), from_line(all[4]).value().hash);
}

TEST_F(AuditLog, RefusesToContinueAnIncompleteLastLine)
{
    write_log(2);
    std::ofstream(m_path, std::ios::app) << "{\"seq\":3,\"ti";
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.is_error());
    EXPECT_NE(log.error().message().find("incomplete"), std::string::npos);
}

TEST_F(AuditLog, FindsAnEditedRecord)
{
    write_log(10);
    auto all = lines();
    all[4].replace(all[4].find("\"deny\""), 6, "\"allow\"");
    auto found = problems(joined(all));
    ASSERT_EQ(found.size(), 1U) << ::testing::PrintToString(found);
    EXPECT_EQ(found[0], "line 5 seq 5: edited: its hash does not match its content");
}

TEST_F(AuditLog, FindsAnEditWhoseHashWasRecomputed)
{
    write_log(10);
    auto all = lines();
    all[4] = reforged(all[4], "\"deny\"", "\"allow\"");
    auto found = problems(joined(all));
    ASSERT_EQ(found.size(), 1U) << ::testing::PrintToString(found);
    EXPECT_EQ(found[0], "line 6 seq 6: inserted or replaced: its prev does not name the hash of record 5");
}

TEST_F(AuditLog, FindsADeletedRecord)
{
    write_log(10);
    auto all = lines();
    all.erase(all.begin() + 4);
    auto found = problems(joined(all));
    ASSERT_EQ(found.size(), 1U) << ::testing::PrintToString(found);
    EXPECT_EQ(found[0], "line 5 seq 6: deleted: seq 5 missing (4 is followed by 6)");
}

TEST_F(AuditLog, FindsRecordsCutOffTheEnd)
{
    write_log(10);
    auto all = lines();
    auto last = from_line(all.back()).value();
    all.pop_back();
    EXPECT_TRUE(problems(joined(all)).empty()); // the chain alone cannot tell...
    auto found = problems(joined(all), std::make_pair(last.seq, last.hash));
    ASSERT_EQ(found.size(), 1U); // ...the broker's own record of the head can
    EXPECT_NE(found[0].find("truncated: the log ends at seq 9, the broker wrote up to 10"), std::string::npos);
}

TEST_F(AuditLog, FindsAnInsertedForgery)
{
    write_log(10);
    auto all = lines();
    // A forged record that continues record 3 correctly, then the real 4 follows.
    std::string forged = reforged(all[3], "\"arg\":\"3\"", "\"arg\":\"forged\"");
    all.insert(all.begin() + 3, forged);
    auto found = problems(joined(all));
    ASSERT_FALSE(found.empty());
    EXPECT_NE(found[0].find("line 5 seq 4: inserted"), std::string::npos) << ::testing::PrintToString(found);
}

TEST_F(AuditLog, FindsSwappedRecords)
{
    write_log(10);
    auto all = lines();
    std::swap(all[2], all[3]);
    auto found = problems(joined(all));
    ASSERT_FALSE(found.empty());
    EXPECT_NE(found[0].find("line 3 seq 4: deleted"), std::string::npos) << ::testing::PrintToString(found);
    EXPECT_NE(found[1].find("line 4 seq 3: reordered"), std::string::npos) << ::testing::PrintToString(found);
}

TEST_F(AuditLog, FindsADuplicatedRecordAndGarbage)
{
    write_log(5);
    auto all = lines();
    all.insert(all.begin() + 2, all[1]);
    all.push_back("not json");
    auto found = problems(joined(all));
    ASSERT_EQ(found.size(), 2U) << ::testing::PrintToString(found);
    EXPECT_NE(found[0].find("line 3 seq 2: inserted: a second record with seq 2"), std::string::npos);
    EXPECT_NE(found[1].find("line 7 seq 0: not a record"), std::string::npos);
}

TEST(AuditRecord, StrictCanonicalRoundTrip)
{
    Record record {.seq = 7, .time = "2026-11-23T10:00:00.000Z", .kind = "call", .caller = "work", .target = "vault",
        .service = "s", .arg = "a\"b\\c\n\x01", .verdict = "allow", .rule = "f:1", .detail = "é", .prev = std::string(64, '0')};
    record.hash = compute_hash(record);
    std::string line = to_line(record);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    auto parsed = from_line(line);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
    EXPECT_EQ(parsed.value().arg, record.arg);
    EXPECT_EQ(to_line(parsed.value()), line);
    // Reordered keys, extra spaces, extra fields, a negative seq: not records.
    std::string spaced = line;
    spaced.insert(1, " ");
    EXPECT_TRUE(from_line(spaced).is_error());
    EXPECT_TRUE(from_line(line.substr(0, line.size() - 1) + ",\"x\":1}").is_error());
    EXPECT_TRUE(from_line("{\"seq\":-1}").is_error());
    EXPECT_TRUE(from_line("").is_error());
}

TEST_F(AuditLog, BoundsFieldsAndReplacesInvalidUtf8)
{
    auto log = Log::open(m_path);
    ASSERT_TRUE(log.has_value());
    Record record {.kind = "call", .caller = "work", .arg = std::string(10000, 'x'), .detail = "bad \xff\xfe utf8"};
    ASSERT_TRUE(log.value().append(record).has_value());
    auto all = lines();
    ASSERT_EQ(all.size(), 1U);
    EXPECT_LT(all[0].size(), 1500U);
    auto parsed = from_line(all[0]);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
    EXPECT_EQ(parsed.value().detail, "bad \xef\xbf\xbd\xef\xbf\xbd utf8");
    EXPECT_TRUE(problems(joined(all)).empty());
}

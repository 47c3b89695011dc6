// DenialAggregator: the first denial of a kind is written, repeats within the window are counted
// and summed up once, per caller; a flood costs records per window, not per call, whatever the
// caller varies.
#include "broker/audit_aggregate.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace bulkhead::audit;

namespace {

Record denial(std::string const& caller, std::string const& arg = "x", std::string const& service = "my.Svc")
{
    return Record {.kind = "call", .caller = caller, .target = "vault", .service = service, .arg = arg, .verdict = "deny",
        .rule = "/etc/bulkhead/policy.d/a.policy:4"};
}

// The number a summary says it counted ("denied N more ...").
uint64_t counted(Record const& summary)
{
    size_t at = summary.detail.find("denied ");
    EXPECT_NE(at, std::string::npos) << summary.detail;
    if (at == std::string::npos)
        return 0;
    size_t end = summary.detail.find(" more", at);
    EXPECT_NE(end, std::string::npos) << summary.detail;
    return std::stoull(summary.detail.substr(at + 7, end - at - 7));
}

} // namespace

TEST(DenialAggregator, WritesTheFirstCountsTheRestAndSumsThemUpWhenTheWindowEnds)
{
    DenialAggregator aggregator(10000);
    auto first = aggregator.admit(denial("untrusted"), 1000);
    ASSERT_EQ(first.size(), 1U);
    EXPECT_EQ(first[0].verdict, "deny");
    EXPECT_EQ(first[0].arg, "x");
    EXPECT_EQ(first[0].detail, "");
    for (int i = 1; i <= 4122; ++i)
        EXPECT_TRUE(aggregator.admit(denial("untrusted"), 1000 + i * 2).empty());
    EXPECT_EQ(aggregator.next_due(), 11000);
    EXPECT_TRUE(aggregator.take_due(10999).empty());
    auto summary = aggregator.take_due(11000);
    ASSERT_EQ(summary.size(), 1U);
    EXPECT_EQ(summary[0].caller, "untrusted");
    EXPECT_EQ(summary[0].target, "vault");
    EXPECT_EQ(summary[0].service, "my.Svc");
    EXPECT_EQ(summary[0].arg, "x");
    EXPECT_EQ(summary[0].rule, "/etc/bulkhead/policy.d/a.policy:4");
    EXPECT_EQ(summary[0].verdict, "deny");
    EXPECT_EQ(summary[0].detail, "denied 4122 more times in 8.2 s");
    EXPECT_FALSE(aggregator.next_due());
    // The window is over: the next one is written again.
    EXPECT_EQ(aggregator.admit(denial("untrusted"), 11001).size(), 1U);
}

TEST(DenialAggregator, AWindowWithoutRepeatsSaysNothingAndSetsNoTimer)
{
    DenialAggregator aggregator(10000);
    EXPECT_EQ(aggregator.admit(denial("work"), 0).size(), 1U);
    EXPECT_FALSE(aggregator.next_due());
    EXPECT_TRUE(aggregator.take_due(20000).empty());
    EXPECT_TRUE(aggregator.take_all().empty());
}

TEST(DenialAggregator, AnEndedWindowNotYetTakenIsSummedUpBeforeTheNextFirst)
{
    DenialAggregator aggregator(10000);
    (void)aggregator.admit(denial("work"), 0);
    (void)aggregator.admit(denial("work"), 5);
    auto out = aggregator.admit(denial("work"), 10000);
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(out[0].detail, "denied 1 more time in 0.0 s");
    EXPECT_EQ(out[1].detail, "");
}

TEST(DenialAggregator, KindsAndCallersAreKeptApart)
{
    DenialAggregator aggregator(10000);
    EXPECT_EQ(aggregator.admit(denial("work", "a"), 0).size(), 1U);
    EXPECT_EQ(aggregator.admit(denial("work", "b"), 1).size(), 1U);
    EXPECT_EQ(aggregator.admit(denial("personal", "a"), 2).size(), 1U);
    Record other_rule = denial("work", "a");
    other_rule.rule = "no matching rule";
    EXPECT_EQ(aggregator.admit(other_rule, 3).size(), 1U);
    Record other_detail = denial("work", "a");
    other_detail.detail = "no such compartment";
    EXPECT_EQ(aggregator.admit(other_detail, 4).size(), 1U);
    EXPECT_TRUE(aggregator.admit(denial("work", "a"), 5).empty());
    EXPECT_TRUE(aggregator.admit(other_detail, 6).empty());
    EXPECT_TRUE(aggregator.admit(denial("personal", "a"), 7).empty());
    auto summaries = aggregator.take_due(10010);
    ASSERT_EQ(summaries.size(), 3U);
    // The detail of the denial stays in its summary.
    bool detail_kept = false;
    for (auto const& summary : summaries)
        detail_kept = detail_kept || summary.detail == "no such compartment; denied 1 more time in 0.0 s";
    EXPECT_TRUE(detail_kept);
}

TEST(DenialAggregator, AnotherRecordOfTheCallerTakesItsSummariesFirst)
{
    DenialAggregator aggregator(10000);
    (void)aggregator.admit(denial("work"), 0);
    (void)aggregator.admit(denial("work"), 1);
    (void)aggregator.admit(denial("work"), 2);
    (void)aggregator.admit(denial("personal"), 3);
    (void)aggregator.admit(denial("personal"), 4);
    auto before = aggregator.take_caller("work");
    ASSERT_EQ(before.size(), 1U);
    EXPECT_EQ(before[0].detail, "denied 2 more times in 0.0 s");
    EXPECT_TRUE(aggregator.take_caller("work").empty());
    EXPECT_TRUE(aggregator.take_caller("nobody").empty());
    // The next denial of work opens a new window; personal's is untouched.
    EXPECT_EQ(aggregator.admit(denial("work"), 5).size(), 1U);
    auto rest = aggregator.take_all();
    ASSERT_EQ(rest.size(), 1U);
    EXPECT_EQ(rest[0].caller, "personal");
}

TEST(DenialAggregator, VaryingTheArgumentIsCountedPastAFewKinds)
{
    DenialAggregator aggregator(10000, 8);
    size_t written = 0;
    for (int i = 0; i < 5000; ++i)
        written += aggregator.admit(denial("untrusted", std::to_string(i)), i).size();
    EXPECT_EQ(written, 8U);
    auto summaries = aggregator.take_all();
    ASSERT_EQ(summaries.size(), 1U);
    EXPECT_EQ(summaries[0].target, "*");
    EXPECT_EQ(summaries[0].service, "*");
    EXPECT_EQ(counted(summaries[0]), 4992U);
    EXPECT_TRUE(summaries[0].detail.find("of other kinds") != std::string::npos) << summaries[0].detail;
}

// A compartment hammering denied calls for ten minutes, one every millisecond, three kinds and a
// random argument now and then: every call is accounted for, in records per window, not per call.
TEST(DenialAggregator, AFloodCostsRecordsPerWindow)
{
    DenialAggregator aggregator(10000, 8);
    int64_t const duration = 10 * 60 * 1000;
    uint64_t calls = 0, accounted = 0, records = 0;
    auto write = [&](std::vector<Record> const& out) {
        for (auto const& record : out) {
            ++records;
            accounted += record.detail.find("more") == std::string::npos ? 1 : counted(record);
        }
    };
    for (int64_t now = 0; now < duration; ++now) {
        Record call = denial("untrusted", now % 1000 == 0 ? std::to_string(now) : std::to_string(now % 3));
        ++calls;
        write(aggregator.admit(call, now));
        if (auto due = aggregator.next_due(); due && *due <= now)
            write(aggregator.take_due(now));
    }
    write(aggregator.take_all());
    EXPECT_EQ(accounted, calls);
    uint64_t const windows = duration / 10000;
    EXPECT_LE(records, windows * (2 * 8 + 1));
    EXPECT_GE(records, windows * 3);
}

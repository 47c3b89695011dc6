#include "base/parse.hpp"

#include <gtest/gtest.h>

using namespace bulkhead;

TEST(ParseSize, AcceptsUnits)
{
    EXPECT_EQ(parse_size("0").value(), 0u);
    EXPECT_EQ(parse_size("512").value(), 512u);
    EXPECT_EQ(parse_size("64K").value(), 64u << 10);
    EXPECT_EQ(parse_size("1M").value(), 1u << 20);
    EXPECT_EQ(parse_size("1G").value(), 1ULL << 30);
    EXPECT_EQ(parse_size("1.5G").value(), 3ULL << 29);
    EXPECT_EQ(parse_size("2T").value(), 2ULL << 40);
    EXPECT_EQ(parse_size("1MiB").value(), 1u << 20);
    EXPECT_EQ(parse_size("1MB").value(), 1u << 20);
    EXPECT_EQ(parse_size("10B").value(), 10u);
}

TEST(ParseSize, RejectsGarbageWithAMessage)
{
    for (auto text : {"", "M", "1Q", "-1", "1.", ".5", "1..5G", "1 G", "1GG", "1KiBx", "0x10", "1e3"}) {
        auto result = parse_size(text);
        ASSERT_TRUE(result.is_error()) << text;
        EXPECT_NE(result.error().message().find("cannot parse"), std::string::npos) << result.error().message();
    }
    EXPECT_TRUE(parse_size("16777216T").is_error());
    EXPECT_TRUE(parse_size("99999999999999999999").is_error());
}

TEST(ParseUint, Bounds)
{
    EXPECT_EQ(parse_uint("18446744073709551615").value(), 18446744073709551615ULL);
    EXPECT_TRUE(parse_uint("18446744073709551616").is_error());
    EXPECT_TRUE(parse_uint("+1").is_error());
    EXPECT_TRUE(parse_uint(" 1").is_error());
}

TEST(ParseCpus, Millis)
{
    EXPECT_EQ(parse_cpus("1").value(), 1000u);
    EXPECT_EQ(parse_cpus("0.5").value(), 500u);
    EXPECT_EQ(parse_cpus("2.25").value(), 2250u);
    EXPECT_TRUE(parse_cpus("0").is_error());
    EXPECT_TRUE(parse_cpus("0.001").is_error());
    EXPECT_TRUE(parse_cpus("-1").is_error());
    EXPECT_TRUE(parse_cpus("one").is_error());
    EXPECT_TRUE(parse_cpus("5000").is_error());
}

TEST(FormatSize, RoundTrips)
{
    for (uint64_t v : {0ULL, 1ULL, 1023ULL, 1024ULL, 3ULL << 20, 5ULL << 30, 7ULL << 40, 123456789ULL})
        EXPECT_EQ(parse_size(format_size(v)).value(), v) << format_size(v);
    EXPECT_EQ(format_size(1ULL << 20), "1M");
}

TEST(Split, KeepsEmptyParts)
{
    auto parts = split("a::b", ':');
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[1], "");
    EXPECT_EQ(trim("  x \n"), "x");
}

// The limit files of both cgroup layouts, checked on any host.
#include "sandbox/cgroup.hpp"

#include <gtest/gtest.h>

using namespace bulkhead::sandbox;

namespace {

std::string find(std::vector<CgroupSetting> const& settings, std::string const& file)
{
    for (auto const& s : settings)
        if (s.file == file)
            return s.value;
    return "<absent>";
}

Limits some_limits()
{
    Limits limits;
    limits.memory_bytes = 256ULL << 20;
    limits.pids = 100;
    limits.cpu_millis = 1500;
    return limits;
}

} // namespace

TEST(CgroupSettings, V2UsesUnifiedFilesAndForbidsSwap)
{
    auto settings = limit_settings(CgroupMode::V2, some_limits());
    EXPECT_EQ(find(settings, "memory.max"), "268435456");
    EXPECT_EQ(find(settings, "memory.swap.max"), "0");
    EXPECT_EQ(find(settings, "pids.max"), "100");
    EXPECT_EQ(find(settings, "cpu.max"), "150000 100000");
    EXPECT_EQ(find(settings, "memory.limit_in_bytes"), "<absent>");
}

TEST(CgroupSettings, HybridUsesV1FilesWithMemswNoHigherThanMemory)
{
    auto settings = limit_settings(CgroupMode::Hybrid, some_limits());
    EXPECT_EQ(find(settings, "memory.limit_in_bytes"), "268435456");
    EXPECT_EQ(find(settings, "memory.memsw.limit_in_bytes"), "268435456");
    EXPECT_EQ(find(settings, "pids.max"), "100");
    EXPECT_EQ(find(settings, "cpu.cfs_period_us"), "100000");
    EXPECT_EQ(find(settings, "cpu.cfs_quota_us"), "150000");
    EXPECT_EQ(find(settings, "memory.max"), "<absent>");
    // memsw must never be lowered below memory.limit_in_bytes: memory is written first.
    size_t memory = 0, memsw = 0;
    for (size_t i = 0; i < settings.size(); ++i) {
        memory = settings[i].file == "memory.limit_in_bytes" ? i : memory;
        memsw = settings[i].file == "memory.memsw.limit_in_bytes" ? i : memsw;
    }
    EXPECT_LT(memory, memsw);
}

TEST(CgroupSettings, EveryFileBelongsToTheControllerItNames)
{
    for (auto mode : {CgroupMode::V2, CgroupMode::Hybrid})
        for (auto const& s : limit_settings(mode, some_limits()))
            EXPECT_TRUE(s.file.starts_with(s.controller + ".")) << s.file;
}

TEST(CgroupSettings, ZeroMeansNoLimitAndWritesNothing)
{
    EXPECT_TRUE(limit_settings(CgroupMode::V2, Limits {}).empty());
    EXPECT_TRUE(limit_settings(CgroupMode::Hybrid, Limits {}).empty());
}

TEST(CgroupSettings, SmallCpuShareStaysAboveZero)
{
    Limits limits;
    limits.cpu_millis = 10; // 1% of one CPU
    EXPECT_EQ(find(limit_settings(CgroupMode::V2, limits), "cpu.max"), "1000 100000");
}

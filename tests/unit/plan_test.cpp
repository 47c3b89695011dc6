// make_plan: the difference between the applied and the desired configuration.
#include "broker/plan.hpp"

#include <gtest/gtest.h>

namespace bulkhead::broker {
namespace {

config::SystemConfig parse(std::string const& text)
{
    auto outcome = config::parse_system_config(text, "test.toml");
    EXPECT_TRUE(outcome.errors.empty()) << (outcome.errors.empty() ? "" : outcome.errors.front().format());
    return outcome.config.value_or(config::SystemConfig {});
}

std::string const base = R"([templates.host]
kind = "host"
[compartments.work]
label = "blue"
memory = "1G"
[compartments.mail]
label = "green"
)";

TEST(Plan, FirstApplyAddsEverythingAndStartsAutostart)
{
    auto desired = parse(base + "[compartments.vault]\nlabel = \"black\"\nautostart = true\n");
    Plan plan = make_plan(nullptr, desired, {});
    ASSERT_EQ(plan.changes.size(), 3U);
    EXPECT_EQ(plan.changes[0].kind, ChangeKind::Add);
    EXPECT_EQ(plan.start, std::vector<std::string> {"vault"});
    EXPECT_TRUE(plan.stop.empty());
    EXPECT_EQ(plan.describe().front(), "+ work");
}

TEST(Plan, SameConfigurationIsNoChange)
{
    auto config = parse(base);
    Plan plan = make_plan(&config, config, {"work"});
    EXPECT_TRUE(plan.empty());
    EXPECT_EQ(plan.describe(), std::vector<std::string> {"no changes"});
}

TEST(Plan, LimitChangeRestartsOnlyWhenRunning)
{
    auto before = parse(base);
    std::string changed = base;
    changed.replace(changed.find("1G"), 2, "2G");
    auto after = parse(changed);
    Plan idle = make_plan(&before, after, {});
    ASSERT_EQ(idle.changes.size(), 1U);
    EXPECT_EQ(idle.changes[0].details, std::vector<std::string> {"memory 1G -> 2G"});
    EXPECT_TRUE(idle.restart.empty());
    Plan running = make_plan(&before, after, {"work"});
    EXPECT_EQ(running.restart, std::vector<std::string> {"work"});
    EXPECT_EQ(running.describe().front(), "~ work: memory 1G -> 2G (running: will be restarted)");
}

TEST(Plan, LabelChangeNeedsNoRestart)
{
    auto before = parse(base);
    std::string changed = base;
    changed.replace(changed.find("\"green\""), 7, "\"red\"");
    Plan plan = make_plan(&before, parse(changed), {"mail"});
    ASSERT_EQ(plan.changes.size(), 1U);
    EXPECT_EQ(plan.changes[0].details, std::vector<std::string> {"label green -> red"});
    EXPECT_TRUE(plan.restart.empty());
}

TEST(Plan, RemovedRunningCompartmentIsStoppedAndItsHomeKept)
{
    auto before = parse(base);
    auto after = parse("[templates.host]\nkind = \"host\"\n[compartments.work]\nlabel = \"blue\"\nmemory = \"1G\"\n");
    Plan plan = make_plan(&before, after, {"mail"});
    EXPECT_EQ(plan.stop, std::vector<std::string> {"mail"});
    ASSERT_EQ(plan.describe().size(), 1U);
    EXPECT_EQ(plan.describe().front(), "- mail (running: will be stopped); its home stays in STATE/compartments/mail");
}

TEST(Plan, RunningCompartmentUnknownToBothIsStopped)
{
    auto config = parse(base);
    Plan plan = make_plan(&config, config, {"ghost"});
    EXPECT_EQ(plan.stop, std::vector<std::string> {"ghost"});
    EXPECT_FALSE(plan.empty());
}

TEST(Plan, AutostartCompartmentAlreadyRunningIsNotStartedAgain)
{
    auto config = parse(base + "[compartments.vault]\nlabel = \"black\"\nautostart = true\n");
    EXPECT_TRUE(make_plan(&config, config, {"vault"}).start.empty());
    EXPECT_EQ(make_plan(&config, config, {}).start, std::vector<std::string> {"vault"});
}

TEST(Plan, VolumesAddedAndRemovedAreListed)
{
    auto before = parse(base + "[volumes.photos]\n");
    auto after = parse(base + "[volumes.documents]\n");
    auto lines = make_plan(&before, after, {}).describe();
    EXPECT_NE(std::find(lines.begin(), lines.end(), "+ volume documents"), lines.end());
    EXPECT_NE(std::find(lines.begin(), lines.end(), "- volume photos (its data stays in STATE/volumes/photos)"), lines.end());
}

} // namespace
} // namespace bulkhead::broker

// CgroupRoot and Cgroup against the real host hierarchies: placement below our own cgroup, limit
// files, membership, killing, removal; and the v2 code path (CLONE_INTO_CGROUP) on the v2 tree.
#include "engine_fixture.hpp"

#include "base/parse.hpp"
#include "sandbox/cgroup.hpp"
#include "sandbox/compartment.hpp"
#include "sys/syscalls.hpp"

#include <csignal>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::sandbox;
using bulkhead::testing::EngineTest;
using bulkhead::testing::path_exists;

namespace {

std::string read_trimmed(std::string const& path)
{
    auto text = sys::read_file(path);
    return text.has_value() ? std::string(trim(text.value())) : "<unreadable: " + text.error().message() + ">";
}

bool host_is_pure_v2()
{
    auto controllers = sys::read_file("/sys/fs/cgroup/cgroup.controllers");
    return controllers.has_value() && controllers.value().find("memory") != std::string::npos;
}

std::string instance() { return "cgroup-test-" + std::to_string(::getpid()); }

class CgroupTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0)
            GTEST_SKIP() << "needs root";
    }
};

} // namespace

TEST_F(CgroupTest, DetectsTheHostLayout)
{
    auto root = CgroupRoot::open(instance());
    ASSERT_TRUE(root.has_value()) << root.error().message();
    EXPECT_EQ(root.value()->mode(), host_is_pure_v2() ? CgroupMode::V2 : CgroupMode::Hybrid);
    EXPECT_TRUE(root.value()->remove_if_empty().has_value());
}

TEST_F(CgroupTest, CompartmentCgroupsLiveBelowOurOwnCgroupNeverAtTheRoot)
{
    auto root = CgroupRoot::open(instance());
    ASSERT_TRUE(root.has_value()) << root.error().message();
    std::string own = read_trimmed("/proc/self/cgroup");
    for (auto const& dir : root.value()->directories()) {
        EXPECT_TRUE(path_exists(dir)) << dir;
        EXPECT_TRUE(dir.ends_with("/bulkhead." + instance())) << dir;
        // The parent of bulkhead.<instance> is the cgroup we run in, for that hierarchy.
        std::string parent = dir.substr(0, dir.rfind('/'));
        std::string procs = read_trimmed(parent + "/cgroup.procs");
        EXPECT_NE(procs.find(std::to_string(::getpid())), std::string::npos)
            << parent << " is not our own cgroup (" << own << ")";
    }
    EXPECT_TRUE(root.value()->remove_if_empty().has_value());
    for (auto const& dir : root.value()->directories())
        EXPECT_FALSE(path_exists(dir)) << dir;
}

TEST_F(CgroupTest, LimitsAreWrittenMembershipWorksAndRemoveKillsAndCleansUp)
{
    auto root = CgroupRoot::open(instance());
    ASSERT_TRUE(root.has_value()) << root.error().message();
    auto cgroup = root.value()->create("limits");
    ASSERT_TRUE(cgroup.has_value()) << cgroup.error().message();
    Limits limits;
    limits.memory_bytes = 96ULL << 20;
    limits.pids = 12;
    limits.cpu_millis = 500;
    ASSERT_TRUE(cgroup.value()->apply(limits).has_value());

    auto dirs = cgroup.value()->directories();
    ASSERT_FALSE(dirs.empty());
    auto file_anywhere = [&](std::string const& file) {
        for (auto const& dir : dirs)
            if (path_exists(dir + "/" + file))
                return read_trimmed(dir + "/" + file);
        return std::string("<absent>");
    };
    if (root.value()->mode() == CgroupMode::Hybrid) {
        EXPECT_EQ(file_anywhere("memory.limit_in_bytes"), "100663296");
        EXPECT_EQ(file_anywhere("cpu.cfs_quota_us"), "50000");
    } else {
        EXPECT_EQ(file_anywhere("memory.max"), "100663296");
        EXPECT_EQ(file_anywhere("cpu.max"), "50000 100000");
    }
    EXPECT_EQ(file_anywhere("pids.max"), "12");

    // The child touches 8 MiB once it is inside, so that the cgroup is charged for it.
    int go[2], done[2];
    ASSERT_EQ(::pipe(go), 0);
    ASSERT_EQ(::pipe(done), 0);
    pid_t child = ::fork();
    if (child == 0) {
        char byte;
        if (::read(go[0], &byte, 1) != 1)
            ::_exit(1);
        std::vector<char> block(8 << 20, 'x');
        (void)!::write(done[1], block.data(), 1);
        ::pause();
        ::_exit(0);
    }
    ASSERT_TRUE(cgroup.value()->add_process(child).has_value());
    for (auto const& dir : dirs)
        EXPECT_EQ(read_trimmed(dir + "/cgroup.procs"), std::to_string(child)) << dir;
    char byte = 'g';
    ASSERT_EQ(::write(go[1], &byte, 1), 1);
    ASSERT_EQ(::read(done[0], &byte, 1), 1);
    for (int fd : {go[0], go[1], done[0], done[1]})
        ::close(fd);
    auto memory = cgroup.value()->memory_current();
    ASSERT_TRUE(memory.has_value()) << memory.error().message();
    EXPECT_GE(memory.value(), 8u << 20);

    // remove() refuses to leave a live process behind: it kills it, then removes every directory.
    ASSERT_TRUE(cgroup.value()->remove().has_value());
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    for (auto const& dir : dirs)
        EXPECT_FALSE(path_exists(dir)) << dir;
    EXPECT_TRUE(cgroup.value()->remove().has_value()) << "remove() must be idempotent";
    EXPECT_TRUE(root.value()->remove_if_empty().has_value());
}

TEST_F(CgroupTest, TheCgroupIsRemovedWhenItsHandleGoes)
{
    auto root = CgroupRoot::open(instance());
    ASSERT_TRUE(root.has_value()) << root.error().message();
    std::vector<std::string> dirs;
    {
        auto cgroup = root.value()->create("scoped");
        ASSERT_TRUE(cgroup.has_value()) << cgroup.error().message();
        dirs = cgroup.value()->directories();
        for (auto const& dir : dirs)
            EXPECT_TRUE(path_exists(dir));
    }
    for (auto const& dir : dirs)
        EXPECT_FALSE(path_exists(dir)) << dir;
    EXPECT_TRUE(root.value()->remove_if_empty().has_value());
}

TEST_F(CgroupTest, BadNamesAndDuplicatesAreRefused)
{
    EXPECT_TRUE(CgroupRoot::open("../escape").is_error());
    EXPECT_TRUE(CgroupRoot::open("").is_error());
    auto root = CgroupRoot::open(instance());
    ASSERT_TRUE(root.has_value()) << root.error().message();
    for (std::string bad : std::vector<std::string> {"", ".", "..", "a/b", "../../x", std::string(65, 'a'), "x y", "a\nb"})
        EXPECT_TRUE(root.value()->create(bad).is_error()) << bad;
    auto first = root.value()->create("twice");
    ASSERT_TRUE(first.has_value());
    auto second = root.value()->create("twice");
    ASSERT_TRUE(second.is_error());
    EXPECT_NE(second.error().message().find("already exists"), std::string::npos) << second.error().message();
    // The failed duplicate must not have removed the first one's directories.
    for (auto const& dir : first.value()->directories())
        EXPECT_TRUE(path_exists(dir)) << dir;
    ASSERT_TRUE(first.value()->remove().has_value());
    EXPECT_TRUE(root.value()->remove_if_empty().has_value());
}

// The v2 path end to end: on a hybrid host the v2 tree carries no limits, but a compartment must
// still be cloned straight into its cgroup (CLONE_INTO_CGROUP) and the cgroup cleaned up.
class CgroupV2Engine : public EngineTest {
protected:
    void SetUp() override
    {
        EngineTest::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        std::string mount = host_is_pure_v2() ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
        if (!path_exists(mount + "/cgroup.procs"))
            GTEST_SKIP() << "no cgroup v2 tree on this host";
        auto v2 = CgroupRoot::open_v2_at(mount, "engine-v2-" + std::to_string(::getpid()));
        ASSERT_TRUE(v2.has_value()) << v2.error().message();
        m_v2 = v2.release_value();
    }
    void TearDown() override
    {
        if (m_v2) {
            EXPECT_TRUE(m_v2->remove_if_empty().has_value());
            for (auto const& dir : m_v2->directories())
                EXPECT_FALSE(path_exists(dir)) << dir;
        }
        EngineTest::TearDown();
    }
    std::unique_ptr<CgroupRoot> m_v2;
};

TEST_F(CgroupV2Engine, CompartmentIsClonedIntoItsCgroup)
{
    ASSERT_EQ(m_v2->mode(), CgroupMode::V2);
    auto spec = make_spec({"/bin/sleep", "30"});
    Engine engine {m_v2.get(), m_seccomp.get()};
    auto compartment = Compartment::create(engine, spec);
    ASSERT_TRUE(compartment.has_value()) << compartment.error().message();
    std::string host_view = read_trimmed("/proc/" + std::to_string(compartment.value().pid()) + "/cgroup");
    std::string expected = m_v2->directories().front() + "/" + spec.name;
    std::string mount = host_is_pure_v2() ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
    // "0::/<path>" relative to the v2 mount.
    EXPECT_NE(host_view.find("0::" + expected.substr(mount.size())), std::string::npos) << host_view;
    ASSERT_TRUE(compartment.value().destroy().has_value());
    EXPECT_FALSE(path_exists(expected));
}

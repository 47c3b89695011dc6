#include "sandbox/caps.hpp"
#include "sandbox/landlock.hpp"
#include "sys/syscalls.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/landlock.h> // LANDLOCK_CREATE_RULESET_VERSION
#include <sys/syscall.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace bulkhead;
using namespace bulkhead::sandbox;

namespace {

// Runs `body` in a child restricted to read everything and write only below `writable`.
// Returns the child's exit code.
template<typename Body>
int in_landlocked_child(std::string const& writable, Body body)
{
    pid_t pid = ::fork();
    if (pid == 0) {
        auto ruleset = landlock_prepare({{"/", LandlockAccess::ReadExec}, {writable, LandlockAccess::ReadWrite}});
        if (ruleset.is_error() || set_no_new_privs().is_error() || landlock_enforce(ruleset.value().get()).is_error())
            ::_exit(100);
        ::_exit(body());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

int try_create(std::string const& path)
{
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == EACCES ? 1 : 2;
    ::close(fd);
    return 0;
}

} // namespace

// The ABI bulkhead reports is the kernel's: the raw version query agrees, and the kernel accepts a
// ruleset of exactly what that ABI adds (ABI 4: TCP ports; ABI 6: scopes) and refuses what the next
// one would add.
TEST(Landlock, ReportsTheKernelsAbi)
{
    int abi = landlock_abi();
    RecordProperty("landlock_abi", abi);
    long raw = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    int error = errno;
    if (raw < 0) {
        EXPECT_EQ(abi, 0);
        EXPECT_TRUE(error == ENOSYS || error == EOPNOTSUPP) << std::strerror(error);
        return;
    }
    EXPECT_EQ(abi, raw);
    ASSERT_GE(abi, 1);
    // The ruleset attribute as of ABI 6 (Debian 12's headers stop at ABI 3): fs, net, scoped.
    struct Attr {
        uint64_t handled_access_fs = 0;
        uint64_t handled_access_net = 0;
        uint64_t scoped = 0;
    };
    auto accepts = [](Attr const& attr) {
        long fd = ::syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
        if (fd >= 0)
            ::close(static_cast<int>(fd));
        return fd >= 0;
    };
    EXPECT_TRUE(accepts({1ULL << 2, 0, 0}));           // read a file: ABI 1
    EXPECT_EQ(accepts({1ULL << 14, 0, 0}), abi >= 3);  // truncate: ABI 3
    EXPECT_EQ(accepts({0, 1ULL << 1, 0}), abi >= 4) << "ABI " << abi; // connect to a TCP port: ABI 4
    EXPECT_EQ(accepts({0, 0, 1ULL << 1}), abi >= 6) << "ABI " << abi; // scope signals: ABI 6
}

TEST(Landlock, WritesOnlyWhereGranted)
{
    if (landlock_abi() == 0)
        GTEST_SKIP() << "kernel without Landlock";
    char dir[] = "/tmp/bulkhead-landlock-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string base = dir;
    std::string writable = base + "/rw";
    ASSERT_EQ(::mkdir(writable.c_str(), 0755), 0);
    // Without Landlock both creations work: the test can tell the difference.
    EXPECT_EQ(try_create(base + "/plain"), 0);
    EXPECT_EQ(in_landlocked_child(writable, [&] { return try_create(writable + "/allowed"); }), 0);
    EXPECT_EQ(in_landlocked_child(writable, [&] { return try_create(base + "/refused"); }), 1);
    EXPECT_EQ(in_landlocked_child(writable, [&] { return ::access("/etc/hostname", R_OK) == 0 ? 0 : 1; }), 0);
    EXPECT_FALSE(::access((base + "/refused").c_str(), F_OK) == 0);
    (void)sys::remove_tree(base);
}

TEST(Landlock, PathsForASpecGrantRwBindsOnly)
{
    Spec spec;
    spec.binds = {{"/a", "/data/ro", AccessMode::ReadOnly}, {"/b", "/data/rw", AccessMode::ReadWrite}};
    auto paths = landlock_paths_for(spec);
    bool ro_found = false, rw_found = false;
    for (auto const& p : paths) {
        ro_found |= p.path == "/data/ro";
        rw_found |= p.path == "/data/rw" && p.access == LandlockAccess::ReadWrite;
    }
    EXPECT_FALSE(ro_found);
    EXPECT_TRUE(rw_found);
    EXPECT_EQ(paths.front().path, "/");
    EXPECT_EQ(paths.front().access, LandlockAccess::ReadExec);
}

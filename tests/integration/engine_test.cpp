// The sandbox engine end to end: real compartments, built and torn down by a privileged test.
#include "engine_fixture.hpp"

#include "sandbox/landlock.hpp"
#include "sys/syscalls.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace bulkhead;
using namespace bulkhead::sandbox;
using bulkhead::testing::EngineTest;
using bulkhead::testing::has_children;
using bulkhead::testing::host_mounts_mention;
using bulkhead::testing::path_exists;
using bulkhead::testing::write_host_file;

TEST_F(EngineTest, RunsACommandAndPassesItsExitCode)
{
    auto result = run(make_spec({"/bin/sh", "-c", "echo hello; exit 42"}));
    EXPECT_EQ(result.status.code, 42);
    EXPECT_FALSE(result.status.signaled);
    EXPECT_EQ(result.output, "hello\n");
}

TEST_F(EngineTest, ReportsDeathBySignal)
{
    auto result = run(make_spec({"/bin/sh", "-c", "kill -9 $$"}));
    EXPECT_TRUE(result.status.signaled);
    EXPECT_EQ(result.status.signal, SIGKILL);
    EXPECT_EQ(result.status.code, 137);
}

TEST_F(EngineTest, NotFoundIs127AndNotExecutableIs126)
{
    auto missing = run(make_spec({"no-such-command-here"}));
    EXPECT_EQ(missing.status.code, 127);
    EXPECT_NE(missing.output.find("no-such-command-here"), std::string::npos);
    auto not_executable = run(make_spec({"/etc/passwd"}));
    EXPECT_EQ(not_executable.status.code, 126);
}

TEST_F(EngineTest, StdinAndLargeOutputAreIntact)
{
    std::string input;
    for (int i = 0; i < 200000; ++i)
        input += static_cast<char>('a' + i % 26);
    auto result = run(make_spec({"/bin/cat"}), input);
    EXPECT_EQ(result.status.code, 0);
    EXPECT_EQ(result.output, input);
}

TEST_F(EngineTest, EnvironmentIsOnlyWhatTheSpecSays)
{
    ::setenv("BULKHEAD_LEAK_MARKER", "host-secret", 1);
    auto result = run(make_spec({"/usr/bin/env"}));
    EXPECT_EQ(result.output.find("BULKHEAD_LEAK_MARKER"), std::string::npos);
    EXPECT_NE(result.output.find("HOME=/home/user\n"), std::string::npos);
    EXPECT_NE(result.output.find("BULKHEAD_COMPARTMENT="), std::string::npos);
    ::unsetenv("BULKHEAD_LEAK_MARKER");
}

TEST_F(EngineTest, IdentityHostnameAndFilesystemShape)
{
    auto spec = make_spec({"/bin/sh", "-c",
        "id -u; id -g; hostname; cat /etc/hostname; pwd; test -w /home/user && echo home-writable; "
        "touch /etc/x 2>/dev/null || echo etc-readonly; touch /usr/x 2>/dev/null || echo usr-readonly; "
        "ls /sys 2>/dev/null || echo no-sys; test -e /etc/shadow || echo no-shadow"});
    spec.hostname = "inside";
    auto result = run(spec);
    EXPECT_EQ(result.status.code, 0) << result.output;
    EXPECT_EQ(result.output,
        "1000\n1000\ninside\ninside\n/home/user\nhome-writable\netc-readonly\nusr-readonly\nno-sys\nno-shadow\n");
}

TEST_F(EngineTest, RootInsideIsAnUnprivilegedHostUid)
{
    auto spec = make_spec({"/bin/sh", "-c", "id -u; cat /proc/self/uid_map"});
    spec.run_as = RunAs::Root;
    auto result = run(spec);
    EXPECT_EQ(result.status.code, 0);
    std::string expected_map = std::to_string(spec.host_id_base) + "      65536";
    EXPECT_TRUE(result.output.starts_with("0\n")) << result.output;
    EXPECT_NE(result.output.find(expected_map), std::string::npos) << result.output;
}

TEST_F(EngineTest, DestroyKillsEverythingAndLeavesNothing)
{
    auto spec = make_spec({"/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"});
    spec.limits.memory_bytes = 64ULL << 20;
    spec.limits.pids = 32;
    auto compartment = Compartment::create(engine(), spec);
    ASSERT_TRUE(compartment.has_value()) << compartment.error().message();
    auto cgroup_dirs = compartment.value().cgroup().directories();
    std::string runtime = compartment.value().runtime_dir();
    pid_t pid = compartment.value().pid();
    ASSERT_FALSE(cgroup_dirs.empty());
    for (auto const& dir : cgroup_dirs)
        EXPECT_TRUE(path_exists(dir));
    EXPECT_TRUE(path_exists(runtime));
    EXPECT_TRUE(compartment.value().destroy().has_value());
    EXPECT_EQ(::kill(pid, 0), -1);
    EXPECT_EQ(errno, ESRCH);
    for (auto const& dir : cgroup_dirs)
        EXPECT_FALSE(path_exists(dir)) << dir;
    EXPECT_FALSE(path_exists(runtime));
    EXPECT_FALSE(host_mounts_mention(runtime));
    EXPECT_FALSE(has_children());
}

TEST_F(EngineTest, LimitsReachTheCgroup)
{
    auto spec = make_spec({"/bin/sleep", "1000"});
    spec.limits.memory_bytes = 96ULL << 20;
    spec.limits.pids = 24;
    spec.limits.cpu_millis = 500;
    auto compartment = Compartment::create(engine(), spec);
    ASSERT_TRUE(compartment.has_value()) << compartment.error().message();
    std::string all;
    for (auto const& dir : compartment.value().cgroup().directories()) {
        for (auto file : {"memory.limit_in_bytes", "memory.max", "pids.max", "cpu.cfs_quota_us", "cpu.max", "cgroup.procs"}) {
            auto content = sys::read_file(dir + "/" + file);
            if (content.has_value())
                all += std::string(file) + "=" + content.value();
        }
    }
    EXPECT_NE(all.find(std::to_string(96ULL << 20)), std::string::npos) << all;
    EXPECT_NE(all.find("pids.max=24"), std::string::npos) << all;
    EXPECT_TRUE(all.find("cpu.cfs_quota_us=50000") != std::string::npos || all.find("cpu.max=50000 100000") != std::string::npos) << all;
    EXPECT_NE(all.find("cgroup.procs=" + std::to_string(compartment.value().pid())), std::string::npos) << all;
    EXPECT_TRUE(compartment.value().destroy().has_value());
}

TEST_F(EngineTest, BindsAreReadOnlyOrWritableAsAsked)
{
    char dir[] = "/tmp/bulkhead-bind-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string ro = std::string(dir) + "/ro";
    std::string rw = std::string(dir) + "/rw";
    ASSERT_EQ(::mkdir(ro.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(rw.c_str(), 0755), 0);
    ASSERT_TRUE(write_host_file(ro + "/data.txt", "from the host\n"));
    auto spec = make_spec({"/bin/sh", "-c",
        "cat /data/ro/data.txt; { echo x > /data/ro/new; } 2>/dev/null || echo ro-refused; echo written > /data/rw/out && echo rw-ok"});
    spec.binds = {{ro, "/data/ro", AccessMode::ReadOnly}, {rw, "/data/rw", AccessMode::ReadWrite}};
    ASSERT_EQ(::chown(rw.c_str(), spec.host_id_base + inside_user_id, spec.host_id_base + inside_user_id), 0);
    auto result = run(spec);
    EXPECT_EQ(result.output, "from the host\nro-refused\nrw-ok\n");
    auto written = sys::read_file(rw + "/out");
    ASSERT_TRUE(written.has_value());
    EXPECT_EQ(written.value(), "written\n");
    struct stat st {};
    ASSERT_EQ(::stat((rw + "/out").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, spec.host_id_base + inside_user_id);
    (void)sys::remove_tree(dir);
}

TEST_F(EngineTest, PersistentHomeSurvivesAndScratchHomeDoesNot)
{
    char dir[] = "/tmp/bulkhead-home-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    auto first = make_spec({"/bin/sh", "-c", "echo kept > /home/user/note; echo scratch > /tmp/t"});
    first.home_source = dir;
    ASSERT_EQ(::chown(dir, first.host_id_base + inside_user_id, first.host_id_base + inside_user_id), 0);
    EXPECT_EQ(run(first).status.code, 0);
    auto second = make_spec({"/bin/sh", "-c", "cat /home/user/note; cat /tmp/t 2>/dev/null || echo tmp-fresh"});
    second.host_id_base = first.host_id_base;
    second.home_source = dir;
    EXPECT_EQ(run(second).output, "kept\ntmp-fresh\n");
    auto scratch = make_spec({"/bin/sh", "-c", "ls -A /home/user | wc -l"});
    EXPECT_EQ(run(scratch).output, "0\n");
    (void)sys::remove_tree(dir);
}

TEST_F(EngineTest, RootfsTemplate)
{
    char dir[] = "/tmp/bulkhead-rootfs-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string root = dir;
    ASSERT_EQ(::mkdir((root + "/usr").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root + "/etc").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root + "/opt").c_str(), 0755), 0);
    ASSERT_TRUE(write_host_file(root + "/opt/marker", "rootfs-marker\n"));
    ASSERT_TRUE(write_host_file(root + "/etc/debian_version", "rootfs-version\n"));
    ASSERT_TRUE(write_host_file(root + "/etc/shadow", "root:SECRET:1::::::\n", 0600));
    for (auto link : {"bin", "lib", "lib64", "sbin"})
        ASSERT_EQ(::symlinkat((std::string("usr/") + link).c_str(), AT_FDCWD, (root + "/" + link).c_str()), 0);
    ASSERT_EQ(::mount("/usr", (root + "/usr").c_str(), nullptr, MS_BIND | MS_REC, nullptr), 0);
    auto spec = make_spec({"/bin/sh", "-c", "cat /opt/marker /etc/debian_version; cat /etc/shadow 2>/dev/null || echo no-shadow"});
    spec.templ = {TemplateKind::Rootfs, root};
    auto result = run(spec);
    EXPECT_EQ(result.output, "rootfs-marker\nrootfs-version\nno-shadow\n");
    EXPECT_EQ(::umount2((root + "/usr").c_str(), MNT_DETACH), 0);
    (void)sys::remove_tree(root);
}

TEST_F(EngineTest, InvalidSpecTouchesNothing)
{
    auto spec = make_spec({"/bin/true"});
    spec.templ = {TemplateKind::Rootfs, "/no/such/template"};
    auto result = Compartment::create(engine(), spec);
    ASSERT_TRUE(result.is_error());
    EXPECT_TRUE(result.error().message().starts_with("template")) << result.error().message();
    EXPECT_FALSE(path_exists(runtime_dir() + "/" + spec.name));
    for (auto const& dir : m_cgroups->directories())
        EXPECT_FALSE(path_exists(dir + "/" + spec.name));

    spec = make_spec({"/bin/true"});
    spec.binds = {{"/no/such/source", "/data", AccessMode::ReadOnly}};
    result = Compartment::create(engine(), spec);
    ASSERT_TRUE(result.is_error());
    EXPECT_TRUE(result.error().message().starts_with("binds[0].source")) << result.error().message();
    EXPECT_FALSE(path_exists(runtime_dir() + "/" + spec.name));
}

class FailureInjection : public EngineTest, public ::testing::WithParamInterface<SetupStep> { };

TEST_P(FailureInjection, LeavesNothingBehind)
{
    auto spec = make_spec({"/bin/sleep", "1000"});
    spec.limits.memory_bytes = 64ULL << 20;
    spec.limits.pids = 16;
    spec.fail_at = GetParam();
    auto result = Compartment::create(engine(), spec);
    ASSERT_TRUE(result.is_error());
    EXPECT_NE(result.error().message().find("injected failure at"), std::string::npos) << result.error().message();
    std::string runtime = runtime_dir() + "/" + spec.name;
    EXPECT_FALSE(path_exists(runtime));
    EXPECT_FALSE(host_mounts_mention(runtime));
    for (auto const& dir : m_cgroups->directories())
        EXPECT_FALSE(path_exists(dir + "/" + spec.name)) << dir;
    EXPECT_FALSE(has_children()) << "a process of the failed compartment is still around";
}

INSTANTIATE_TEST_SUITE_P(EverySetupStep, FailureInjection,
    ::testing::Values(SetupStep::RuntimeDir, SetupStep::Cgroup, SetupStep::Clone, SetupStep::IdMap, SetupStep::Mounts,
        SetupStep::PivotRoot, SetupStep::Landlock, SetupStep::Seccomp, SetupStep::Exec));

TEST_F(EngineTest, LandlockScopesSignalsAtAbi6)
{
    int abi = landlock_abi();
    RecordProperty("landlock_abi", abi);
    if (abi < 6)
        GTEST_SKIP() << "Landlock ABI " << abi << " has no signal scoping";
    // Root inside shares PID 1's uid and has no capabilities: only Landlock's signal scope stops it
    // from signalling PID 1, which lives outside the payload's Landlock domain.
    auto spec = make_spec({"/bin/sh", "-c", "kill -0 1 2>/dev/null && echo signal-allowed || echo signal-refused; kill -0 $$ && echo self-ok"});
    spec.run_as = RunAs::Root;
    EXPECT_EQ(run(spec).output, "signal-refused\nself-ok\n");
}

TEST_F(EngineTest, TwoCompartmentsRunSideBySide)
{
    auto a = make_spec({"/bin/sh", "-c", "sleep 1000"});
    auto first = Compartment::create(engine(), a);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    auto b = make_spec({"/bin/sh", "-c", "ls /proc | grep -cE '^[0-9]+$'"});
    auto result = run(b);
    // PID 1, the shell, ls and grep at most: none of the neighbour's processes.
    EXPECT_LE(std::stoi(result.output), 4) << result.output;
    EXPECT_TRUE(first.value().destroy().has_value());
}

// A new network namespace starts with lo down ("Network is unreachable" on 127.0.0.1). Every compartment,
// with or without a network, gets a working loopback and no other interface.
TEST_F(EngineTest, LoopbackWorksAndIsTheOnlyInterface)
{
    auto result = run(make_spec({"/usr/bin/python3", "-c",
        "import socket\n"
        "print(sorted(name for _, name in socket.if_nameindex()))\n"
        "for family, address in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n"
        "    server = socket.socket(family); server.bind((address, 0)); server.listen()\n"
        "    client = socket.create_connection(server.getsockname()[:2]); peer, _ = server.accept()\n"
        "    client.sendall(b'ping'); print(address, peer.recv(4).decode())\n"}));
    EXPECT_EQ(result.status.code, 0) << result.output;
    EXPECT_EQ(result.output, "['lo']\n127.0.0.1 ping\n::1 ping\n");
}

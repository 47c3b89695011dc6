// The escape checklist, attacked from inside real compartments, as root inside and as the user.
// Each test runs bulkhead_escape_probe in a compartment, requires every attempt to be refused
// (every line PASS), and checks on the host side that nothing changed. The limits and IPC-lifetime
// items are in escape_limits_test.cpp; the control that shows the checks can fail is in
// escape_control_test.cpp.
#include "escape_fixture.hpp"

#include "sys/syscalls.hpp"

#include <cstring>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/vm_sockets.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

using namespace bulkhead;
using namespace bulkhead::escape;
using sandbox::AccessMode;
using sandbox::RunAs;
using sys::UniqueFd;

TEST_P(EscapeTest, TerminalInjectionIsRefused)
{
    auto pty = open_raw_pty();
    ASSERT_TRUE(pty.slave.valid()) << "openpty: " << std::strerror(errno);
    int const slave = pty.slave.get();

    auto result = run_with_stdin(probe_spec({"tty"}), slave);
    EXPECT_TRUE(all_pass(result, "tty"));

    int queued = -1;
    ASSERT_EQ(::ioctl(slave, FIONREAD, &queued), 0);
    EXPECT_EQ(queued, 0) << "bytes were pushed into the terminal's input queue";
    EXPECT_EQ(drain(slave), "");
}

TEST_P(EscapeTest, ExecutablesCannotBeOverwritten)
{
    // PID 1 inside is a fork of this test binary: /proc/1/exe is it.
    std::string const test_binary = self_exe();
    ASSERT_FALSE(test_binary.empty());
    std::string const test_before = fingerprint(test_binary);
    std::string const probe_before = fingerprint(probe_copy());

    auto result = run_probe({"exe", test_binary, probe_copy()});
    EXPECT_TRUE(all_pass(result, "exe"));
    EXPECT_EQ(fingerprint(test_binary), test_before) << "the test binary changed";
    EXPECT_EQ(fingerprint(probe_copy()), probe_before) << "the probe binary changed";
}

TEST_P(EscapeTest, HostFilesAreUnreachable)
{
    // World-readable on purpose: only the compartment's own filesystem view may hide it.
    std::string const dir = make_host_dir("/tmp/bulkhead-escape-secret-", 0755);
    ASSERT_FALSE(dir.empty());
    std::string const secret = dir + "/secret.txt";
    ASSERT_TRUE(bulkhead::testing::write_host_file(secret, "host secret\n", 0644));

    auto result = run_probe({"host-files", secret, dir});
    EXPECT_TRUE(all_pass(result, "host-files"));
    EXPECT_EQ(fingerprint(secret).find("missing"), std::string::npos);
    (void)sys::remove_tree(dir);
}

TEST_P(EscapeTest, DangerousProcFilesAreMaskedOrReadOnly)
{
    EXPECT_TRUE(all_pass(run_probe({"proc"}), "proc"));
}

TEST_P(EscapeTest, DevHoldsOnlyMinimalNodes)
{
    EXPECT_TRUE(all_pass(run_probe({"dev"}), "dev"));
}

TEST_P(EscapeTest, MountsNamespacesAndRootChangesAreRefused)
{
    EXPECT_TRUE(all_pass(run_probe({"mounts"}), "mounts"));
}

TEST_P(EscapeTest, PtraceAndForeignMemoryAreRefused)
{
    HostProcess target("/bin/sleep", {"sleep", "1000"});
    ASSERT_GT(target.pid(), 0);
    auto result = run_probe({"ptrace", std::to_string(target.pid())});
    EXPECT_TRUE(all_pass(result, "ptrace"));
    EXPECT_TRUE(target.alive_and_untraced()) << "the host process was killed or is being traced";
}

TEST_P(EscapeTest, KernelAttackSurfaceSyscallsAreRefused)
{
    EXPECT_TRUE(all_pass(run_probe({"syscalls"}), "syscalls"));
}

TEST_P(EscapeTest, NoCapabilitiesNoNewPrivsAndSeccomp)
{
    EXPECT_TRUE(all_pass(run_probe({"status"}), "status"));
}

TEST_P(EscapeTest, IdentityIsTheExpectedOne)
{
    auto result = run_probe({"whoami"});
    std::string id = GetParam() == RunAs::Root ? "0" : "1000";
    EXPECT_EQ(result.status.code, 0);
    EXPECT_EQ(result.output,
              "euid=" + id + " uid=" + id + " egid=" + id + " gid=" + id
                  + " capeff=0000000000000000 capprm=0000000000000000\n");
}

TEST_P(EscapeTest, SetuidAndFileCapabilityBinariesGrantNothing)
{
    auto spec = probe_spec({});
    std::string const dir = make_host_dir("/tmp/bulkhead-escape-suid-", 0755);
    ASSERT_FALSE(dir.empty());
    std::string const host_root = dir + "/suid-host-root";
    std::string const inside_root = dir + "/suid-inside-root";
    std::string const file_caps = dir + "/fcaps-host-root";
    for (auto const& path : {host_root, inside_root, file_caps})
        ASSERT_TRUE(copy_host_file(probe_copy(), path, 0755));
    ASSERT_EQ(::chown(host_root.c_str(), 0, 0), 0);
    ASSERT_EQ(::chown(inside_root.c_str(), spec.host_id_base, spec.host_id_base), 0);
    ASSERT_EQ(::chown(file_caps.c_str(), 0, 0), 0);
    // chown clears the set-id bits: set them afterwards.
    ASSERT_EQ(::chmod(host_root.c_str(), 06755), 0);
    ASSERT_EQ(::chmod(inside_root.c_str(), 06755), 0);
    // Every capability, effective at exec (a v2 entry: valid for root of the initial namespace and below).
    vfs_cap_data caps {};
    caps.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
    caps.data[0].permitted = 0xffffffff;
    caps.data[1].permitted = 0x000001ff;
    bool have_file_caps = ::setxattr(file_caps.c_str(), "security.capability", &caps, XATTR_CAPS_SZ_2, 0) == 0;
    RecordProperty("file_capabilities", have_file_caps ? "set" : "unsupported here");

    spec.argv.push_back("setuid");
    spec.argv.push_back("/suid/suid-host-root");
    spec.argv.push_back("/suid/suid-inside-root");
    if (have_file_caps)
        spec.argv.push_back("/suid/fcaps-host-root");
    spec.binds.push_back({dir, "/suid", AccessMode::ReadOnly});
    auto result = run(spec);
    EXPECT_TRUE(all_pass(result, "setuid"));
    (void)sys::remove_tree(dir);
}

TEST_P(EscapeTest, HostProcessesAreInvisibleAndUnsignalable)
{
    std::string const marker = "bulkhead-escape-marker-" + std::to_string(::getpid());
    HostProcess host("/bin/sleep", {marker, "1000"});
    ASSERT_GT(host.pid(), 0);
    auto result = run_probe({"host-procs", std::to_string(host.pid()), marker});
    EXPECT_TRUE(all_pass(result, "host-procs"));
    EXPECT_TRUE(host.alive_and_untraced()) << "the host process was killed from inside";
}

TEST_P(EscapeTest, HostCommandLineAndEnvironmentAreNotVisible)
{
    // PID 1 inside is a fork of this process: its argv and environment are host data.
    std::string const marker = "bulkhead-escape-env-" + std::to_string(::getpid());
    ::setenv("BULKHEAD_ESCAPE_HOST_SECRET", marker.c_str(), 1);
    auto result = run_probe({"host-argv", self_argv0(), marker});
    ::unsetenv("BULKHEAD_ESCAPE_HOST_SECRET");
    EXPECT_TRUE(all_pass(result, "host-argv"));
}

TEST_P(EscapeTest, NeighbourObjectsAreUnreachable)
{
    // A host abstract socket, too: no compartment may connect to it.
    std::string const host_socket = "bulkhead-escape-host-" + std::to_string(::getpid());
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path + 1, host_socket.data(), host_socket.size());
    auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + host_socket.size());
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(::listen(listener.get(), 4), 0);

    LiveCompartment serve;
    ASSERT_TRUE(serve.start(engine(), probe_spec({"serve"})));
    ASSERT_TRUE(serve.wait_for_line("READY")) << serve.output();
    auto result = run_probe({"neighbour", "@" + host_socket});
    EXPECT_TRUE(all_pass(result, "neighbour"));
    EXPECT_TRUE(all_pass(serve.finish(), "serve")) << "the neighbour could not set up what the check looks for";
    EXPECT_LT(::accept(listener.get(), nullptr, nullptr), 0) << "a compartment connected to the host's socket";
}

TEST_P(EscapeTest, NoNetworkButLoopback)
{
    std::vector<std::string> args = {"network"};
    // Hold a vsock port on the host: if the compartment finds it taken, the port space is shared.
    UniqueFd vsock(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (vsock.valid()) {
        sockaddr_vm address {};
        address.svm_family = AF_VSOCK;
        address.svm_cid = VMADDR_CID_ANY;
        address.svm_port = 40000 + static_cast<unsigned>(::getpid() % 20000);
        if (::bind(vsock.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
            args.push_back("--vsock-port");
            args.push_back(std::to_string(address.svm_port));
        }
    }
    EXPECT_TRUE(all_pass(run_probe(args), "network"));
}

TEST_P(EscapeTest, OnlyStdioIsInheritedAndCwdIsInside)
{
    // A descriptor this process holds without close-on-exec must not cross.
    UniqueFd leak(::open("/dev/null", O_RDONLY));
    ASSERT_TRUE(leak.valid());
    EXPECT_TRUE(all_pass(run_probe({"fds"}), "fds"));
}

TEST_P(EscapeTest, OtherSyscallAbisAreKilled)
{
    EXPECT_TRUE(all_pass(run_probe({"abi"}), "abi"));
}

TEST_P(EscapeTest, CrashesLeaveNoCoreDump)
{
    EXPECT_TRUE(all_pass(run_probe({"core"}), "core"));
}

INSTANTIATE_TEST_SUITE_P(Inside, EscapeTest, ::testing::Values(RunAs::Root, RunAs::User),
                         [](::testing::TestParamInfo<RunAs> const& info) {
                             return info.param == RunAs::Root ? "Root" : "User";
                         });

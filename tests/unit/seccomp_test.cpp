// The compiled Default profile, installed in a forked child: each case makes one raw system call
// under the filter and reports its errno through the exit code.
#include "sandbox/seccomp.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <functional>
#include <cstring>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <pty.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace bulkhead;

namespace {

struct Outcome {
    bool killed = false;
    int signal = 0;
    int error = 0; // errno of the call, 0 when it succeeded
};

class SeccompTest : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        auto compiled = sandbox::SeccompProgram::compile(sandbox::SeccompProfile::Default);
        ASSERT_TRUE(compiled.has_value()) << compiled.error().message();
        s_program = new sandbox::SeccompProgram(compiled.release_value());
    }
    static void TearDownTestSuite()
    {
        delete s_program;
        s_program = nullptr;
    }

    // Runs `call` (returning a raw syscall result) in a child under the filter.
    static Outcome under_filter(std::function<long()> const& call)
    {
        pid_t pid = ::fork();
        if (pid == 0) {
            if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || s_program->install().is_error())
                ::_exit(255);
            errno = 0;
            long rc = call();
            ::_exit(rc < 0 ? (errno & 0x7f) : 0);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        Outcome outcome;
        if (WIFSIGNALED(status)) {
            outcome.killed = true;
            outcome.signal = WTERMSIG(status);
            return outcome;
        }
        EXPECT_NE(WEXITSTATUS(status), 255) << "installing the filter failed";
        outcome.error = WEXITSTATUS(status);
        return outcome;
    }

    static inline sandbox::SeccompProgram* s_program = nullptr;
};

// A classic-BPF interpreter for seccomp programs, so that the filter's answer for inputs the
// kernel cannot produce here (another architecture's entry point) is checked too.
struct SeccompInput {
    int nr = 0;
    uint32_t arch = AUDIT_ARCH_X86_64;
    uint64_t ip = 0;
    uint64_t args[6] = {};
};

uint32_t run_bpf(std::vector<sock_filter> const& program, SeccompInput const& input)
{
    seccomp_data data {};
    data.nr = input.nr;
    data.arch = input.arch;
    data.instruction_pointer = input.ip;
    for (int i = 0; i < 6; ++i)
        data.args[i] = input.args[i];
    auto const* bytes = reinterpret_cast<unsigned char const*>(&data);
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
    for (size_t pc = 0; pc < program.size(); ++pc) {
        sock_filter const& in = program[pc];
        uint32_t src = BPF_SRC(in.code) == BPF_X ? x : in.k;
        switch (BPF_CLASS(in.code)) {
        case BPF_LD:
            if (BPF_MODE(in.code) == BPF_ABS && in.k + 4 <= sizeof(data))
                std::memcpy(&a, bytes + in.k, 4);
            else if (BPF_MODE(in.code) == BPF_IMM)
                a = in.k;
            else if (BPF_MODE(in.code) == BPF_MEM && in.k < BPF_MEMWORDS)
                a = mem[in.k];
            else
                ADD_FAILURE() << "unsupported load at " << pc;
            break;
        case BPF_LDX:
            if (BPF_MODE(in.code) == BPF_MEM && in.k < BPF_MEMWORDS)
                x = mem[in.k];
            else if (BPF_MODE(in.code) == BPF_IMM)
                x = in.k;
            else
                ADD_FAILURE() << "unsupported ldx at " << pc;
            break;
        case BPF_ST:
            mem[in.k % BPF_MEMWORDS] = a;
            break;
        case BPF_STX:
            mem[in.k % BPF_MEMWORDS] = x;
            break;
        case BPF_ALU:
            switch (BPF_OP(in.code)) {
            case BPF_AND: a &= src; break;
            case BPF_OR: a |= src; break;
            case BPF_ADD: a += src; break;
            case BPF_SUB: a -= src; break;
            case BPF_LSH: a <<= src; break;
            case BPF_RSH: a >>= src; break;
            case BPF_NEG: a = -a; break;
            default: ADD_FAILURE() << "unsupported alu at " << pc;
            }
            break;
        case BPF_JMP: {
            bool taken = false;
            switch (BPF_OP(in.code)) {
            case BPF_JA: pc += in.k; continue;
            case BPF_JEQ: taken = a == src; break;
            case BPF_JGT: taken = a > src; break;
            case BPF_JGE: taken = a >= src; break;
            case BPF_JSET: taken = (a & src) != 0; break;
            default: ADD_FAILURE() << "unsupported jump at " << pc;
            }
            pc += taken ? in.jt : in.jf;
            break;
        }
        case BPF_RET:
            return BPF_RVAL(in.code) == BPF_A ? a : in.k;
        case BPF_MISC:
            if (BPF_MISCOP(in.code) == BPF_TAX)
                x = a;
            else
                a = x;
            break;
        }
    }
    ADD_FAILURE() << "program fell off its end";
    return 0;
}

struct Pty {
    int master = -1;
    int slave = -1;
    Pty() { EXPECT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0); }
    ~Pty()
    {
        ::close(master);
        ::close(slave);
    }
};

} // namespace

TEST_F(SeccompTest, ProgramIsSmallEnoughToCacheAndNonEmpty)
{
    EXPECT_GT(s_program->instruction_count(), 10u);
    EXPECT_LE(s_program->instruction_count(), 4096u);
}

TEST_F(SeccompTest, OrdinaryCallsWork)
{
    EXPECT_EQ(under_filter([] { return ::syscall(SYS_getpid); }).error, 0);
    EXPECT_EQ(under_filter([] { return static_cast<long>(::open("/dev/null", O_RDONLY)); }).error, 0);
    EXPECT_EQ(under_filter([] {
        pid_t child = ::fork(); // glibc fork: clone without namespace flags
        if (child == 0)
            ::_exit(0);
        return child < 0 ? -1L : static_cast<long>(::waitpid(child, nullptr, 0));
    }).error,
              0);
}

TEST_F(SeccompTest, TerminalInjectionRefusedIncludingHighBitVariant)
{
    Pty pty;
    int slave = pty.slave;
    char c = 'x';
    for (unsigned long request : {0x5412UL /* TIOCSTI */, 0x100005412UL, 0xffffffff00005412UL}) {
        auto outcome = under_filter([&] { return ::syscall(SYS_ioctl, slave, request, &c); });
        EXPECT_EQ(outcome.error, EPERM) << std::hex << request;
    }
    char subcode = 6; // TIOCLINUX TIOCL_GETSHIFTSTATE
    for (unsigned long request : {0x541CUL /* TIOCLINUX */, 0x10000541CUL}) {
        auto outcome = under_filter([&] { return ::syscall(SYS_ioctl, slave, request, &subcode); });
        EXPECT_EQ(outcome.error, EPERM) << std::hex << request;
    }
    // Other terminal ioctls keep working.
    EXPECT_EQ(under_filter([&] {
        winsize ws {};
        return ::syscall(SYS_ioctl, slave, TIOCGWINSZ, &ws);
    }).error,
              0);
}

TEST_F(SeccompTest, Clone3AnswersEnosys)
{
    EXPECT_EQ(under_filter([] { return ::syscall(SYS_clone3, nullptr, 0); }).error, ENOSYS);
}

TEST_F(SeccompTest, CloneWithNamespaceFlagsRefused)
{
    for (unsigned long flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
                               CLONE_NEWCGROUP}) {
        auto outcome = under_filter([&] {
            long rc = ::syscall(SYS_clone, flag | SIGCHLD, nullptr, nullptr, nullptr, 0);
            if (rc == 0)
                ::_exit(0);
            return rc;
        });
        EXPECT_EQ(outcome.error, EPERM) << std::hex << flag;
    }
}

TEST_F(SeccompTest, DangerousSyscallsRefused)
{
    struct Case {
        char const* name;
        long nr;
    };
    for (auto [name, nr] : std::initializer_list<Case> {
             {"mount", SYS_mount},
             {"umount2", SYS_umount2},
             {"pivot_root", SYS_pivot_root},
             {"chroot", SYS_chroot},
             {"unshare", SYS_unshare},
             {"setns", SYS_setns},
             {"fsopen", SYS_fsopen},
             {"fsmount", SYS_fsmount},
             {"fsconfig", SYS_fsconfig},
             {"fspick", SYS_fspick},
             {"open_tree", SYS_open_tree},
             {"move_mount", SYS_move_mount},
             {"mount_setattr", SYS_mount_setattr},
             {"ptrace", SYS_ptrace},
             {"process_vm_readv", SYS_process_vm_readv},
             {"process_vm_writev", SYS_process_vm_writev},
             {"bpf", SYS_bpf},
             {"perf_event_open", SYS_perf_event_open},
             {"keyctl", SYS_keyctl},
             {"add_key", SYS_add_key},
             {"request_key", SYS_request_key},
             {"userfaultfd", SYS_userfaultfd},
             {"io_uring_setup", SYS_io_uring_setup},
             {"open_by_handle_at", SYS_open_by_handle_at},
             {"name_to_handle_at", SYS_name_to_handle_at},
             {"kexec_load", SYS_kexec_load},
             {"kexec_file_load", SYS_kexec_file_load},
             {"init_module", SYS_init_module},
             {"finit_module", SYS_finit_module},
             {"delete_module", SYS_delete_module},
             {"pidfd_getfd", SYS_pidfd_getfd},
             {"reboot", SYS_reboot},
             {"swapon", SYS_swapon},
             {"acct", SYS_acct},
             {"iopl", SYS_iopl},
             {"ioperm", SYS_ioperm},
             {"syslog", SYS_syslog},
             {"settimeofday", SYS_settimeofday},
             {"clock_settime", SYS_clock_settime},
             {"sethostname", SYS_sethostname},
             {"fanotify_init", SYS_fanotify_init},
         }) {
        // All-zero arguments: a call that got through would fail differently (EFAULT, EINVAL...).
        auto outcome = under_filter([nr = nr] { return ::syscall(nr, 0, 0, 0, 0, 0, 0); });
        EXPECT_FALSE(outcome.killed) << name;
        EXPECT_EQ(outcome.error, EPERM) << name;
    }
}

TEST_F(SeccompTest, PersonalityOnlyHarmlessPersonas)
{
    EXPECT_EQ(under_filter([] { return ::syscall(SYS_personality, 0xffffffffUL); }).error, 0);
    EXPECT_EQ(under_filter([] { return ::syscall(SYS_personality, 0x0040000UL /* ADDR_NO_RANDOMIZE */); }).error,
              EPERM);
}

TEST_F(SeccompTest, X32EntryPointKillsTheProcess)
{
    auto outcome = under_filter([] { return ::syscall(0x40000000L | SYS_getpid); });
    EXPECT_TRUE(outcome.killed);
    EXPECT_EQ(outcome.signal, SIGSYS);
}

TEST_F(SeccompTest, I386EntryPointKillsTheProcess)
{
    // What the filter answers for an i386 (int 0x80) entry, whatever this kernel supports.
    SeccompInput i386;
    i386.arch = AUDIT_ARCH_I386;
    for (int nr : {20 /* getpid */, 1 /* exit */, 21 /* mount */}) {
        i386.nr = nr;
        EXPECT_EQ(run_bpf(s_program->instructions(), i386) & SECCOMP_RET_ACTION_FULL, SECCOMP_RET_KILL_PROCESS);
    }
    // And, where this kernel has the entry point enabled, for real.
    auto int80_getpid = [] {
        long rc = 20;
        asm volatile("int $0x80" : "+a"(rc) : : "memory", "rcx", "r11");
        return rc;
    };
    pid_t probe = ::fork();
    if (probe == 0)
        ::_exit(int80_getpid() == ::getpid() ? 0 : 1);
    int status = 0;
    ::waitpid(probe, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return; // i386 entry disabled in this kernel (ia32_emulation=0): the interpreter check stands
    auto outcome = under_filter(int80_getpid);
    EXPECT_TRUE(outcome.killed);
    EXPECT_EQ(outcome.signal, SIGSYS);
}

TEST_F(SeccompTest, InterpreterAgreesWithKernelOnNativeCalls)
{
    SeccompInput input;
    input.nr = SYS_getpid;
    EXPECT_EQ(run_bpf(s_program->instructions(), input), SECCOMP_RET_ALLOW);
    input.nr = SYS_mount;
    EXPECT_EQ(run_bpf(s_program->instructions(), input), SECCOMP_RET_ERRNO | EPERM);
    input.nr = SYS_clone3;
    EXPECT_EQ(run_bpf(s_program->instructions(), input), SECCOMP_RET_ERRNO | ENOSYS);
    input.nr = SYS_ioctl;
    input.args[1] = 0x100005412ULL;
    EXPECT_EQ(run_bpf(s_program->instructions(), input), SECCOMP_RET_ERRNO | EPERM);
    input.args[1] = TIOCGWINSZ;
    EXPECT_EQ(run_bpf(s_program->instructions(), input), SECCOMP_RET_ALLOW);
    // Every other request, including neighbours of the refused ones, is allowed.
    for (uint64_t request = 0x5400; request < 0x5500; ++request) {
        input.args[1] = request | (request & 1 ? 0xdead00000000ULL : 0);
        bool refused = (request == 0x5412 || request == 0x541C);
        EXPECT_EQ(run_bpf(s_program->instructions(), input), refused ? (SECCOMP_RET_ERRNO | EPERM) : SECCOMP_RET_ALLOW)
            << std::hex << request;
    }
}

TEST_F(SeccompTest, CompileIsDeterministic)
{
    auto again = sandbox::SeccompProgram::compile(sandbox::SeccompProfile::Default);
    ASSERT_TRUE(again.has_value());
    ASSERT_EQ(again.value().instruction_count(), s_program->instruction_count());
    for (size_t i = 0; i < s_program->instruction_count(); ++i) {
        auto const& a = again.value().instructions()[i];
        auto const& b = s_program->instructions()[i];
        EXPECT_TRUE(a.code == b.code && a.jt == b.jt && a.jf == b.jf && a.k == b.k) << "instruction " << i;
    }
}

TEST_F(SeccompTest, PrebuiltProgramEqualsCompiledProgram)
{
    auto prebuilt = sandbox::SeccompProgram::prebuilt(sandbox::SeccompProfile::Default);
    ASSERT_EQ(prebuilt.instruction_count(), s_program->instruction_count());
    for (size_t i = 0; i < s_program->instruction_count(); ++i) {
        auto const& a = prebuilt.instructions()[i];
        auto const& b = s_program->instructions()[i];
        EXPECT_TRUE(a.code == b.code && a.jt == b.jt && a.jf == b.jf && a.k == b.k) << "instruction " << i;
    }
}

TEST_F(SeccompTest, OnlyNamespacedSocketFamilies)
{
    for (int family : {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}) {
        auto outcome = under_filter([family] {
            return ::syscall(SYS_socket, family, family == AF_NETLINK ? SOCK_RAW : SOCK_DGRAM, 0);
        });
        EXPECT_EQ(outcome.error, 0) << family;
    }
    // AF_VSOCK reaches the host's vsock port space; the high-bit variant must not slip through.
    for (unsigned long family : {40UL /* AF_VSOCK */, 0x100000028UL, 38UL /* AF_ALG */, 17UL /* AF_PACKET */,
                                 15UL /* AF_KEY */, 31UL /* AF_BLUETOOTH */}) {
        auto outcome = under_filter([family] { return ::syscall(SYS_socket, family, SOCK_STREAM, 0); });
        EXPECT_EQ(outcome.error, EPERM) << family;
        int pair[2];
        outcome = under_filter([family, &pair] { return ::syscall(SYS_socketpair, family, SOCK_STREAM, 0, pair); });
        EXPECT_EQ(outcome.error, EPERM) << family;
    }
}

// The broker's own filter (SeccompProfile::Broker): what a broker never needs is refused, what it
// does (namespaces, mounts, netlink, forks) is not; the prebuilt program is the compiled one.
TEST(SeccompBroker, RefusesWhatABrokerNeverNeedsAndAllowsItsWork)
{
    auto compiled = sandbox::SeccompProgram::compile(sandbox::SeccompProfile::Broker);
    ASSERT_TRUE(compiled.has_value()) << compiled.error().message();
    auto prebuilt = sandbox::SeccompProgram::prebuilt(sandbox::SeccompProfile::Broker);
    ASSERT_EQ(prebuilt.instruction_count(), compiled.value().instruction_count());
    for (size_t i = 0; i < prebuilt.instruction_count(); ++i) {
        auto const& a = prebuilt.instructions()[i];
        auto const& b = compiled.value().instructions()[i];
        EXPECT_TRUE(a.code == b.code && a.jt == b.jt && a.jf == b.jf && a.k == b.k) << "instruction " << i;
    }
    auto errno_under_filter = [&](std::function<long()> const& call) {
        pid_t pid = ::fork();
        if (pid == 0) {
            if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prebuilt.install().is_error())
                ::_exit(255);
            errno = 0;
            long rc = call();
            ::_exit(rc < 0 ? (errno & 0x7f) : 0);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 254;
    };
    struct Refused {
        char const* name;
        std::function<long()> call;
    };
    for (auto const& refused : std::initializer_list<Refused> {
             {"process_vm_readv", [] { return ::syscall(SYS_process_vm_readv, ::getppid(), nullptr, 0, nullptr, 0, 0); }},
             {"bpf", [] { return ::syscall(SYS_bpf, 0, nullptr, 0); }},
             {"perf_event_open", [] { return ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
             {"keyctl", [] { return ::syscall(SYS_keyctl, 0, 0, 0, 0, 0); }},
             {"add_key", [] { return ::syscall(SYS_add_key, "user", "x", "y", 1, 0); }},
             {"userfaultfd", [] { return ::syscall(SYS_userfaultfd, 0); }},
             {"init_module", [] { return ::syscall(SYS_init_module, nullptr, 0, ""); }},
             {"kexec_load", [] { return ::syscall(SYS_kexec_load, 0, 0, nullptr, 0); }},
             {"open_by_handle_at", [] { return ::syscall(SYS_open_by_handle_at, -1, nullptr, 0); }},
             {"io_uring_setup", [] { return ::syscall(SYS_io_uring_setup, 1, nullptr); }},
             {"settimeofday", [] { return ::syscall(SYS_settimeofday, nullptr, nullptr); }},
             {"reboot", [] { return ::syscall(SYS_reboot, 0, 0, 0, nullptr); }},
             {"pidfd_getfd", [] { return ::syscall(SYS_pidfd_getfd, -1, 0, 0); }},
         })
        EXPECT_EQ(errno_under_filter(refused.call), EPERM) << refused.name;
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_EQ(errno_under_filter([] { return ::syscall(SYS_ptrace, PTRACE_TRACEME, 0, nullptr, nullptr); }), EPERM);
#endif
    // The broker's work: a network namespace of its own, a mount in a mount namespace, a netlink socket.
    EXPECT_EQ(errno_under_filter([] { return static_cast<long>(::unshare(CLONE_NEWNET | CLONE_NEWNS)); }), 0);
    EXPECT_EQ(errno_under_filter([] {
                  if (::unshare(CLONE_NEWNS) < 0)
                      return -1L;
                  return static_cast<long>(::mount("none", "/tmp", "tmpfs", 0, nullptr));
              }),
              0);
    EXPECT_EQ(errno_under_filter([] { return static_cast<long>(::socket(AF_NETLINK, SOCK_RAW, 0)); }), 0);
}

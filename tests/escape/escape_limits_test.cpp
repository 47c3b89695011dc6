#include <csignal>
#include <sys/wait.h>
// Escape checklist, continued: resource limits that keep one compartment from starving its
// neighbours and the host, and IPC objects that must not outlive their compartment.
// (Instantiated for both identities in escape_test.cpp.)
#include "escape_fixture.hpp"

#include "sys/syscalls.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mqueue.h>
#include <sstream>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::escape;

namespace {

// Whether `key` appears as the key column of /proc/sysvipc/{shm,sem,msg} on the host.
bool host_has_ipc_key(key_t key)
{
    for (char const* table : {"/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg"}) {
        auto content = sys::read_file(table);
        if (!content.has_value())
            continue;
        std::istringstream in(content.value());
        std::string line;
        std::getline(in, line); // header
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            long long found = 0;
            if (fields >> found && found == key)
                return true;
        }
    }
    return false;
}

// This process's resident set size.
uint64_t resident_bytes()
{
    auto status = sys::read_file("/proc/self/status");
    if (!status.has_value())
        return 0;
    size_t at = status.value().find("\nVmRSS:");
    return at == std::string::npos ? 0 : std::strtoull(status.value().c_str() + at + 7, nullptr, 10) << 10;
}

} // namespace

TEST_P(EscapeTest, ForkBombStaysInsideItsPidLimit)
{
    constexpr int pids = 32;
    auto spec = probe_spec({"forkbomb", std::to_string(pids)});
    spec.limits.pids = pids;
    LiveCompartment bomb;
    ASSERT_TRUE(bomb.start(engine(), spec));
    ASSERT_TRUE(bomb.wait_for_line("READY")) << bomb.output();

    // The bomb holds every pid it may have: a neighbour compartment and the host still fork and exec.
    auto neighbour_spec = make_spec({"/bin/sh", "-c", "/bin/true && /bin/true && echo neighbour-ok"});
    neighbour_spec.run_as = GetParam();
    auto neighbour = run(neighbour_spec);
    EXPECT_EQ(neighbour.status.code, 0) << neighbour.output;
    EXPECT_EQ(neighbour.output, "neighbour-ok\n");
    EXPECT_TRUE(host_runs_true());

    EXPECT_TRUE(all_pass(bomb.finish(), "forkbomb"));
}

TEST_P(EscapeTest, MemoryBombStaysInsideItsMemoryLimit)
{
    // PID 1 inside is a fork of this process and starts with its resident size. Keep the limit well
    // above it, so that the bomb, not PID 1, is the biggest process when the limit is hit (what
    // happens otherwise is OomVictimIsTheBombNotInit).
    uint64_t const memory = std::max<uint64_t>(64ULL << 20, 2 * resident_bytes());
    auto spec = probe_spec({"memorybomb", std::to_string(4 * memory)});
    spec.limits.memory_bytes = memory;
    LiveCompartment bomb;
    ASSERT_TRUE(bomb.start(engine(), spec));
    ASSERT_TRUE(bomb.wait_for_line("READY")) << bomb.output();

    // A hog inside is being killed and restarted all this time (one cycle takes a few hundred ms):
    // keep checking the neighbours for a second, so that several cycles overlap the checks.
    auto const until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    for (int round = 0; round < 3 || std::chrono::steady_clock::now() < until; ++round) {
        auto neighbour_spec = make_spec({"/bin/sh", "-c", "/bin/true && /bin/true && echo neighbour-ok"});
        neighbour_spec.run_as = GetParam();
        neighbour_spec.limits.memory_bytes = 64ULL << 20;
        auto neighbour = run(neighbour_spec);
        EXPECT_EQ(neighbour.status.code, 0) << neighbour.output;
        EXPECT_EQ(neighbour.output, "neighbour-ok\n");
        EXPECT_TRUE(host_runs_true());
    }
    EXPECT_TRUE(all_pass(bomb.finish(), "memorybomb"));
}

TEST_P(EscapeTest, OomVictimIsTheBombNotInit)
{
    // The process that creates compartments (the broker) may be bigger than a compartment's memory
    // limit. PID 1 inside is its fork and shows its resident size; when a bomb inside hits the limit,
    // the OOM killer must still pick the bomb, not PID 1 (whose death ends the whole compartment).
    // The engine protects PID 1 with oom_score_adj -1000, which needs CAP_SYS_RESOURCE on the host.
    pid_t probe_child = ::fork();
    if (probe_child == 0) {
        ::pause();
        ::_exit(0);
    }
    bool can_protect = sys::write_file("/proc/" + std::to_string(probe_child) + "/oom_score_adj", "-1000").has_value();
    ::kill(probe_child, SIGKILL);
    ::waitpid(probe_child, nullptr, 0);
    if (!can_protect)
        GTEST_SKIP() << "host root lacks CAP_SYS_RESOURCE here: PID 1 cannot be protected from the OOM killer";
    constexpr uint64_t memory = 64ULL << 20;
    std::vector<char> ballast(2 * memory);
    std::memset(ballast.data(), 1, ballast.size());
    ASSERT_GT(resident_bytes(), memory);
    auto spec = probe_spec({"memorybomb", std::to_string(4 * memory)});
    spec.limits.memory_bytes = memory;
    LiveCompartment bomb;
    ASSERT_TRUE(bomb.start(engine(), spec));
    bool ready = bomb.wait_for_line("READY");
    auto result = bomb.finish();
    EXPECT_TRUE(ready) << "the compartment died before the probe could report (exit " << result.status.code
                       << (result.status.signaled ? ", killed by signal " + std::to_string(result.status.signal) : "")
                       << "): PID 1, a fork of a creator bigger than the limit, was the OOM victim\n"
                       << result.output;
    EXPECT_TRUE(all_pass(result, "memorybomb"));
}

TEST_P(EscapeTest, IpcObjectsDieWithTheirCompartment)
{
    constexpr key_t key = 0x4343;
    ASSERT_FALSE(host_has_ipc_key(key)) << "the host already has IPC key 0x4343: the check would be meaningless";
    EXPECT_TRUE(all_pass(run_probe({"shm-create"}), "shm-create"));
    EXPECT_TRUE(all_pass(run_probe({"shm-absent"}), "shm-absent"));
    EXPECT_FALSE(host_has_ipc_key(key)) << "a compartment's IPC object appeared on the host";
    mqd_t queue = ::mq_open("/bulkhead-leftover", O_RDONLY);
    EXPECT_EQ(queue, static_cast<mqd_t>(-1)) << "a compartment's POSIX message queue appeared on the host";
    if (queue != static_cast<mqd_t>(-1))
        ::mq_close(queue);
}

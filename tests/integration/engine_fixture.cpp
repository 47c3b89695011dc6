#include "engine_fixture.hpp"

#include "sys/syscalls.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace bulkhead::testing {

void EngineTest::SetUp()
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root";
    auto root = sandbox::CgroupRoot::open("engine-test-" + std::to_string(::getpid()));
    ASSERT_TRUE(root.has_value()) << root.error().message();
    m_cgroups = root.release_value();
    // The program the bulkhead binary uses: the one embedded at build time.
    m_seccomp = std::make_unique<sandbox::SeccompProgram>(
        sandbox::SeccompProgram::prebuilt(sandbox::SeccompProfile::Default));
    char dir[] = "/tmp/bulkhead-engine-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    m_runtime_dir = dir;
}

void EngineTest::TearDown()
{
    if (!m_runtime_dir.empty()) {
        EXPECT_EQ(::rmdir(m_runtime_dir.c_str()), 0) << "runtime dir not empty after the test: " << m_runtime_dir;
        (void)sys::remove_tree(m_runtime_dir);
    }
    if (m_cgroups) {
        EXPECT_TRUE(m_cgroups->remove_if_empty().has_value());
        for (auto const& dir : m_cgroups->directories())
            EXPECT_FALSE(path_exists(dir)) << "cgroup left behind: " << dir;
    }
}

sandbox::Spec EngineTest::make_spec(std::vector<std::string> argv)
{
    sandbox::Spec spec;
    int n = m_next++;
    spec.name = "t" + std::to_string(::getpid()) + "-" + std::to_string(n);
    spec.host_id_base = (1U << 30) + (((static_cast<uint32_t>(::getpid()) % 1024) * 16 + static_cast<uint32_t>(n % 16)) << 16);
    spec.runtime_dir = m_runtime_dir;
    spec.argv = std::move(argv);
    spec.env = sandbox::default_environment(spec);
    return spec;
}

RunResult EngineTest::run(sandbox::Spec spec, std::string const& input)
{
    int out[2];
    int in[2];
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    sys::UniqueFd out_read(out[0]), out_write(out[1]), in_read(in[0]), in_write(in[1]);
    spec.stdin_fd = in_read.get();
    spec.stdout_fd = out_write.get();
    spec.stderr_fd = out_write.get();
    auto compartment = sandbox::Compartment::create(engine(), spec);
    if (compartment.is_error()) {
        ADD_FAILURE() << "create: " << compartment.error().message();
        return {};
    }
    out_write.reset();
    in_read.reset();
    std::thread writer([&] {
        (void)!::write(in_write.get(), input.data(), input.size());
        in_write.reset();
    });
    RunResult result;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(out_read.get(), buffer, sizeof(buffer))) > 0)
        result.output.append(buffer, static_cast<size_t>(n));
    writer.join();
    auto status = compartment.value().wait();
    EXPECT_TRUE(status.has_value());
    if (status.has_value())
        result.status = status.value();
    EXPECT_TRUE(compartment.value().destroy().has_value());
    return result;
}

bool write_host_file(std::string const& path, std::string const& content, mode_t mode)
{
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return false;
    bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    ok = ::fchmod(fd, mode) == 0 && ok;
    return ::close(fd) == 0 && ok;
}

bool path_exists(std::string const& path)
{
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

bool host_mounts_mention(std::string const& path)
{
    auto mountinfo = sys::read_file("/proc/self/mountinfo", 16 << 20);
    return mountinfo.has_value() && mountinfo.value().find(path) != std::string::npos;
}

bool has_children()
{
    siginfo_t info {};
    int rc = ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    return !(rc < 0 && errno == ECHILD);
}

} // namespace bulkhead::testing

// Shared set-up for privileged engine tests: one Engine per test, a scratch runtime directory,
// and helpers that run a command in a compartment and capture what it prints.
#pragma once

#include "sandbox/cgroup.hpp"
#include "sandbox/compartment.hpp"
#include "sandbox/seccomp.hpp"

#include <gtest/gtest.h>
#include <memory>
#include <string>

namespace bulkhead::testing {

struct RunResult {
    sandbox::ExitStatus status;
    std::string output; // stdout and stderr together
};

class EngineTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    // A spec with a unique name and id block, the scratch runtime dir, and a default environment.
    sandbox::Spec make_spec(std::vector<std::string> argv);
    // Creates, waits, destroys; fails the test if create() fails.
    RunResult run(sandbox::Spec spec, std::string const& input = {});
    sandbox::Engine engine() const { return {m_cgroups.get(), m_seccomp.get()}; }
    std::string const& runtime_dir() const { return m_runtime_dir; }

    std::unique_ptr<sandbox::CgroupRoot> m_cgroups;
    std::unique_ptr<sandbox::SeccompProgram> m_seccomp;
    std::string m_runtime_dir;
    int m_next = 0;
};

// Creates or replaces a file on the host side (test set-up only).
bool write_host_file(std::string const& path, std::string const& content, mode_t mode = 0644);
bool path_exists(std::string const& path);
// Whether the host's mount table mentions `path` anywhere.
bool host_mounts_mention(std::string const& path);
// Whether this process has any child, zombie or alive.
bool has_children();

} // namespace bulkhead::testing

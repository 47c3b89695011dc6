#include "sandbox/mounts.hpp"
#include "sandbox/spec.hpp"

#include <gtest/gtest.h>

using namespace bulkhead;
using namespace bulkhead::sandbox;

namespace {

Spec good_spec()
{
    Spec spec;
    spec.name = "work";
    spec.host_id_base = 1U << 30;
    spec.argv = {"/bin/true"};
    spec.runtime_dir = "/tmp";
    return spec;
}

std::string error_of(Spec const& spec)
{
    auto status = validate(spec);
    return status.is_error() ? status.error().message() : std::string("(valid)");
}

} // namespace

TEST(SpecValidate, AcceptsAGoodSpec)
{
    EXPECT_EQ(error_of(good_spec()), "(valid)");
}

TEST(SpecValidate, NamesTheBadField)
{
    struct Case {
        char const* expected_prefix;
        void (*mutate)(Spec&);
    };
    Case const cases[] = {
        {"name:", [](Spec& s) { s.name = "Work!"; }},
        {"name:", [](Spec& s) { s.name = ""; }},
        {"name:", [](Spec& s) { s.name = std::string(65, 'a'); }},
        {"hostname:", [](Spec& s) { s.hostname = "bad host"; }},
        {"template", [](Spec& s) { s.templ = {TemplateKind::Rootfs, "/does/not/exist"}; }},
        {"template", [](Spec& s) { s.templ = {TemplateKind::Rootfs, "/tmp/../etc"}; }},
        {"template", [](Spec& s) { s.templ = {TemplateKind::Host, "/usr"}; }},
        {"host_id_base:", [](Spec& s) { s.host_id_base = 0; }},
        {"host_id_base:", [](Spec& s) { s.host_id_base = 12345; }},
        {"host_id_base:", [](Spec& s) { s.host_id_base = 0xFFFF0000U; }},
        {"binds[0].source:", [](Spec& s) { s.binds = {{"/no/such/dir", "/data", AccessMode::ReadOnly}}; }},
        {"binds[0].source:", [](Spec& s) { s.binds = {{"relative", "/data", AccessMode::ReadOnly}}; }},
        {"binds[0].source:", [](Spec& s) { s.binds = {{"/dev/null", "/data", AccessMode::ReadOnly}}; }},
        {"binds[0].target:", [](Spec& s) { s.binds = {{"/tmp", "/data/../etc", AccessMode::ReadOnly}}; }},
        {"binds[0].target:", [](Spec& s) { s.binds = {{"/tmp", "/proc/sys", AccessMode::ReadWrite}}; }},
        {"binds[0].target:", [](Spec& s) { s.binds = {{"/tmp", "/", AccessMode::ReadWrite}}; }},
        {"binds[0].target:", [](Spec& s) { s.binds = {{"/tmp", "/usr/bin", AccessMode::ReadWrite}}; }},
        {"home:", [](Spec& s) { s.home_source = "/no/such/home"; }},
        {"limits.memory:", [](Spec& s) { s.limits.memory_bytes = 4096; }},
        {"limits.pids:", [](Spec& s) { s.limits.pids = 1; }},
        {"limits.cpus:", [](Spec& s) { s.limits.cpu_millis = 5; }},
        {"argv:", [](Spec& s) { s.argv.clear(); }},
        {"argv:", [](Spec& s) { s.argv = {""}; }},
        {"env:", [](Spec& s) { s.env = {"NOEQUALS"}; }},
        {"cwd:", [](Spec& s) { s.cwd = "relative/dir"; }},
        {"runtime_dir:", [](Spec& s) { s.runtime_dir = "/no/such/run"; }},
        {"runtime_dir:", [](Spec& s) { s.runtime_dir = "/"; }},
    };
    for (auto const& c : cases) {
        Spec spec = good_spec();
        c.mutate(spec);
        std::string message = error_of(spec);
        EXPECT_TRUE(message.starts_with(c.expected_prefix)) << "expected '" << c.expected_prefix << "', got: " << message;
    }
}

TEST(SpecValidate, RootfsNeedsUsr)
{
    Spec spec = good_spec();
    spec.templ = {TemplateKind::Rootfs, "/tmp"};
    EXPECT_NE(error_of(spec).find("/usr"), std::string::npos);
}

TEST(DefaultEnvironment, IsCleanAndNamed)
{
    Spec spec = good_spec();
    auto env = default_environment(spec);
    EXPECT_EQ(env.size(), 5u);
    EXPECT_NE(std::find(env.begin(), env.end(), "HOME=/home/user"), env.end());
    EXPECT_NE(std::find(env.begin(), env.end(), "BULKHEAD_COMPARTMENT=work"), env.end());
    spec.run_as = RunAs::Root;
    env = default_environment(spec);
    EXPECT_NE(std::find(env.begin(), env.end(), "USER=root"), env.end());
}

TEST(GeneratedEtc, HasRootAndUserOnly)
{
    std::string passwd = generated_passwd();
    EXPECT_NE(passwd.find("root:x:0:0:"), std::string::npos);
    EXPECT_NE(passwd.find("user:x:1000:1000:"), std::string::npos);
    EXPECT_EQ(passwd.find(":$"), std::string::npos); // no hashes, ever
    EXPECT_NE(generated_hosts("work").find("127.0.1.1\twork"), std::string::npos);
}

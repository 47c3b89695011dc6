#include "policy/policy.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::policy;

namespace {

// Files in memory, for includes.
struct Files {
    std::map<std::string, std::string> files;
    Reader reader() const
    {
        Reader reader;
        reader.read_file = [this](std::string const& path) -> Result<std::string> {
            auto found = files.find(path);
            if (found == files.end())
                return Error::from_syscall("open", path, ENOENT);
            return found->second;
        };
        reader.list_dir = [this](std::string const& dir) -> Result<std::vector<std::string>> {
            std::vector<std::string> names;
            for (auto const& [path, text] : files) {
                if (path.starts_with(dir + "/") && path.find('/', dir.size() + 1) == std::string::npos)
                    names.push_back(path.substr(dir.size() + 1));
            }
            if (names.empty())
                return Error::from_syscall("opendir", dir, ENOENT);
            return names;
        };
        return reader;
    }
};

Policy parsed(std::string const& text)
{
    auto policy = parse(text, "p.policy", {});
    EXPECT_TRUE(policy.has_value()) << (policy.has_value() ? "" : policy.error().message());
    return policy.has_value() ? policy.release_value() : Policy {};
}

std::string error_of(std::string const& text, Reader const& reader = {})
{
    auto policy = parse(text, "p.policy", reader);
    return policy.has_value() ? "(parsed)" : policy.error().message();
}

Party compartment(std::string name, std::vector<std::string> tags = {})
{
    Party party;
    party.name = std::move(name);
    party.tags = std::move(tags);
    return party;
}

Party disposable(std::string name, std::string templ)
{
    Party party = compartment(std::move(name));
    party.disposable = true;
    party.template_name = std::move(templ);
    return party;
}

Request call(Party source, Party target, std::string service = "s.S", std::string arg = "")
{
    Request request;
    request.service = std::move(service);
    request.arg = std::move(arg);
    request.source = std::move(source);
    request.target = std::move(target);
    return request;
}

std::string decide(Policy const& policy, Request const& request)
{
    auto decision = evaluate(policy, request);
    return std::string(action_name(decision.action)) + " " + decision_where(policy, decision);
}

} // namespace

TEST(PolicyParse, RulesCommentsAndBlankLines)
{
    auto policy = parsed("# comment\n\n  s.S  *  work  vault  allow  # trailing\n*\t+\t@any\t@any\tdeny\n");
    ASSERT_EQ(policy.rules.size(), 2U);
    EXPECT_EQ(policy.rules[0].service, "s.S");
    EXPECT_EQ(policy.rules[0].where.line, 3U);
    EXPECT_EQ(policy.rules[0].where.column, 3U);
    EXPECT_EQ(policy.rules[1].arg_match, ArgMatch::Empty);
    EXPECT_EQ(policy.rules[1].action, Action::Deny);
}

TEST(PolicyParse, SubjectsAndQubesAliases)
{
    auto policy = parsed("s * @anyvm @dispvm allow\ns * @tag:work @dispvm:untrusted allow\ns * @adminvm @default ask\ns * @disposable:t @host allow\n");
    ASSERT_EQ(policy.rules.size(), 4U);
    EXPECT_EQ(policy.rules[0].source.kind, SubjectKind::Any);
    EXPECT_EQ(policy.rules[0].target.kind, SubjectKind::Disposable);
    EXPECT_EQ(policy.rules[1].source.text(), "@tag:work");
    EXPECT_EQ(policy.rules[1].target.text(), "@disposable:untrusted");
    EXPECT_EQ(policy.rules[2].source.kind, SubjectKind::Host);
    EXPECT_EQ(policy.rules[2].target.kind, SubjectKind::Default);
    EXPECT_EQ(policy.rules[3].target.kind, SubjectKind::Host);
}

TEST(PolicyParse, QubesServiceNamesAreTheBuiltIns)
{
    auto policy = parsed("qubes.Filecopy * work vault allow\nqubes.ClipboardPaste * @any @any ask\nqubes.OpenInVM * work @dispvm allow\nmy.Svc * work vault allow\n");
    ASSERT_EQ(policy.rules.size(), 4U);
    EXPECT_EQ(policy.rules[0].service, "bulkhead.Filecopy");
    EXPECT_EQ(policy.rules[0].written_service, "qubes.Filecopy");
    EXPECT_EQ(policy.rules[1].service, "bulkhead.Clipboard");
    EXPECT_EQ(policy.rules[2].service, "bulkhead.OpenInDisposable");
    EXPECT_EQ(policy.rules[3].written_service, "");
    // A call of either name meets the same rule; lint says which names it read as what.
    Request request;
    request.service = std::string(canonical_service("qubes.Filecopy"));
    request.source.name = "work";
    request.target.name = "vault";
    EXPECT_EQ(evaluate(policy, request).action, Action::Allow);
    auto warnings = lint(policy, Known {{"work", "vault"}, {}, {}});
    ASSERT_GE(warnings.size(), 3U);
    EXPECT_NE(warnings[0].message.find("'qubes.Filecopy' is read as 'bulkhead.Filecopy'"), std::string::npos);
}

TEST(PolicyParse, Params)
{
    auto policy = parsed("s * work @default allow target=vault user=root notify=yes autostart=no\ns * work vault ask default_target=vault\n");
    ASSERT_EQ(policy.rules.size(), 2U);
    EXPECT_EQ(policy.rules[0].params.target, "vault");
    EXPECT_EQ(policy.rules[0].params.user, "root");
    EXPECT_EQ(policy.rules[0].params.notify, true);
    EXPECT_EQ(policy.rules[0].params.autostart, false);
    EXPECT_EQ(policy.rules[1].params.default_target, "vault");
}

TEST(PolicyParse, ErrorsWithPositions)
{
    std::vector<std::pair<std::string, std::string>> cases = {
        {"s * work vault alow\n", "p.policy:1:16: error: expected an action (allow, deny or ask), got 'alow'"},
        {"s * work vault\n", "p.policy:1:10: error: expected SERVICE ARG SOURCE TARGET ACTION [PARAMS], got 4 fields"},
        {"s x work vault allow\n", "p.policy:1:3: error: argument 'x': expected * (any), + (none) or +VALUE"},
        {"s * @anyone vault allow\n", "p.policy:1:5: error: source '@anyone': expected a compartment, @any, @tag:NAME, @disposable, @disposable:TEMPLATE, @host"},
        {"s * @default vault allow\n", "p.policy:1:5: error: source '@default': @default is only a target"},
        {"s * Work vault allow\n", "p.policy:1:5: error: source 'Work': 'Work' is not a valid name"},
        {"s * work @tag: allow\n", "p.policy:1:10: error: target '@tag:': '' is not a valid name"},
        {"s/x * work vault allow\n", "p.policy:1:1: error: service 's/x': expected * or a name of letters, digits, '.', '_' and '-' (at most 64)"},
        {"s * work vault allow colour=red\n", "p.policy:1:22: error: unknown parameter 'colour' (expected target, default_target, user, notify or autostart)"},
        {"s * work vault allow notify=maybe\n", "p.policy:1:22: error: parameter notify='maybe': expected yes or no"},
        {"s * work vault allow notify=yes notify=no\n", "p.policy:1:33: error: parameter notify given twice"},
        {"s * work vault allow user=alice\n", "p.policy:1:22: error: parameter user='alice': expected user or root"},
        {"s * work vault deny target=x\n", "p.policy:1:16: error: target= is not for deny"},
        {"s * work vault allow default_target=x\n", "p.policy:1:16: error: default_target= is only for ask"},
        {"!inclued x\n", "p.policy:1:1: error: unknown directive '!inclued' (expected !include or !include-dir)"},
        {"s * work\tvault\x01 allow\n", "p.policy:1:15: error: control character in the line"},
    };
    for (auto const& [text, expected] : cases)
        EXPECT_EQ(error_of(text), expected) << text;
}

TEST(PolicyParse, EveryErrorIsReportedAndNothingIsReturned)
{
    auto policy = parse("s * work vault allow\ns * work vault alow\nt * @x vault allow\n", "p.policy", {});
    ASSERT_TRUE(policy.is_error());
    EXPECT_NE(policy.error().message().find("p.policy:2:16"), std::string::npos);
    EXPECT_NE(policy.error().message().find("p.policy:3:5"), std::string::npos);
}

TEST(PolicyParse, LongLinesAndManyErrorsAreBounded)
{
    EXPECT_NE(error_of(std::string(5000, 'a') + "\n").find("line longer than 4096 bytes"), std::string::npos);
    std::string many;
    for (int i = 0; i < 500; ++i)
        many += "s * work vault alow\n";
    auto message = error_of(many);
    EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 99); // 100 errors, no more
}

TEST(PolicyInclude, NestedRelativeAndDirectories)
{
    Files files;
    files.files["/etc/p/main.policy"] = "a * work vault allow\n!include sub/one.policy\n!include-dir d\nz * work vault allow\n";
    files.files["/etc/p/sub/one.policy"] = "b * work vault allow\n";
    files.files["/etc/p/d/20.policy"] = "d * work vault allow\n";
    files.files["/etc/p/d/10.policy"] = "c * work vault allow\n";
    files.files["/etc/p/d/ignored.txt"] = "garbage\n";
    auto policy = parse(files.files["/etc/p/main.policy"], "/etc/p/main.policy", files.reader());
    ASSERT_TRUE(policy.has_value()) << policy.error().message();
    std::string order;
    for (auto const& rule : policy.value().rules)
        order += rule.service;
    EXPECT_EQ(order, "abcdz");
    EXPECT_EQ(policy.value().rules[1].where.file_line(), "/etc/p/sub/one.policy:1");
}

TEST(PolicyInclude, CyclesDepthAndMissingFiles)
{
    Files files;
    files.files["/p/a.policy"] = "!include b.policy\n";
    files.files["/p/b.policy"] = "!include a.policy\n";
    EXPECT_NE(error_of("!include /p/a.policy\n", files.reader()).find("include cycle"), std::string::npos);
    EXPECT_EQ(error_of("!include nowhere.policy\n", files.reader()).find("p.policy:1:10: error: cannot read ./nowhere.policy"), 0U);
    Files deep;
    for (int i = 0; i < 12; ++i)
        deep.files["/d/" + std::to_string(i) + ".policy"] = "!include " + std::to_string(i + 1) + ".policy\n";
    deep.files["/d/12.policy"] = "s * work vault allow\n";
    EXPECT_NE(error_of("!include /d/0.policy\n", deep.reader()).find("nested deeper than 8"), std::string::npos);
}

TEST(PolicyDir, LexicalOrderOfPolicyFiles)
{
    Files files;
    files.files["/etc/bulkhead/policy.d/50-b.policy"] = "b * work vault allow\n";
    files.files["/etc/bulkhead/policy.d/10-a.policy"] = "a * work vault allow\n";
    auto policy = parse_dir("/etc/bulkhead/policy.d", files.reader());
    ASSERT_TRUE(policy.has_value()) << policy.error().message();
    ASSERT_EQ(policy.value().rules.size(), 2U);
    EXPECT_EQ(policy.value().rules[0].service, "a");
    EXPECT_TRUE(parse_dir("/nowhere", files.reader()).is_error());
}

TEST(PolicyEvaluate, FirstMatchWinsAndNoMatchDenies)
{
    auto policy = parsed("s.S * work vault deny\ns.S * work vault allow\n* * @any @any ask\n");
    EXPECT_EQ(decide(policy, call(compartment("work"), compartment("vault"))), "deny p.policy:1");
    EXPECT_EQ(decide(policy, call(compartment("personal"), compartment("vault"))), "ask p.policy:3");
    auto strict = parsed("s.S * work vault allow\n");
    EXPECT_EQ(decide(strict, call(compartment("work"), compartment("personal"))), "deny no matching rule");
    EXPECT_EQ(decide(strict, call(compartment("work"), compartment("vault"), "s.Other")), "deny no matching rule");
}

TEST(PolicyEvaluate, Arguments)
{
    auto policy = parsed("s.S +  work vault allow\ns.S +x work vault ask\n");
    EXPECT_EQ(decide(policy, call(compartment("work"), compartment("vault"), "s.S", "")), "allow p.policy:1");
    EXPECT_EQ(decide(policy, call(compartment("work"), compartment("vault"), "s.S", "x")), "ask p.policy:2");
    EXPECT_EQ(decide(policy, call(compartment("work"), compartment("vault"), "s.S", "y")), "deny no matching rule");
}

TEST(PolicyEvaluate, TagsDisposablesHostAndDefault)
{
    auto policy = parsed("s.S * @tag:work @tag:work allow\n"
                         "s.D * @any @disposable:untrusted ask\n"
                         "s.D * @disposable @any allow\n"
                         "s.H * @host @any allow\n"
                         "s.R * work @default allow target=vault\n");
    EXPECT_EQ(decide(policy, call(compartment("a", {"work"}), compartment("b", {"work"}))), "allow p.policy:1");
    EXPECT_EQ(decide(policy, call(compartment("a", {"work"}), compartment("b", {"home"}))), "deny no matching rule");
    Request fresh = call(compartment("work"), {}, "s.D");
    fresh.target_kind = TargetKind::NewDisposable;
    fresh.disposable_template = "untrusted";
    EXPECT_EQ(decide(policy, fresh), "ask p.policy:2");
    fresh.disposable_template = "other";
    EXPECT_EQ(decide(policy, fresh), "deny no matching rule");
    EXPECT_EQ(decide(policy, call(disposable("disp-1", "untrusted"), compartment("vault"), "s.D")), "allow p.policy:3");
    // An existing disposable is never a @disposable target, not even one of the right template.
    EXPECT_EQ(decide(policy, call(compartment("vault"), disposable("disp-1", "untrusted"), "s.D")), "deny no matching rule");
    auto by_kind = parsed("s.E * @any @disposable allow\ns.E * @any @any ask\n");
    EXPECT_EQ(decide(by_kind, call(compartment("vault"), disposable("disp-1", "untrusted"), "s.E")), "ask p.policy:2");
    fresh.service = "s.E";
    EXPECT_EQ(decide(by_kind, fresh), "allow p.policy:1");
    std::vector<Step> steps;
    (void)explain(by_kind, call(compartment("vault"), disposable("disp-1", "untrusted"), "s.E"), steps);
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps[0].why, "target disp-1 is not a new disposable");
    Party host;
    host.host = true;
    EXPECT_EQ(decide(policy, call(host, compartment("vault"), "s.H")), "allow p.policy:4");
    EXPECT_EQ(decide(policy, call(compartment("work"), compartment("vault"), "s.H")), "deny no matching rule");
    Request none = call(compartment("work"), {}, "s.R");
    none.target_kind = TargetKind::Default;
    auto decision = evaluate(policy, none);
    EXPECT_EQ(decision.action, Action::Allow);
    EXPECT_EQ(decision.params.target, "vault");
    // @any is never the host and never @default.
    auto any = parsed("* * @any @any allow\n");
    EXPECT_EQ(decide(any, call(host, compartment("vault"))), "deny no matching rule");
    EXPECT_EQ(decide(any, none), "deny no matching rule");
}

TEST(PolicyEvaluate, ExplainAgreesWithEvaluateOnRandomRequests)
{
    auto policy = parsed("a * work vault allow\n"
                         "b +x @tag:t @any ask\n"
                         "* + @disposable @tag:t deny\n"
                         "a * @any @disposable:u allow\n"
                         "b * personal @default allow target=vault\n"
                         "* * @tag:u @tag:t allow\n");
    std::mt19937 random(42);
    std::vector<Party> parties = {compartment("work", {"t"}), compartment("vault", {"u"}), compartment("personal"), disposable("disp-1", "u"),
        disposable("disp-2", "v")};
    for (int i = 0; i < 2000; ++i) {
        Request request = call(parties[random() % parties.size()], parties[random() % parties.size()], std::string(1, "abc"[random() % 3]),
            random() % 2 ? "" : "x");
        request.target_kind = static_cast<TargetKind>(random() % 4);
        request.disposable_template = random() % 2 ? "u" : "v";
        std::vector<Step> steps;
        auto explained = explain(policy, request, steps);
        auto evaluated = evaluate(policy, request);
        ASSERT_EQ(explained.action, evaluated.action);
        ASSERT_EQ(explained.rule, evaluated.rule);
        ASSERT_FALSE(steps.empty());
        EXPECT_EQ(steps.back().matched, evaluated.rule.has_value());
    }
}

TEST(PolicyEvaluate, ExplainSaysWhy)
{
    auto policy = parsed("s.S * personal vault allow\ns.S +x work vault allow\ns.S * work vault ask\n");
    std::vector<Step> steps;
    auto decision = explain(policy, call(compartment("work"), compartment("vault"), "s.S", "y"), steps);
    ASSERT_EQ(steps.size(), 3U);
    EXPECT_EQ(steps[0].why, "source is work, not personal");
    EXPECT_EQ(steps[1].why, "argument is 'y', not +x");
    EXPECT_TRUE(steps[2].matched);
    EXPECT_EQ(decision.action, Action::Ask);
}

TEST(PolicyLint, ShadowedRulesAndUnknownNames)
{
    auto policy = parsed("s.S * @any @any allow\n"
                         "s.S * work vault deny\n"
                         "t.T +x work vault allow\n"
                         "t.T * work vault allow\n"
                         "u.U * nosuch @tag:nope allow\n"
                         "u.U * work @disposable:gone ask default_target=ghost\n");
    Known known {{"work", "vault"}, {"t"}, {"untrusted"}};
    auto warnings = lint(policy, known);
    std::vector<std::string> lines;
    for (auto const& warning : warnings)
        lines.push_back(warning.format("warning"));
    ASSERT_EQ(lines.size(), 5U) << ::testing::PrintToString(lines);
    EXPECT_EQ(lines[0], "p.policy:2:1: warning: never matches: rule p.policy:1 matches every call this one would");
    EXPECT_NE(lines[1].find("p.policy:5:1: warning: source 'nosuch'"), std::string::npos);
    EXPECT_NE(lines[2].find("@tag:nope"), std::string::npos);
    EXPECT_NE(lines[3].find("@disposable:gone"), std::string::npos);
    EXPECT_NE(lines[4].find("'ghost'"), std::string::npos);
    // Rule 4 (any argument) is wider than rule 3 (+x): not shadowed; no false warning about it.
    for (auto const& line : lines)
        EXPECT_EQ(line.find("p.policy:4:"), std::string::npos) << line;
}

TEST(PolicyDefault, ParsesAndDeniesByDefault)
{
    auto policy = parse(default_policy_text(), "embedded", {});
    ASSERT_TRUE(policy.has_value()) << policy.error().message();
    EXPECT_EQ(decide(policy.value(), call(compartment("work"), compartment("vault"), "my.Service")).substr(0, 4), "deny");
    EXPECT_EQ(decide(policy.value(), call(compartment("work"), compartment("vault"), "bulkhead.Filecopy")).substr(0, 3), "ask");
}

TEST(PolicyIndex, ManyRulesKeepFileOrder)
{
    std::string text;
    for (int i = 0; i < 1000; ++i)
        text += "svc" + std::to_string(i % 50) + " * c" + std::to_string(i) + " vault allow\n";
    text += "* * work vault ask\n";
    text += "svc7 * work vault allow\n";
    auto policy = parsed(text);
    EXPECT_EQ(decide(policy, call(compartment("c7"), compartment("vault"), "svc7")), "allow p.policy:8");
    EXPECT_EQ(decide(policy, call(compartment("work"), compartment("vault"), "svc7")), "ask p.policy:1001");
}

// bulkhead policy check|lint, pending, approve, deny, audit [--follow] [--json], audit verify, copy.
#include "cli/client.hpp"
#include "cli/commands.hpp"

#include "base/parse.hpp"
#include "config/config.hpp"
#include "policy/policy.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <unistd.h>

namespace bulkhead::cli {

using nlohmann::json;

namespace {

constexpr char const* default_policy_dir = "/etc/bulkhead/policy.d";

// printf to stdout, through shown_on: pending calls and audit records carry names and arguments
// that compartments chose.
[[gnu::format(printf, 1, 2)]] void print_shown(char const* format, ...)
{
    va_list args;
    va_start(args, format);
    char* text = nullptr;
    int length = ::vasprintf(&text, format, args);
    va_end(args);
    if (length < 0)
        return;
    std::fputs(shown_on(1, std::string_view(text, static_cast<size_t>(length))).c_str(), stdout);
    std::free(text);
}

// JSON for stdout: on a terminal every non-ASCII character escaped too (C1 controls are UTF-8).
std::string json_for_stdout(json const& value, int indent)
{
    return value.dump(indent, ' ', ::isatty(1) == 1, json::error_handler_t::replace);
}

// Reports a reply; returns the exit code, or -1 when the reply is ok and the caller goes on.
int failed_or_continue(Result<json> const& reply)
{
    if (reply.is_error()) {
        print_error(reply.error().message());
        return exit_failed;
    }
    if (!reply.value().value("ok", false))
        return report_failure(reply.value());
    return -1;
}

// policy lint [DIR]: pure, no broker. Names are checked against system.toml beside DIR (or the
// embedded default system).
int lint_command(std::vector<std::string> const& args)
{
    if (args.size() > 1 || (!args.empty() && args.front().starts_with("-"))) {
        print_error("usage: bulkhead policy lint [DIR]");
        return exit_usage;
    }
    std::string dir = args.empty() ? default_policy_dir : args.front();
    while (dir.size() > 1 && dir.back() == '/')
        dir.pop_back();
    policy::Reader reader;
    reader.read_file = [](std::string const& path) { return sys::read_file(path, 16 << 20); };
    reader.list_dir = [](std::string const& path) { return sys::list_directory(path); };
    auto parsed = policy::parse_dir(dir, reader);
    if (parsed.is_error()) {
        std::fprintf(stderr, "%s\n", parsed.error().message().c_str());
        return exit_usage;
    }
    std::string const config_path = (dir.find('/') == std::string::npos ? std::string(".") : dir.substr(0, dir.rfind('/'))) + "/system.toml";
    std::string config_text(config::default_system_toml());
    std::string config_source = "the embedded default system";
    if (auto text = sys::read_file(config_path, 256 * 1024); text.has_value()) {
        config_text = text.value();
        config_source = config_path;
    }
    auto system = config::parse_system_config(config_text, config_path);
    policy::Known known;
    if (system.config) {
        for (auto const& compartment : system.config->compartments) {
            known.compartments.push_back(compartment.name);
            known.tags.insert(known.tags.end(), compartment.tags.begin(), compartment.tags.end());
            if (compartment.disposable_template)
                known.disposable_templates.push_back(compartment.name);
        }
    } else {
        print_error("policy lint: " + config_path + " does not parse; names are not checked");
    }
    auto warnings = policy::lint(parsed.value(), known);
    for (auto const& warning : warnings)
        std::fprintf(stderr, "%s\n", warning.format("warning").c_str());
    std::printf("%s: %zu rules, %zu warnings (names checked against %s)\n", dir.c_str(), parsed.value().rules.size(),
        warnings.size(), system.config ? config_source.c_str() : "nothing");
    return 0;
}

int check_command(std::string const& socket, std::vector<std::string> args)
{
    bool explain = false;
    if (auto found = std::find(args.begin(), args.end(), "--explain"); found != args.end()) {
        explain = true;
        args.erase(found);
    }
    if (args.size() != 3 || std::any_of(args.begin(), args.end(), [](auto const& arg) { return arg.starts_with("-"); })) {
        print_error("usage: bulkhead policy check [--explain] SOURCE TARGET SERVICE[+ARG]");
        return exit_usage;
    }
    std::string service = args[2], arg;
    if (auto plus = service.find('+'); plus != std::string::npos) {
        arg = service.substr(plus + 1);
        service.resize(plus);
    }
    auto reply = call_broker(socket, {{"op", "policy_check"}, {"source", args[0]}, {"target", args[1]}, {"service", service}, {"arg", arg}, {"explain", explain}});
    if (int code = failed_or_continue(reply); code >= 0)
        return code;
    json const& body = reply.value();
    for (auto const& line : body.value("steps", json::array()))
        if (line.is_string())
            print_shown("  %s\n", line.get<std::string>().c_str());
    std::string target = body.contains("target") && body["target"].is_string() ? " target=" + body["target"].get<std::string>() : "";
    print_shown("%s (%s)%s\n", body.value("action", "?").c_str(), body.value("rule", "?").c_str(), target.c_str());
    if (body.contains("differs") && body["differs"].is_string())
        print_error(body["differs"].get<std::string>());
    // 0 allow, 1 deny, 3 ask: scripts can branch on the decision.
    std::string const action = body.value("action", "");
    return action == "allow" ? 0 : action == "ask" ? 3 : 1;
}

int pending_command(std::string const& socket, std::vector<std::string> const& args)
{
    bool as_json = args.size() == 1 && args.front() == "--json";
    if (!args.empty() && !as_json) {
        print_error("usage: bulkhead pending [--json]");
        return exit_usage;
    }
    auto reply = call_broker(socket, {{"op", "pending"}});
    if (int code = failed_or_continue(reply); code >= 0)
        return code;
    json const& list = reply.value()["pending"];
    if (as_json) {
        std::printf("%s\n", json_for_stdout(list, 2).c_str());
        return 0;
    }
    std::printf("%-6s %-16s %-16s %-32s %-8s %s\n", "ID", "CALLER", "TARGET", "SERVICE", "AGE", "RULE");
    for (auto const& ask : list) {
        std::string service = ask.value("service", "?");
        if (!ask.value("arg", "").empty())
            service += "+" + ask.value("arg", "");
        std::string age = std::to_string(ask.value("age_ms", int64_t(0)) / 1000) + "s";
        print_shown("%-6llu %-16s %-16s %-32s %-8s %s\n", static_cast<unsigned long long>(ask.value("id", uint64_t(0))),
            ask.value("caller", "?").c_str(), ask.value("target", "?").c_str(), service.c_str(), age.c_str(), ask.value("rule", "?").c_str());
    }
    return 0;
}

int answer_command(std::string const& socket, std::string const& command, std::vector<std::string> args)
{
    std::string target;
    for (size_t i = 0; i < args.size(); ++i) {
        if (command == "approve" && args[i] == "--target" && i + 1 < args.size()) {
            target = args[i + 1];
            args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
            break;
        }
    }
    auto id = args.size() == 1 ? parse_uint(args.front()) : Result<uint64_t>(Error::from_message("one ID"));
    if (id.is_error()) {
        print_error(command == "approve" ? "usage: bulkhead approve ID [--target NAME]" : "usage: bulkhead deny ID");
        return exit_usage;
    }
    json request = {{"op", command}, {"id", id.value()}};
    if (!target.empty())
        request["target"] = target;
    auto reply = call_broker(socket, request);
    if (int code = failed_or_continue(reply); code >= 0)
        return code;
    return 0;
}

void print_record(json const& entry, bool as_json)
{
    if (as_json) {
        std::printf("%s\n", json_for_stdout(entry, -1).c_str());
        return;
    }
    std::string service = entry.value("service", "");
    if (!entry.value("arg", "").empty())
        service += "+" + entry.value("arg", "");
    std::string rule = entry.value("rule", "");
    std::string detail = entry.value("detail", "");
    print_shown("%6llu %s %-5s %-12s -> %-12s %-28s %-8s %s%s\n", static_cast<unsigned long long>(entry.value("seq", uint64_t(0))),
        entry.value("time", "").c_str(), entry.value("kind", "").c_str(), entry.value("caller", "").c_str(),
        entry.value("target", "").c_str(), service.c_str(), entry.value("verdict", "").c_str(), rule.c_str(),
        detail.empty() ? "" : ("  " + detail).c_str());
}

int audit_command(std::string const& socket, std::vector<std::string> args)
{
    if (args.size() == 1 && args.front() == "verify") {
        auto reply = call_broker(socket, {{"op", "audit_verify"}});
        if (int code = failed_or_continue(reply); code >= 0)
            return code;
        json const& body = reply.value();
        auto problems = body.value("problems", json::array());
        for (auto const& note : body.value("notes", json::array()))
            print_shown("audit: note: %s\n", note.is_string() ? note.get<std::string>().c_str() : "?");
        for (auto const& problem : problems) {
            std::string file = problem.value("file", "");
            print_shown("audit: %s%sline %llu (seq %llu): %s\n", file.c_str(), file.empty() ? "" : " ",
                static_cast<unsigned long long>(problem.value("line", uint64_t(0))),
                static_cast<unsigned long long>(problem.value("seq", uint64_t(0))), problem.value("what", "?").c_str());
        }
        if (!problems.empty())
            return 1;
        size_t files = body.value("files", json::array()).size();
        std::printf("audit: %llu records in %zu %s, chain intact (%s)\n", static_cast<unsigned long long>(body.value("records", uint64_t(0))),
            files, files == 1 ? "file" : "files", body.value("path", "").c_str());
        return 0;
    }
    bool follow = false, as_json = false;
    for (auto const& arg : args) {
        if (arg == "--follow" || arg == "-f") {
            follow = true;
        } else if (arg == "--json") {
            as_json = true;
        } else {
            print_error("usage: bulkhead audit [--follow] [--json] | bulkhead audit verify");
            return exit_usage;
        }
    }
    uint64_t after = 0;
    while (true) {
        // Pages of records until the end of the log; with --follow, then every quarter second.
        auto reply = call_broker(socket, {{"op", "audit"}, {"after", after}});
        if (int code = failed_or_continue(reply); code >= 0)
            return code;
        auto const& records = reply.value()["records"];
        for (auto const& entry : records) {
            print_record(entry, as_json);
            after = std::max(after, entry.value("seq", uint64_t(0)));
        }
        std::fflush(stdout);
        if (!records.empty())
            continue;
        if (!follow)
            return 0;
        ::usleep(250 * 1000);
    }
}

// NAME:PATH names a file of a compartment when NAME is a valid compartment name; anything else (a
// path with a '/' before its first ':', or without ':') is a host path. "./a:b" is a host file.
bool names_compartment_file(std::string const& arg)
{
    auto colon = arg.find(':');
    return colon != std::string::npos && colon > 0 && config::valid_name(arg.substr(0, colon));
}

// bulkhead copy SRC:PATH... DST: bulkhead-copy run inside SRC as its user, so that the same policy
// (SRC -> DST, bulkhead.Filecopy) and the same receiver apply as for a copy made inside SRC.
// bulkhead copy HOSTPATH... NAME and NAME:PATH... HOSTDIR/ (a DST with a '/'): host_copy.
int copy_command(std::string const& socket, std::vector<std::string> const& args)
{
    if (args.size() < 2) {
        print_error("usage: bulkhead copy SRC:PATH... DST | HOSTPATH... NAME | NAME:PATH... HOSTDIR/");
        return exit_usage;
    }
    std::vector<std::string> const sources(args.begin(), args.end() - 1);
    std::string const& destination = args.back();
    size_t const from_compartments = static_cast<size_t>(std::count_if(sources.begin(), sources.end(), names_compartment_file));
    if (from_compartments != 0 && from_compartments != sources.size()) {
        print_error("copy: files come either from the host or from one compartment, not both");
        return exit_usage;
    }
    if (from_compartments == 0) {
        if (destination.find('/') != std::string::npos) {
            print_error("copy: from the host to the host is not bulkhead's to do (the destination '" + destination
                        + "' has a '/': a host directory)");
            return exit_usage;
        }
        if (!config::valid_name(destination)) {
            print_error("copy: '" + destination + "' is not a compartment name");
            return exit_usage;
        }
        return host_copy(socket, destination, sources, {});
    }
    std::string source;
    std::vector<std::string> paths;
    for (size_t i = 0; i + 1 < args.size(); ++i) {
        auto colon = args[i].find(':');
        if (colon + 1 == args[i].size()) {
            print_error("copy: '" + args[i] + "' names no file");
            return exit_usage;
        }
        std::string name = args[i].substr(0, colon);
        if (!source.empty() && name != source) {
            print_error("copy: every file must come from the same compartment (" + source + " and " + name + ")");
            return exit_usage;
        }
        source = name;
        paths.push_back(args[i].substr(colon + 1));
    }
    if (destination.find('/') != std::string::npos)
        return host_copy(socket, source, paths, destination);
    std::vector<std::string> run = {"--socket", socket, source, "--", "bulkhead-copy", args.back()};
    run.insert(run.end(), paths.begin(), paths.end());
    int code = run_command("run", std::move(run));
    if (code != 126)
        return code;
    // Inside, a denial names no policy file; the administrator is told which rule decided.
    auto reply = call_broker(socket, {{"op", "policy_check"}, {"source", source}, {"target", args.back()},
                                         {"service", "bulkhead.Filecopy"}, {"arg", ""}, {"explain", false}});
    if (reply.has_value() && reply.value().value("action", "") == "deny")
        print_error("copy: denied by policy (" + reply.value().value("rule", std::string("?")) + ")");
    return code;
}

} // namespace

int policy_command(std::string const& command, std::vector<std::string> args)
{
    std::string error;
    std::string socket = take_socket_option(args, error);
    if (!error.empty()) {
        print_error(error);
        return exit_usage;
    }
    if (command == "policy") {
        std::string sub = args.empty() ? "" : args.front();
        if (!args.empty())
            args.erase(args.begin());
        if (sub == "lint")
            return lint_command(args);
        if (sub == "check")
            return check_command(socket, std::move(args));
        print_error("usage: bulkhead policy check [--explain] SOURCE TARGET SERVICE[+ARG] | bulkhead policy lint [DIR]");
        return exit_usage;
    }
    if (command == "pending")
        return pending_command(socket, args);
    if (command == "copy")
        return copy_command(socket, args);
    if (command == "approve" || command == "deny")
        return answer_command(socket, command, std::move(args));
    return audit_command(socket, std::move(args));
}

} // namespace bulkhead::cli

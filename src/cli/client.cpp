// bulkhead daemon, and the client commands that are one request and one reply: apply, plan,
// rollback, ls, start, stop, restart.
#include "cli/client.hpp"

#include <algorithm>
#include <ctime>

#include "base/parse.hpp"
#include "broker/broker.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "sys/socket.hpp"
#include "sys/syscalls.hpp"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace bulkhead::cli {

using nlohmann::json;

namespace {

constexpr size_t max_reply = 4 * 1024 * 1024;
constexpr size_t max_config_file = 256 * 1024;

// Takes `--NAME VALUE` or `--NAME=VALUE` out of args (before any `--`).
bool take_option(std::vector<std::string>& args, std::string const& name, std::string& value, std::string& error)
{
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--")
            return false;
        if (args[i] == "--" + name) {
            if (i + 1 >= args.size()) {
                error = "--" + name + " needs a value";
                return false;
            }
            value = args[i + 1];
            args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
            return true;
        }
        if (args[i].starts_with("--" + name + "=")) {
            value = args[i].substr(name.size() + 3);
            args.erase(args.begin() + static_cast<long>(i));
            return true;
        }
    }
    return false;
}

char const* label_colour(std::string const& label)
{
    if (label == "red")
        return "\033[1;31m";
    if (label == "orange")
        return "\033[1;38;5;208m";
    if (label == "yellow")
        return "\033[1;33m";
    if (label == "green")
        return "\033[1;32m";
    if (label == "gray")
        return "\033[1;90m";
    if (label == "blue")
        return "\033[1;34m";
    if (label == "purple")
        return "\033[1;35m";
    return "\033[1;30;47m"; // black: dark text on a light cell, readable on any background
}

bool use_colour()
{
    char const* no_colour = std::getenv("NO_COLOR");
    return ::isatty(1) == 1 && (no_colour == nullptr || no_colour[0] == '\0');
}

// bulkhead net: each running client, its provider and state, and its rules with their counters.
int print_net(json const& body, bool as_json)
{
    json clients = body.value("clients", json::array());
    if (as_json) {
        std::printf("%s\n", clients.dump(2).c_str());
        return 0;
    }
    if (clients.empty())
        std::printf("no running compartment has a network\n");
    for (auto const& client : clients) {
        std::string address = client.value("address", "-");
        std::printf("%s  %s  %s (%s)\n", client.value("name", "?").c_str(), address.c_str(),
                    client.value("network", "?").c_str(), client.value("state", "?").c_str());
        for (auto const& rule : client.value("rules", json::array())) {
            std::string packets = rule.contains("packets") && rule["packets"].is_number()
                                      ? std::to_string(rule["packets"].get<uint64_t>()) + " packets"
                                      : "-";
            std::printf("    %-44s %s\n", rule.value("rule", "?").c_str(), packets.c_str());
        }
    }
    return 0;
}

// A size for people: whole units where exact, else one decimal of the largest unit ("11.8G").
std::string shown_size(uint64_t bytes)
{
    static constexpr char units[] = {'K', 'M', 'G', 'T'};
    double value = static_cast<double>(bytes);
    int unit = -1;
    while (unit < 3 && value >= 1024) {
        value /= 1024;
        ++unit;
    }
    if (unit < 0)
        return std::to_string(bytes) + "B";
    char text[32];
    if (value == static_cast<double>(static_cast<uint64_t>(value)))
        std::snprintf(text, sizeof(text), "%llu%c", static_cast<unsigned long long>(value), units[unit]);
    else
        std::snprintf(text, sizeof(text), "%.1f%c", value, units[unit]);
    return text;
}

int print_ls(json const& body, bool as_json)
{
    if (as_json) {
        json out = {{"generation", body.value("generation", 0)}, {"compartments", body.value("compartments", json::array())},
                    {"draining", body.value("draining", json::array())}};
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    bool colour = use_colour();
    std::printf("%-16s %-8s %-8s %-9s %-10s %-16s %7s %-16s %s\n", "NAME", "LABEL", "BACKEND", "STATE", "TEMPLATE", "MEMORY", "CPU",
        "NETWORK", "TAGS");
    for (auto const& entry : body.value("compartments", json::array())) {
        std::string name = entry.value("name", "?");
        std::string label = entry.value("label", "?");
        std::string memory = "-";
        uint64_t limit = entry.value("memory_limit", uint64_t(0));
        if (entry.contains("memory_bytes") && entry["memory_bytes"].is_number())
            memory = shown_size(entry["memory_bytes"].get<uint64_t>());
        if (limit != 0)
            memory += "/" + shown_size(limit);
        std::string state = entry.value("state", "?");
        if (entry.value("preloaded", false))
            state = "preloaded";
        std::string padded = label + std::string(label.size() < 8 ? 8 - label.size() : 0, ' ');
        // A client's network with its state: "sys-net (connected)", "(provider down)", "(offline)".
        std::string network = entry.value("network", "?");
        std::string network_state = entry.value("network_state", "");
        if (network != "none" && entry.value("state", "") != "stopped" && !network_state.empty())
            network += " (" + network_state + ")";
        else if (network == "none" && network_state == "provider")
            network = "provider";
        // The template it is built from; a disposable: the compartment it was made from.
        std::string templ = entry.value("disposable", false) ? entry.value("template", "?") : entry.value("root_template", "?");
        std::string cpu = "-";
        if (entry.contains("cpu_seconds") && entry["cpu_seconds"].is_number()) {
            char text[32];
            std::snprintf(text, sizeof(text), "%.1fs", entry["cpu_seconds"].get<double>());
            cpu = text;
        }
        std::string tags;
        for (auto const& tag : entry.value("tags", json::array()))
            if (tag.is_string())
                tags += (tags.empty() ? "" : ",") + tag.get<std::string>();
        std::string rest = shown_on(1, templ);
        char line[512];
        std::snprintf(line, sizeof(line), "%-8s %-9s %-10s %-16s %7s %-16s %s", entry.value("backend", "?").c_str(), state.c_str(),
            rest.c_str(), memory.c_str(), cpu.c_str(), network.c_str(), tags.empty() ? "-" : tags.c_str());
        if (colour)
            std::printf("%-16s %s%s\033[0m%s %s\n", name.c_str(), label_colour(label), label.c_str(), padded.substr(label.size()).c_str(), line);
        else
            std::printf("%-16s %s %s\n", name.c_str(), padded.c_str(), line);
    }
    return 0;
}

} // namespace

std::string take_socket_option(std::vector<std::string>& args, std::string& error)
{
    std::string value;
    if (take_option(args, "socket", value, error))
        return value;
    if (take_option(args, "root", value, error))
        return value + "/run/admin.sock";
    if (char const* env = std::getenv("BULKHEAD_SOCKET"); env != nullptr && env[0] != '\0')
        return env;
    return "/run/bulkhead/admin.sock";
}

Result<sys::UniqueFd> connect_broker(std::string const& socket_path)
{
    auto connected = sys::connect_unix(socket_path);
    if (connected.is_error() && (connected.error().code() == EACCES || connected.error().code() == EPERM))
        return Error::from_message("the admin socket " + socket_path + " is root's only: run bulkhead as root (e.g. with sudo)");
    if (connected.is_error())
        return Error::from_message("cannot reach the broker at " + socket_path + ": " + connected.error().message()
            + " (is `bulkhead daemon` running?)");
    return connected;
}

Status send_request(int broker, json const& request, std::span<int const> fds)
{
    return sys::send_record(broker, request.dump(-1, ' ', false, json::error_handler_t::replace), fds);
}

Result<Reply> receive_reply(int broker, size_t max_fds)
{
    auto record = TRY(sys::receive_record(broker, max_reply, max_fds));
    Reply reply;
    if (record.end_of_stream) {
        reply.closed = true;
        return reply;
    }
    reply.body = json::parse(record.bytes.begin(), record.bytes.end(), nullptr, false);
    if (reply.body.is_discarded() || !reply.body.is_object())
        return Error::from_message("the broker sent a malformed reply");
    reply.fds = std::move(record.fds);
    return reply;
}

Result<json> call_broker(std::string const& socket_path, json const& request)
{
    auto broker = TRY(connect_broker(socket_path));
    auto sent = send_request(broker.get(), request);
    auto reply = receive_reply(broker.get(), 0);
    if (sent.is_error() && (reply.is_error() || reply.value().closed))
        return Error::from_message("sending to the broker: " + sent.error().message());
    if (reply.is_error())
        return reply.release_error();
    if (reply.value().closed)
        return Error::from_message("the broker closed the connection");
    return std::move(reply.value().body);
}

int report_failure(json const& body)
{
    std::string message = body.contains("error") && body["error"].is_string() ? body["error"].get<std::string>() : "failed";
    int code = body.contains("exit") && body["exit"].is_number_integer() ? body["exit"].get<int>() : exit_failed;
    // Configuration diagnostics are printed as they are (FILE:LINE:COL: error: ...).
    if (message.find(": error: ") != std::string::npos)
        std::fprintf(stderr, "%s\n", shown_on(2, message).c_str());
    else
        print_error(message);
    return code;
}

int daemon_command(std::vector<std::string> args)
{
    broker::Options options;
    std::string error;
    take_option(args, "config", options.config_path, error);
    take_option(args, "root", options.root, error);
    take_option(args, "socket", options.socket_path, error);
    std::string ask_timeout;
    if (take_option(args, "ask-timeout", ask_timeout, error)) {
        auto seconds = parse_uint(ask_timeout);
        if (seconds.is_error() || seconds.value() == 0 || seconds.value() > 86400)
            error = "--ask-timeout: '" + ask_timeout + "' is not a number of seconds (1 to 86400)";
        else
            options.ask_timeout_ms = static_cast<int>(seconds.value() * 1000);
    }
    std::string slots;
    if (take_option(args, "slots", slots, error)) {
        auto count = parse_uint(slots);
        if (count.is_error() || count.value() < 16 || count.value() > 1024)
            error = "--slots: '" + slots + "' is not a number of compartments (16 to 1024)";
        else
            options.slots = static_cast<uint32_t>(count.value());
    }
    // The audit log's limits (docs/audit.md): when it rotates, how many files it keeps, how much
    // free space it leaves to the state database.
    std::string value;
    if (take_option(args, "audit-file-size", value, error)) {
        auto bytes = parse_size(value);
        if (bytes.is_error() || bytes.value() < 4096)
            error = "--audit-file-size: '" + value + "' is not a size of at least 4K";
        else
            options.audit_limits.file_bytes = bytes.value();
    }
    if (take_option(args, "audit-keep-files", value, error)) {
        auto count = parse_uint(value);
        if (count.is_error() || count.value() > 100000)
            error = "--audit-keep-files: '" + value + "' is not a number of files (0 to 100000)";
        else
            options.audit_limits.keep_files = static_cast<size_t>(count.value());
    }
    if (take_option(args, "state-reserve", value, error)) {
        auto bytes = parse_size(value);
        if (bytes.is_error())
            error = "--state-reserve: '" + value + "' is not a size (e.g. 64M)";
        else
            options.audit_limits.reserve_bytes = bytes.value();
    }
    if (!error.empty() || !args.empty()) {
        print_error(error.empty() ? "daemon: unexpected argument '" + args.front() + "'" : error);
        std::fputs("usage: bulkhead daemon [--config FILE] [--root DIR] [--socket PATH] [--ask-timeout SECONDS] [--slots N]\n"
                   "                       [--audit-file-size SIZE] [--audit-keep-files N] [--state-reserve SIZE]\n", stderr);
        return exit_usage;
    }
    if (::geteuid() != 0) {
        print_error("daemon: the broker runs as root");
        return exit_failed;
    }
    if (!options.config_path.empty()) {
        // Checked before anything starts, so that a broken file exits 2 with its diagnostics.
        auto text = sys::read_file(options.config_path, max_config_file);
        if (text.is_error()) {
            print_error("daemon: " + text.error().message());
            return exit_usage;
        }
        auto parsed = config::parse_system_config(text.value(), options.config_path);
        for (auto const& diagnostic : parsed.errors)
            std::fprintf(stderr, "%s\n", diagnostic.format().c_str());
        if (!parsed.config)
            return exit_usage;
        // Absolute from here on: the policy is found beside it (policy.d).
        char resolved[PATH_MAX];
        if (options.config_path.front() != '/' && ::realpath(options.config_path.c_str(), resolved) != nullptr)
            options.config_path = resolved;
    }
    auto broker = broker::Broker::create(options);
    if (broker.is_error()) {
        print_error("daemon: " + broker.error().message());
        return broker.error().message().find(": error: ") != std::string::npos ? exit_usage : exit_failed;
    }
    if (auto served = broker.value()->serve(); served.is_error()) {
        print_error("daemon: " + served.error().message());
        return exit_failed;
    }
    return 0;
}

int admin_command(std::string const& command, std::vector<std::string> args)
{
    std::string error;
    std::string socket = take_socket_option(args, error);
    if (!error.empty()) {
        print_error(error);
        return exit_usage;
    }
    json request = {{"op", command}};
    bool as_json = false;
    if (command == "ls" || command == "net") {
        for (auto const& arg : args) {
            if (arg != "--json") {
                print_error(command + ": unexpected argument '" + arg + "'\nusage: bulkhead " + command + " [--json]");
                return exit_usage;
            }
            as_json = true;
        }
    } else if (command == "apply" || command == "plan") {
        if (args.size() > 1 || (!args.empty() && args.front().starts_with("-"))) {
            print_error("usage: bulkhead " + command + " [FILE]");
            return exit_usage;
        }
        if (!args.empty()) {
            auto text = sys::read_file(args.front(), max_config_file);
            if (text.is_error()) {
                print_error(command + ": " + text.error().message());
                return exit_usage;
            }
            if (text.value().empty()) {
                print_error(command + ": " + args.front() + " is empty");
                return exit_usage;
            }
            request["config"] = text.value();
            request["file"] = args.front();
            // The policy is policy.d beside the file (the broker falls back to its embedded default).
            char resolved[PATH_MAX];
            if (::realpath(args.front().c_str(), resolved) != nullptr) {
                std::string path = resolved;
                request["policy_dir"] = path.substr(0, path.rfind('/')) + "/policy.d";
            }
        }
    } else if (command == "generations" || command == "config") {
        std::vector<std::string> rest = args;
        if (command == "config") {
            if (rest.empty() || rest.front() != "show") {
                print_error("usage: bulkhead config show [--json]");
                return exit_usage;
            }
            rest.erase(rest.begin());
            request["op"] = "config_show";
        }
        for (auto const& arg : rest) {
            if (arg != "--json") {
                print_error(command + ": unexpected argument '" + arg + "'\nusage: bulkhead " + (command == "config" ? "config show" : command) + " [--json]");
                return exit_usage;
            }
            as_json = true;
        }
    } else if (command == "rollback") {
        if (!args.empty()) {
            print_error("usage: bulkhead rollback");
            return exit_usage;
        }
    } else if (command == "stop" && (args.size() > 1 || (args.size() == 1 && args.front() == "--all"))) {
        // stop NAME... and stop --all: one request each (--all is the broker's, so that it is one moment).
        if (args.size() > 1 && std::find(args.begin(), args.end(), "--all") != args.end()) {
            print_error("usage: bulkhead stop NAME... | bulkhead stop --all");
            return exit_usage;
        }
        int code = 0;
        for (auto const& name : args) {
            if (name != "--all" && name.starts_with("-")) {
                print_error("stop: unexpected option '" + name + "'");
                return exit_usage;
            }
            auto reply = call_broker(socket, name == "--all" ? json {{"op", "stop_all"}} : json {{"op", "stop"}, {"name", name}});
            if (reply.is_error()) {
                print_error(reply.error().message());
                return exit_failed;
            }
            if (!reply.value().value("ok", false))
                code = report_failure(reply.value());
        }
        return code;
    } else {
        if (args.size() != 1 || args.front().starts_with("-")) {
            print_error("usage: bulkhead " + command + (command == "stop" ? " NAME... | bulkhead stop --all" : " NAME"));
            return exit_usage;
        }
        request["name"] = args.front();
    }
    auto broker = connect_broker(socket);
    if (broker.is_error()) {
        print_error(broker.error().message());
        return exit_failed;
    }
    // A broker that refuses the connection has said why before closing: read that first.
    auto sent = send_request(broker.value().get(), request);
    auto reply = receive_reply(broker.value().get(), 0);
    if (sent.is_error() && (reply.is_error() || reply.value().closed)) {
        print_error("sending to the broker: " + sent.error().message());
        return exit_failed;
    }
    if (reply.is_error() || reply.value().closed) {
        print_error(reply.is_error() ? reply.error().message() : "the broker closed the connection");
        return exit_failed;
    }
    json const& body = reply.value().body;
    if (!body.value("ok", false))
        return report_failure(body);
    if (command == "ls")
        return print_ls(body, as_json);
    if (command == "net")
        return print_net(body, as_json);
    if (command == "config") {
        if (as_json)
            std::printf("%s\n", json {{"generation", body.value("generation", 0)}, {"text", body.value("text", "")}}.dump(2).c_str());
        else
            std::printf("# generation %lld\n%s", static_cast<long long>(body.value("generation", 0LL)), body.value("text", "").c_str());
        return 0;
    }
    if (command == "generations") {
        auto list = body.value("generations", json::array());
        if (as_json) {
            std::printf("%s\n", list.dump(2).c_str());
            return 0;
        }
        for (auto const& generation : list) {
            time_t when = static_cast<time_t>(generation.value("applied_at", 0LL));
            char stamp[32] = "?";
            if (tm parts {}; ::localtime_r(&when, &parts) != nullptr)
                std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &parts);
            std::printf("%c %4lld  %s  %s\n", generation.value("current", false) ? '*' : ' ',
                static_cast<long long>(generation.value("id", 0LL)), stamp, shown_on(1, generation.value("source", "")).c_str());
        }
        return 0;
    }
    if (body.contains("changes") && body["changes"].is_array()) {
        for (auto const& line : body["changes"]) {
            if (line.is_string())
                std::printf("%s\n", line.get<std::string>().c_str());
        }
    }
    return 0;
}

} // namespace bulkhead::cli

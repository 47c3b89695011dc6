// The policy language: parsing (with !include and !include-dir) and the small helpers. Evaluation
// and lint are in evaluate.cpp. See policy.hpp and docs/policy.md.
#include "policy/policy.hpp"

#include <algorithm>
#include <cctype>

namespace bulkhead::policy {

std::string_view canonical_service(std::string_view service)
{
    if (service == "qubes.Filecopy")
        return "bulkhead.Filecopy";
    if (service == "qubes.ClipboardPaste")
        return "bulkhead.Clipboard";
    if (service == "qubes.OpenInVM")
        return "bulkhead.OpenInDisposable";
    return service;
}

namespace {

constexpr size_t max_line = 4096;
constexpr size_t max_rules = 100000;
constexpr size_t max_file = 16 << 20;
constexpr size_t max_errors = 100;
constexpr int max_include_depth = 8;
constexpr size_t max_token = 64;

struct Token {
    std::string_view text;
    uint32_t column = 0;
};

std::vector<Token> tokens_of(std::string_view line)
{
    std::vector<Token> tokens;
    size_t i = 0;
    while (i < line.size()) {
        if (line[i] == ' ' || line[i] == '\t') {
            ++i;
            continue;
        }
        if (line[i] == '#')
            break;
        size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '#')
            ++i;
        tokens.push_back({line.substr(start, i - start), static_cast<uint32_t>(start + 1)});
    }
    return tokens;
}

bool all_of(std::string_view text, char const* extra)
{
    return std::all_of(text.begin(), text.end(), [&](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::string_view(extra).find(c) != std::string_view::npos;
    });
}

// The configuration's rule for names: a-z, 0-9 and '-', starting with a letter or digit, at most 32.
bool valid_name(std::string_view name)
{
    if (name.empty() || name.size() > 32 || name.front() == '-')
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

// Shows a token safely in a message.
std::string shown(std::string_view text)
{
    std::string out;
    for (char c : text.substr(0, 80))
        out += (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) ? '?' : c;
    return out + (text.size() > 80 ? "..." : "");
}

std::string directory_of(std::string const& file)
{
    auto slash = file.rfind('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : file.substr(0, slash);
}

std::string resolve(std::string const& including_file, std::string const& path)
{
    return path.starts_with("/") ? path : directory_of(including_file) + "/" + path;
}

class Parser {
public:
    explicit Parser(Reader const& reader) : m_reader(reader) {}

    void parse_text(std::string_view text, std::string const& file, int depth)
    {
        if (text.size() > max_file)
            return error({file, 1, 1}, "the file is larger than 16 MiB");
        uint32_t number = 0;
        size_t start = 0;
        while (start <= text.size() && m_errors.size() < max_errors) {
            size_t end = text.find('\n', start);
            std::string_view line = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
            ++number;
            if (!line.empty() && line.back() == '\r')
                line.remove_suffix(1);
            parse_line(line, {file, number, 1}, depth);
            if (end == std::string_view::npos)
                break;
            start = end + 1;
        }
    }

    void parse_directory(std::string const& dir, Position const& where, int depth)
    {
        if (!m_reader.list_dir)
            return error(where, "cannot read directory " + dir);
        auto names = m_reader.list_dir(dir);
        if (names.is_error())
            return error(where, "cannot read directory " + dir + ": " + names.error().message());
        std::vector<std::string> files;
        for (auto const& name : names.value()) {
            if (name.size() > 7 && name.ends_with(".policy") && !name.starts_with("."))
                files.push_back(name);
        }
        std::sort(files.begin(), files.end());
        for (auto const& name : files)
            include_file(dir + "/" + name, where, depth);
    }

    void include_file(std::string const& path, Position const& where, int depth)
    {
        if (depth > max_include_depth)
            return error(where, "includes nested deeper than " + std::to_string(max_include_depth) + " (" + path + ")");
        if (std::find(m_open.begin(), m_open.end(), path) != m_open.end())
            return error(where, "include cycle: " + path + " includes itself");
        if (!m_reader.read_file)
            return error(where, "cannot read " + path);
        auto text = m_reader.read_file(path);
        if (text.is_error())
            return error(where, "cannot read " + path + ": " + text.error().message());
        m_open.push_back(path);
        parse_text(text.value(), path, depth);
        m_open.pop_back();
    }

    void open(std::string const& file) { m_open.push_back(file); }

    Result<Policy> finish()
    {
        if (!m_errors.empty()) {
            std::string message;
            for (auto const& diagnostic : m_errors) {
                if (!message.empty())
                    message += "\n";
                message += diagnostic.format();
            }
            return Error::from_message(message);
        }
        m_policy.compile();
        return std::move(m_policy);
    }

private:
    void error(Position where, std::string message)
    {
        if (m_errors.size() < max_errors)
            m_errors.push_back({std::move(where), std::move(message)});
    }

    void parse_line(std::string_view line, Position where, int depth)
    {
        if (line.size() > max_line)
            return error(where, "line longer than " + std::to_string(max_line) + " bytes");
        for (size_t i = 0; i < line.size(); ++i) {
            auto byte = static_cast<unsigned char>(line[i]);
            if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
                where.column = static_cast<uint32_t>(i + 1);
                return error(where, "control character in the line");
            }
        }
        auto tokens = tokens_of(line);
        if (tokens.empty())
            return;
        auto at = [&](Token const& token) { return Position {where.file, where.line, token.column}; };
        if (tokens[0].text.starts_with("!")) {
            if (tokens[0].text != "!include" && tokens[0].text != "!include-dir")
                return error(at(tokens[0]), "unknown directive '" + shown(tokens[0].text) + "' (expected !include or !include-dir)");
            if (tokens.size() != 2)
                return error(at(tokens[0]), std::string(tokens[0].text) + " takes one path");
            std::string path = resolve(where.file, std::string(tokens[1].text));
            if (tokens[0].text == "!include")
                return include_file(path, at(tokens[1]), depth + 1);
            if (depth + 1 > max_include_depth)
                return error(at(tokens[1]), "includes nested deeper than " + std::to_string(max_include_depth));
            return parse_directory(path, at(tokens[1]), depth + 1);
        }
        if (tokens.size() < 5)
            return error(at(tokens.back()), "expected SERVICE ARG SOURCE TARGET ACTION [PARAMS], got " + std::to_string(tokens.size()) + " field"
                    + (tokens.size() == 1 ? "" : "s"));
        if (m_policy.rules.size() >= max_rules)
            return error(at(tokens[0]), "more than " + std::to_string(max_rules) + " rules");
        Rule rule;
        rule.where = at(tokens[0]);
        size_t errors_before = m_errors.size();
        parse_service(tokens[0], rule, at(tokens[0]));
        parse_arg(tokens[1], rule, at(tokens[1]));
        parse_subject(tokens[2], rule.source, false, at(tokens[2]));
        parse_subject(tokens[3], rule.target, true, at(tokens[3]));
        parse_action(tokens[4], rule, at(tokens[4]));
        for (size_t i = 5; i < tokens.size(); ++i)
            parse_param(tokens[i], rule, at(tokens[i]));
        if (rule.params.default_target && rule.action != Action::Ask)
            error(at(tokens[4]), "default_target= is only for ask");
        if (rule.params.target && rule.action == Action::Deny)
            error(at(tokens[4]), "target= is not for deny");
        if (m_errors.size() == errors_before)
            m_policy.rules.push_back(std::move(rule));
    }

    void parse_service(Token const& token, Rule& rule, Position const& where)
    {
        rule.service = std::string(canonical_service(token.text));
        if (rule.service != token.text)
            rule.written_service = std::string(token.text);
        if (token.text == "*")
            return;
        if (token.text.size() > max_token || !all_of(token.text, "._-"))
            error(where, "service '" + shown(token.text) + "': expected * or a name of letters, digits, '.', '_' and '-' (at most 64)");
    }

    void parse_arg(Token const& token, Rule& rule, Position const& where)
    {
        if (token.text == "*") {
            rule.arg_match = ArgMatch::Any;
            return;
        }
        if (token.text == "+") {
            rule.arg_match = ArgMatch::Empty;
            return;
        }
        if (!token.text.starts_with("+")) {
            error(where, "argument '" + shown(token.text) + "': expected * (any), + (none) or +VALUE");
            return;
        }
        std::string_view value = token.text.substr(1);
        if (value.size() > max_token || !all_of(value, "._-:@"))
            error(where, "argument '" + shown(token.text) + "': VALUE may have letters, digits, '.', '_', '-', ':' and '@' (at most 64)");
        rule.arg_match = ArgMatch::Exact;
        rule.arg = std::string(value);
    }

    void parse_subject(Token const& token, Subject& subject, bool target, Position const& where)
    {
        std::string_view text = token.text;
        char const* what = target ? "target" : "source";
        auto name_after = [&](std::string_view prefix, SubjectKind kind) {
            std::string_view value = text.substr(prefix.size());
            if (!valid_name(value))
                error(where, std::string(what) + " '" + shown(text) + "': '" + shown(value) + "' is not a valid name");
            subject = {kind, std::string(value)};
        };
        if (text == "@any" || text == "@anyvm")
            subject = {SubjectKind::Any, {}};
        else if (text == "@disposable" || text == "@dispvm")
            subject = {SubjectKind::Disposable, {}};
        else if (text.starts_with("@disposable:"))
            name_after("@disposable:", SubjectKind::DisposableOf);
        else if (text.starts_with("@dispvm:"))
            name_after("@dispvm:", SubjectKind::DisposableOf);
        else if (text.starts_with("@tag:"))
            name_after("@tag:", SubjectKind::Tag);
        else if (text == "@host" || text == "@adminvm" || text == "@type:AdminVM")
            subject = {SubjectKind::Host, {}};
        else if (text == "@default") {
            if (!target)
                error(where, "source '@default': @default is only a target");
            subject = {SubjectKind::Default, {}};
        } else if (text.starts_with("@"))
            error(where, std::string(what) + " '" + shown(text)
                    + "': expected a compartment, @any, @tag:NAME, @disposable, @disposable:TEMPLATE, @host" + (target ? " or @default" : ""));
        else
            name_after("", SubjectKind::Name);
    }

    void parse_action(Token const& token, Rule& rule, Position const& where)
    {
        if (token.text == "allow")
            rule.action = Action::Allow;
        else if (token.text == "deny")
            rule.action = Action::Deny;
        else if (token.text == "ask")
            rule.action = Action::Ask;
        else
            error(where, "expected an action (allow, deny or ask), got '" + shown(token.text) + "'");
    }

    void parse_param(Token const& token, Rule& rule, Position const& where)
    {
        auto equals = token.text.find('=');
        if (equals == std::string_view::npos || equals == 0)
            return error(where, "parameter '" + shown(token.text) + "': expected KEY=VALUE");
        std::string_view key = token.text.substr(0, equals);
        std::string value(token.text.substr(equals + 1));
        auto set_name = [&](std::optional<std::string>& slot, bool allow_disposable) {
            if (slot)
                return error(where, "parameter " + std::string(key) + " given twice");
            bool disposable = allow_disposable && (value == "@disposable" || value == "@dispvm" || value.starts_with("@disposable:") || value.starts_with("@dispvm:"));
            if (!disposable && !valid_name(value))
                return error(where, "parameter " + std::string(key) + "='" + shown(value) + "': expected a compartment name");
            slot = value;
        };
        auto set_flag = [&](std::optional<bool>& slot) {
            if (slot)
                return error(where, "parameter " + std::string(key) + " given twice");
            if (value != "yes" && value != "no")
                return error(where, "parameter " + std::string(key) + "='" + shown(value) + "': expected yes or no");
            slot = value == "yes";
        };
        if (key == "target")
            set_name(rule.params.target, true);
        else if (key == "default_target")
            set_name(rule.params.default_target, true);
        else if (key == "user") {
            if (rule.params.user)
                return error(where, "parameter user given twice");
            if (value != "user" && value != "root")
                return error(where, "parameter user='" + shown(value) + "': expected user or root");
            rule.params.user = value;
        } else if (key == "notify")
            set_flag(rule.params.notify);
        else if (key == "autostart")
            set_flag(rule.params.autostart);
        else
            error(where, "unknown parameter '" + shown(key) + "' (expected target, default_target, user, notify or autostart)");
    }

    Reader const& m_reader;
    Policy m_policy;
    std::vector<Diagnostic> m_errors;
    std::vector<std::string> m_open; // files being read, for cycles
};

} // namespace

std::string Position::file_line() const
{
    return file + ":" + std::to_string(line);
}

std::string Diagnostic::format(std::string_view severity) const
{
    return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": " + std::string(severity) + ": " + message;
}

std::string_view action_name(Action action)
{
    switch (action) {
    case Action::Allow:
        return "allow";
    case Action::Ask:
        return "ask";
    case Action::Deny:
        break;
    }
    return "deny";
}

std::string Subject::text() const
{
    switch (kind) {
    case SubjectKind::Name:
        return value;
    case SubjectKind::Any:
        return "@any";
    case SubjectKind::Tag:
        return "@tag:" + value;
    case SubjectKind::Disposable:
        return "@disposable";
    case SubjectKind::DisposableOf:
        return "@disposable:" + value;
    case SubjectKind::Host:
        return "@host";
    case SubjectKind::Default:
        break;
    }
    return "@default";
}

void Policy::compile()
{
    by_service.clear();
    any_service.clear();
    for (uint32_t i = 0; i < rules.size(); ++i) {
        if (rules[i].service == "*")
            any_service.push_back(i);
        else
            by_service[rules[i].service].push_back(i);
    }
}

Result<Policy> parse(std::string_view text, std::string const& file, Reader const& reader)
{
    Parser parser(reader);
    parser.open(file);
    parser.parse_text(text, file, 0);
    return parser.finish();
}

Result<Policy> parse_dir(std::string const& dir, Reader const& reader)
{
    Parser parser(reader);
    parser.parse_directory(dir, {dir, 1, 1}, 0);
    return parser.finish();
}

std::string_view default_policy_text()
{
    return R"(# bulkhead's embedded default policy: default deny. The first matching rule decides.
# SERVICE                  ARG  SOURCE  TARGET        ACTION
bulkhead.Filecopy          *    @any    @any          ask
bulkhead.Clipboard         *    @any    @any          ask
bulkhead.OpenInDisposable  *    @any    @disposable   allow
*                          *    @any    @any          deny
)";
}

} // namespace bulkhead::policy

// The policy language of DESIGN.md: parse, lint, compile, evaluate. Pure: never touches the OS
// (files are read through the Reader the caller passes in, so that `!include` stays testable).
//
//   # SERVICE          ARG     SOURCE        TARGET        ACTION  [PARAMS]
//   bulkhead.Filecopy  *       @tag:work     @tag:work     allow
//   my.GpgSign         +work   work          vault         allow   notify=yes
//
// The first matching rule decides; no match is a deny. A policy with any error is invalid as a
// whole: parse() returns every error (FILE:LINE:COL: error: MESSAGE) and no Policy.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bulkhead::policy {

struct Position {
    std::string file;
    uint32_t line = 0;
    uint32_t column = 0;
    std::string file_line() const; // "FILE:LINE"
};

struct Diagnostic {
    Position where;
    std::string message;
    std::string format(std::string_view severity = "error") const; // FILE:LINE:COL: SEVERITY: MESSAGE
};

enum class Action { Allow, Deny, Ask };
std::string_view action_name(Action action);

enum class ArgMatch { Any, Empty, Exact }; // `*`, `+`, `+VALUE`

// A SOURCE or TARGET of a rule. Qubes spellings are normalised when parsed: @anyvm -> Any,
// @dispvm -> Disposable, @dispvm:T -> DisposableOf, @adminvm -> Host.
enum class SubjectKind { Name, Any, Tag, Disposable, DisposableOf, Host, Default };
struct Subject {
    SubjectKind kind = SubjectKind::Any;
    std::string value; // Name: the compartment; Tag: the tag; DisposableOf: the template
    std::string text() const; // as a policy would spell it: "work", "@tag:work", "@disposable:untrusted"
};

struct Params {
    std::optional<std::string> target;         // target=NAME: the call goes to NAME instead
    std::optional<std::string> default_target; // default_target=NAME: offered by ask
    std::optional<std::string> user;           // user=NAME: the service runs as this user
    std::optional<bool> notify;                // notify=yes|no
    std::optional<bool> autostart;             // autostart=yes|no
};

struct Rule {
    std::string service; // "*" = any service
    ArgMatch arg_match = ArgMatch::Any;
    std::string arg;     // Exact: the value after '+'
    Subject source;
    Subject target;
    Action action = Action::Deny;
    Params params;
    Position where;      // the rule's first column
    std::string written_service; // a Qubes name the rule was written with (read as `service`), else ""
};

// The built-in a Qubes service name stands for (DESIGN.md "Qubes names"): qubes.Filecopy,
// qubes.ClipboardPaste, qubes.OpenInVM; any other name is returned as it is.
std::string_view canonical_service(std::string_view service);

// A compiled policy: the rules in order plus an index by service, so that evaluation touches only
// the rules that can match (a rule with service `*` is in every bucket, order preserved).
struct Policy {
    std::vector<Rule> rules;
    std::unordered_map<std::string, std::vector<uint32_t>> by_service; // service -> rule indices, ascending
    std::vector<uint32_t> any_service;                                  // rules with service `*`
    void compile();                                                     // rebuilds the index from `rules`
};

// Reads what `!include FILE` and `!include-dir DIR` name, and the policy directory itself.
struct Reader {
    std::function<Result<std::string>(std::string const& path)> read_file;
    // Names (not paths) of the entries of DIR; the parser keeps those ending in ".policy", sorted.
    std::function<Result<std::vector<std::string>>(std::string const& dir)> list_dir;
};

// Parses one file's text. `file` is its path: errors name it, and relative includes are resolved
// against its directory. Includes are followed through `reader`, at most 8 deep, never in a cycle.
Result<Policy> parse(std::string_view text, std::string const& file, Reader const& reader);
// Every *.policy file of `dir` in lexical order, as one policy. A missing directory is an error.
Result<Policy> parse_dir(std::string const& dir, Reader const& reader);
// On error, the Error's message is every diagnostic, one per line (FILE:LINE:COL: error: MESSAGE).

// What a compartment is, as far as matching goes.
struct Party {
    std::string name;              // "" for the host
    std::vector<std::string> tags;
    bool host = false;
    bool disposable = false;       // a disposable compartment (disp-N)
    std::string template_name;     // disposables: the template they were made from
};

// One call to decide. The target is what the caller named: a compartment (`target` filled in),
// nothing (@default), a new disposable (@disposable, or @disposable:T), or the host (@host).
enum class TargetKind { Compartment, Default, NewDisposable, Host };
struct Request {
    std::string service;
    std::string arg;               // "" = no argument
    Party source;
    TargetKind target_kind = TargetKind::Compartment;
    Party target;           // Compartment: the named compartment
    std::string disposable_template; // NewDisposable: the template (already resolved to the default if none was named)
};

struct Decision {
    Action action = Action::Deny;
    std::optional<uint32_t> rule;  // index into Policy::rules; none: no rule matched (deny)
    Params params;                 // the deciding rule's parameters
};

// "FILE:LINE" of the deciding rule, or "no matching rule".
std::string decision_where(Policy const& policy, Decision const& decision);

// The decision for `request`. Last word: deny.
Decision evaluate(Policy const& policy, Request const& request);

// Every rule considered, in order, with why it did or did not match ("service is X, not Y",
// "source work is not tagged @tag:net", "matches"), for `policy check --explain`.
struct Step {
    uint32_t rule = 0;
    bool matched = false;
    std::string why;
};
Decision explain(Policy const& policy, Request const& request, std::vector<Step>& steps);

// Warnings: rules that can never match because an earlier rule matches everything they would, and
// compartment names, tags and templates that the system does not have.
struct Known {
    std::vector<std::string> compartments;
    std::vector<std::string> tags;
    std::vector<std::string> disposable_templates;
};
std::vector<Diagnostic> lint(Policy const& policy, Known const& known);

// The embedded default policy (used when the configuration has no policy.d): default deny, with
// only what the demo needs.
std::string_view default_policy_text();

} // namespace bulkhead::policy

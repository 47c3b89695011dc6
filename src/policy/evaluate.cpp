// Evaluation (first match decides, no match denies), explanation, and lint. Pure.
#include "policy/policy.hpp"

#include <algorithm>

namespace bulkhead::policy {

namespace {

bool has_tag(Party const& party, std::string const& tag)
{
    return std::find(party.tags.begin(), party.tags.end(), tag) != party.tags.end();
}

// Why `subject` does not match the request's source (empty: it matches).
std::string source_mismatch(Subject const& subject, Party const& source)
{
    std::string const who = source.host ? "the host" : source.name;
    switch (subject.kind) {
    case SubjectKind::Name:
        return !source.host && source.name == subject.value ? "" : "source is " + who + ", not " + subject.value;
    case SubjectKind::Any:
        return source.host ? "source is the host, not a compartment (@any)" : "";
    case SubjectKind::Tag:
        return !source.host && has_tag(source, subject.value) ? "" : "source " + who + " is not tagged " + subject.value;
    case SubjectKind::Disposable:
        return source.disposable ? "" : "source " + who + " is not a disposable";
    case SubjectKind::DisposableOf:
        return source.disposable && source.template_name == subject.value ? "" : "source " + who + " is not a disposable of " + subject.value;
    case SubjectKind::Host:
        return source.host ? "" : "source is " + who + ", not the host";
    case SubjectKind::Default:
        break;
    }
    return "@default is never a source";
}

std::string target_text(Request const& request)
{
    switch (request.target_kind) {
    case TargetKind::Compartment:
        return request.target.name;
    case TargetKind::Default:
        return "@default";
    case TargetKind::NewDisposable:
        return "a new disposable of " + request.disposable_template;
    case TargetKind::Host:
        break;
    }
    return "the host";
}

std::string target_mismatch(Subject const& subject, Request const& request)
{
    Party const& target = request.target;
    bool compartment = request.target_kind == TargetKind::Compartment;
    bool fresh = request.target_kind == TargetKind::NewDisposable;
    std::string const what = target_text(request);
    switch (subject.kind) {
    case SubjectKind::Name:
        return compartment && target.name == subject.value ? "" : "target is " + what + ", not " + subject.value;
    case SubjectKind::Any:
        return compartment || fresh ? "" : "target is " + what + " (@any is a compartment or a new disposable)";
    case SubjectKind::Tag:
        return compartment && has_tag(target, subject.value) ? "" : "target " + what + " is not tagged " + subject.value;
    // A disposable target is always one made for this call: an existing disposable, even one of
    // the right template, is never reached through @disposable.
    case SubjectKind::Disposable:
        return fresh ? "" : "target " + what + " is not a new disposable";
    case SubjectKind::DisposableOf:
        if (fresh && request.disposable_template == subject.value)
            return "";
        return "target " + what + " is not a new disposable of " + subject.value;
    case SubjectKind::Host:
        return request.target_kind == TargetKind::Host ? "" : "target is " + what + ", not the host";
    case SubjectKind::Default:
        break;
    }
    return request.target_kind == TargetKind::Default ? "" : "target is " + what + ", not @default";
}

std::string arg_mismatch(Rule const& rule, std::string const& arg)
{
    switch (rule.arg_match) {
    case ArgMatch::Any:
        return "";
    case ArgMatch::Empty:
        return arg.empty() ? "" : "argument is '" + arg + "', not empty (+)";
    case ArgMatch::Exact:
        break;
    }
    return arg == rule.arg ? "" : "argument is '" + (arg.empty() ? std::string("(none)") : arg) + "', not +" + rule.arg;
}

// Why `rule` does not match `request`, or "" when it does.
std::string mismatch(Rule const& rule, Request const& request)
{
    if (rule.service != "*" && rule.service != request.service)
        return "service is " + request.service + ", not " + rule.service;
    if (auto why = arg_mismatch(rule, request.arg); !why.empty())
        return why;
    if (auto why = source_mismatch(rule.source, request.source); !why.empty())
        return why;
    return target_mismatch(rule.target, request);
}

// The same answers as mismatch(), without building the reasons: this is the hot path.
bool source_matches(Subject const& subject, Party const& source)
{
    switch (subject.kind) {
    case SubjectKind::Name:
        return !source.host && source.name == subject.value;
    case SubjectKind::Any:
        return !source.host;
    case SubjectKind::Tag:
        return !source.host && has_tag(source, subject.value);
    case SubjectKind::Disposable:
        return source.disposable;
    case SubjectKind::DisposableOf:
        return source.disposable && source.template_name == subject.value;
    case SubjectKind::Host:
        return source.host;
    case SubjectKind::Default:
        break;
    }
    return false;
}

bool target_matches(Subject const& subject, Request const& request)
{
    bool compartment = request.target_kind == TargetKind::Compartment;
    bool fresh = request.target_kind == TargetKind::NewDisposable;
    Party const& target = request.target;
    switch (subject.kind) {
    case SubjectKind::Name:
        return compartment && target.name == subject.value;
    case SubjectKind::Any:
        return compartment || fresh;
    case SubjectKind::Tag:
        return compartment && has_tag(target, subject.value);
    case SubjectKind::Disposable:
        return fresh;
    case SubjectKind::DisposableOf:
        return fresh && request.disposable_template == subject.value;
    case SubjectKind::Host:
        return request.target_kind == TargetKind::Host;
    case SubjectKind::Default:
        break;
    }
    return request.target_kind == TargetKind::Default;
}

bool matches(Rule const& rule, Request const& request)
{
    if (rule.service != "*" && rule.service != request.service)
        return false;
    if (rule.arg_match == ArgMatch::Empty ? !request.arg.empty() : rule.arg_match == ArgMatch::Exact && request.arg != rule.arg)
        return false;
    return source_matches(rule.source, request.source) && target_matches(rule.target, request);
}

Decision decided_by(Policy const& policy, uint32_t index)
{
    Decision decision;
    decision.action = policy.rules[index].action;
    decision.rule = index;
    decision.params = policy.rules[index].params;
    return decision;
}

// Does `wide` match every request `narrow` matches? Conservative: false when unsure.
bool covers(Subject const& wide, Subject const& narrow, bool target)
{
    if (wide.kind == narrow.kind && wide.value == narrow.value)
        return true;
    switch (wide.kind) {
    case SubjectKind::Any:
        // @any covers compartments of every kind, and (as a target) new disposables too.
        return narrow.kind == SubjectKind::Name || narrow.kind == SubjectKind::Tag || narrow.kind == SubjectKind::DisposableOf
            || narrow.kind == SubjectKind::Disposable || (target && narrow.kind == SubjectKind::Any);
    case SubjectKind::Disposable:
        return narrow.kind == SubjectKind::DisposableOf;
    default:
        return false;
    }
}

bool shadows(Rule const& earlier, Rule const& later)
{
    if (earlier.service != "*" && earlier.service != later.service)
        return false;
    bool arg = earlier.arg_match == ArgMatch::Any || (earlier.arg_match == later.arg_match && earlier.arg == later.arg);
    return arg && covers(earlier.source, later.source, false) && covers(earlier.target, later.target, true);
}

} // namespace

std::string decision_where(Policy const& policy, Decision const& decision)
{
    if (!decision.rule || *decision.rule >= policy.rules.size())
        return "no matching rule";
    return policy.rules[*decision.rule].where.file_line();
}

Decision evaluate(Policy const& policy, Request const& request)
{
    // Two ascending lists (this service's rules, the `*` rules): the first match in file order wins.
    static std::vector<uint32_t> const none;
    auto found = policy.by_service.find(request.service);
    auto const& named = found == policy.by_service.end() ? none : found->second;
    auto const& any = policy.any_service;
    size_t i = 0, j = 0;
    while (i < named.size() || j < any.size()) {
        uint32_t index = (j >= any.size() || (i < named.size() && named[i] < any[j])) ? named[i++] : any[j++];
        if (matches(policy.rules[index], request))
            return decided_by(policy, index);
    }
    return Decision {}; // the last word: deny
}

Decision explain(Policy const& policy, Request const& request, std::vector<Step>& steps)
{
    steps.clear();
    for (uint32_t index = 0; index < policy.rules.size(); ++index) {
        std::string why = mismatch(policy.rules[index], request);
        if (why.empty()) {
            steps.push_back({index, true, std::string(action_name(policy.rules[index].action))});
            return decided_by(policy, index);
        }
        steps.push_back({index, false, std::move(why)});
    }
    return Decision {};
}

std::vector<Diagnostic> lint(Policy const& policy, Known const& known)
{
    std::vector<Diagnostic> warnings;
    auto known_in = [](std::vector<std::string> const& list, std::string const& name) {
        return std::find(list.begin(), list.end(), name) != list.end();
    };
    auto check_subject = [&](Rule const& rule, Subject const& subject, char const* what) {
        if (subject.kind == SubjectKind::Name && !known_in(known.compartments, subject.value))
            warnings.push_back({rule.where, std::string(what) + " '" + subject.value + "' is not a compartment of the system"});
        if (subject.kind == SubjectKind::Tag && !known_in(known.tags, subject.value))
            warnings.push_back({rule.where, std::string(what) + " @tag:" + subject.value + ": no compartment has this tag"});
        if (subject.kind == SubjectKind::DisposableOf && !known_in(known.disposable_templates, subject.value))
            warnings.push_back({rule.where, std::string(what) + " @disposable:" + subject.value + ": not a disposable template of the system"});
    };
    for (size_t i = 0; i < policy.rules.size(); ++i) {
        Rule const& rule = policy.rules[i];
        if (!rule.written_service.empty())
            warnings.push_back({rule.where, "service '" + rule.written_service + "' is read as '" + rule.service + "' (a Qubes name)"});
        for (size_t k = 0; k < i; ++k) {
            if (shadows(policy.rules[k], rule)) {
                warnings.push_back({rule.where, "never matches: rule " + policy.rules[k].where.file_line() + " matches every call this one would"});
                break;
            }
        }
        check_subject(rule, rule.source, "source");
        check_subject(rule, rule.target, "target");
        for (auto const* param : {&rule.params.target, &rule.params.default_target}) {
            if (*param && !(*param)->starts_with("@") && !known_in(known.compartments, **param))
                warnings.push_back({rule.where, "parameter names '" + **param + "', which is not a compartment of the system"});
        }
    }
    return warnings;
}

} // namespace bulkhead::policy

// Repeated denials counted per caller and window: see audit_aggregate.hpp and docs/audit.md.
#include "broker/audit_aggregate.hpp"

#include <algorithm>
#include <cstdio>

namespace bulkhead::audit {

bool DenialAggregator::same_kind(Record const& a, Record const& b)
{
    return a.caller == b.caller && a.target == b.target && a.service == b.service && a.arg == b.arg && a.rule == b.rule
        && a.detail == b.detail && a.kind == b.kind;
}

std::optional<Record> DenialAggregator::summary(Window const& window, bool others) const
{
    if (window.repeats == 0)
        return std::nullopt;
    char span[32];
    std::snprintf(span, sizeof(span), "%.1f", static_cast<double>(window.last_ms - window.start_ms) / 1000);
    std::string const count = std::to_string(window.repeats);
    Record out {.kind = window.first.kind, .caller = window.first.caller, .verdict = "deny"};
    if (others) {
        out.target = "*";
        out.service = "*";
        out.detail = "denied " + count + " more " + (window.repeats == 1 ? "call" : "calls")
            + " of other kinds (targets, services, arguments) in " + span + " s";
        return out;
    }
    out.target = window.first.target;
    out.service = window.first.service;
    out.arg = window.first.arg;
    out.rule = window.first.rule;
    out.detail = (window.first.detail.empty() ? "" : window.first.detail + "; ") + "denied " + count + " more "
        + (window.repeats == 1 ? "time" : "times") + " in " + span + " s";
    return out;
}

void DenialAggregator::close_ended(Caller& caller, int64_t now_ms, std::vector<Record>& out) const
{
    for (auto kind = caller.kinds.begin(); kind != caller.kinds.end();) {
        if (!ended(*kind, now_ms)) {
            ++kind;
            continue;
        }
        if (auto said = summary(*kind, false))
            out.push_back(std::move(*said));
        kind = caller.kinds.erase(kind);
    }
    if (caller.others && ended(*caller.others, now_ms)) {
        if (auto said = summary(*caller.others, true))
            out.push_back(std::move(*said));
        caller.others.reset();
    }
}

std::vector<Record> DenialAggregator::admit(Record const& denial, int64_t now_ms)
{
    std::vector<Record> out;
    Caller& caller = m_callers[denial.caller];
    // Windows that ended (the timer has not come yet) are summed up first, and make room.
    close_ended(caller, now_ms, out);
    auto kind = std::find_if(caller.kinds.begin(), caller.kinds.end(), [&](Window const& w) { return same_kind(w.first, denial); });
    if (kind != caller.kinds.end()) {
        ++kind->repeats;
        kind->last_ms = now_ms;
        return out;
    }
    if (caller.kinds.size() >= m_kinds_per_caller) {
        // The first of the others is counted too: only the kinds kept apart are written.
        if (!caller.others)
            caller.others = Window {denial, now_ms, now_ms, 0};
        ++caller.others->repeats;
        caller.others->last_ms = now_ms;
        return out;
    }
    caller.kinds.push_back(Window {denial, now_ms, now_ms, 0});
    out.push_back(denial);
    return out;
}

std::vector<Record> DenialAggregator::take_due(int64_t now_ms)
{
    std::vector<Record> out;
    for (auto it = m_callers.begin(); it != m_callers.end();) {
        close_ended(it->second, now_ms, out);
        it = it->second.kinds.empty() && !it->second.others ? m_callers.erase(it) : std::next(it);
    }
    return out;
}

std::vector<Record> DenialAggregator::take_caller(std::string const& name)
{
    std::vector<Record> out;
    auto found = m_callers.find(name);
    if (found == m_callers.end())
        return out;
    for (auto const& kind : found->second.kinds) {
        if (auto said = summary(kind, false))
            out.push_back(std::move(*said));
    }
    if (found->second.others) {
        if (auto said = summary(*found->second.others, true))
            out.push_back(std::move(*said));
    }
    m_callers.erase(found);
    return out;
}

std::vector<Record> DenialAggregator::take_all()
{
    std::vector<Record> out;
    while (!m_callers.empty()) {
        auto taken = take_caller(m_callers.begin()->first);
        out.insert(out.end(), taken.begin(), taken.end());
    }
    return out;
}

std::optional<int64_t> DenialAggregator::next_due() const
{
    std::optional<int64_t> due;
    auto consider = [&](Window const& window) {
        if (window.repeats > 0)
            due = std::min(due.value_or(window.start_ms + m_window_ms), window.start_ms + m_window_ms);
    };
    for (auto const& [name, caller] : m_callers) {
        for (auto const& kind : caller.kinds)
            consider(kind);
        if (caller.others)
            consider(*caller.others);
    }
    return due;
}

} // namespace bulkhead::audit

// Repeated denials, counted instead of written one by one, so that a compartment hammering calls
// the policy denies grows the audit log by a few records per window, not one per call.
//
// The first denial of a kind (caller, target, service, arg, rule, detail) is written; the same
// denial again within `window_ms` of it is only counted; when the window ends, or before anything
// else is written for that caller, one summary record says how many more there were ("denied 4123
// more times in 9.8 s"). A caller gets at most `kinds_per_caller` kinds per window; denials of
// further kinds are counted together in one summary (varying the argument cannot undo the
// counting). Pure: the broker feeds it records and the monotonic time, and writes what it returns.
#pragma once

#include "broker/audit.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bulkhead::audit {

class DenialAggregator {
public:
    static constexpr int64_t default_window_ms = 10000;
    static constexpr size_t default_kinds_per_caller = 8;

    explicit DenialAggregator(int64_t window_ms = default_window_ms, size_t kinds_per_caller = default_kinds_per_caller)
        : m_window_ms(window_ms), m_kinds_per_caller(kinds_per_caller)
    {
    }

    // A denial at `now_ms`: the records to write now, in order (a summary of a window of its kind
    // that has ended, then the denial itself), or none: it was counted.
    std::vector<Record> admit(Record const& denial, int64_t now_ms);
    // Summaries of the windows that ended by `now_ms` (those windows are closed).
    std::vector<Record> take_due(int64_t now_ms);
    // Summaries of every open window of `caller`, closed now (before another record of its).
    std::vector<Record> take_caller(std::string const& caller);
    // Summaries of every open window (the broker is stopping).
    std::vector<Record> take_all();
    // When the first window with something to say ends; nullopt: none has.
    std::optional<int64_t> next_due() const;

private:
    struct Window {
        Record first;     // the denial written when it opened (fields only)
        int64_t start_ms = 0;
        int64_t last_ms = 0;
        uint64_t repeats = 0;
    };
    struct Caller {
        std::vector<Window> kinds;
        std::optional<Window> others; // denials of kinds past kinds_per_caller
    };
    static bool same_kind(Record const& a, Record const& b);
    std::optional<Record> summary(Window const& window, bool others) const;
    // Closes the caller's windows that ended by `now_ms`, their summaries appended to `out`.
    void close_ended(Caller& caller, int64_t now_ms, std::vector<Record>& out) const;
    bool ended(Window const& window, int64_t now_ms) const { return now_ms - window.start_ms >= m_window_ms; }

    int64_t m_window_ms;
    size_t m_kinds_per_caller;
    std::map<std::string, Caller> m_callers;
};

} // namespace bulkhead::audit

// What `apply` would change: the difference between the applied and the desired configuration,
// given which compartments are running. Pure, so that every case is unit-tested.
#pragma once

#include "config/config.hpp"

#include <set>
#include <string>
#include <vector>

namespace bulkhead::broker {

enum class ChangeKind { Add, Remove, Modify };

struct Change {
    ChangeKind kind = ChangeKind::Add;
    std::string name;
    std::vector<std::string> details; // "memory 1G -> 2G"
    bool needs_restart = false;       // a running compartment must restart to take the change
};

struct Plan {
    std::vector<Change> changes;
    std::vector<std::string> other;   // system-wide changes: default disposable, templates, volumes
    std::vector<std::string> stop;    // running compartments that go away
    std::vector<std::string> restart; // running compartments whose definition changed
    std::vector<std::string> start;   // autostart compartments that are not running
    bool empty() const { return changes.empty() && other.empty() && stop.empty() && restart.empty() && start.empty(); }
    // One line per change, for `bulkhead plan` and `apply`.
    std::vector<std::string> describe() const;
};

// `current` is null before the first apply. `running` holds the names of running persistent
// compartments (disposables are not part of a configuration).
Plan make_plan(config::SystemConfig const* current, config::SystemConfig const& desired, std::set<std::string> const& running);

} // namespace bulkhead::broker

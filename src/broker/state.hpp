// The broker's state database (SQLite, WAL) at STATE/bulkhead.db: applied generations of the
// configuration, the host id slot of every compartment, and the compartments that are running,
// so that a restarted broker can find and reattach to them.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

struct sqlite3;

namespace bulkhead::broker {

struct Generation {
    int64_t id = 0;
    int64_t applied_at = 0; // unix seconds
    std::string source;     // file name it came from, or "embedded default"
    std::string config;     // the configuration text as applied
    std::string policy;     // the policy as applied with it (Broker::read_policy's snapshot); "" in
                            // generations from before policies were kept
};

struct RunningRecord {
    std::string name;
    pid_t pid = 0;              // host pid of its PID 1
    uint64_t start_time = 0;    // of that pid (field 22 of /proc/PID/stat): guards against pid reuse
    uint32_t slot = 0;
    bool disposable = false;
    std::string template_name;  // disposables: the compartment they were made from
    std::string owner;          // disposables: whom it was made for (a compartment, "@host"); "" while pooled
    std::string account;        // disposables: whose allowance of live disposables it uses
    uint32_t main_run = 0;      // disposables: the run whose end destroys it (0: none yet)
};

class StateDb {
public:
    static Result<StateDb> open(std::string const& path);
    StateDb(StateDb&&) noexcept;
    StateDb& operator=(StateDb&&) noexcept;
    ~StateDb();

    Result<std::optional<Generation>> current_generation();
    Result<std::optional<Generation>> generation_before(int64_t id);
    Result<int64_t> add_generation(std::string const& source, std::string const& config, std::string const& policy);
    Status set_current_generation(int64_t id);
    Result<std::vector<Generation>> generations();

    // The slot of `name`, allocated on first use (lowest free below `limit`).
    Result<uint32_t> slot_for(std::string const& name, uint32_t limit);
    Status free_slot(std::string const& name);

    Status put_running(RunningRecord const& record);
    Status remove_running(std::string const& name);
    Result<std::vector<RunningRecord>> running();

    // The next number of a persistent counter (1, 2, ...): disposable names (disp-N, "next_disposable")
    // and ask ids ("next_ask"), so that neither is reused across broker restarts.
    Result<uint64_t> next_number(std::string const& counter);
    // A disposable taken from the pool or made for a caller: its owner, and the run that ends it.
    Status set_owner(std::string const& name, std::string const& owner, std::string const& account);
    Status set_main_run(std::string const& name, uint32_t run_id);

    // The audit log's last record as the broker wrote it, so that records cut off the end of the
    // log are found by `audit verify` even across broker restarts.
    Status set_audit_head(uint64_t seq, std::string const& hash);
    Result<std::optional<std::pair<uint64_t, std::string>>> audit_head();

private:
    StateDb() = default;
    Status exec(char const* sql);
    sqlite3* m_db = nullptr;
};

} // namespace bulkhead::broker

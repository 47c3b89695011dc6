// The admin API's requests, decoded from the bytes of one record by a pure function: every field
// type-checked, every op known, or a message saying what is wrong (exit 2). The broker acts on what
// this returns and on nothing else of the request (admin.cpp); fuzz_admin fuzzes it.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bulkhead::broker {

struct AdminRequest {
    std::string op; // ls net plan apply policy_check pending approve deny audit audit_verify rollback start stop restart run grant revoke show
    // plan, apply
    std::string config, file, policy_dir;
    // policy_check (target also: approve --target)
    std::string source, target, service, arg;
    bool explain = false;
    // approve, deny
    uint64_t id = 0;
    // audit
    uint64_t after = 0;
    uint32_t limit = 0; // 1..256 records a page (0 asked: 256)
    // start, stop, restart, run
    std::string name;
    // run
    std::string templ, user = "user", term;
    bool disposable = false, tty = false;
    uint32_t rows = 0, cols = 0;
    std::vector<std::string> argv;
    std::string copy; // run: "" a command; "in" the host's files into NAME; "out" argv's files of NAME to the host
    // grant, revoke: name, and VOLUME[/PATH]; grant: where in the home ("" = the volume's name) and "ro"/"rw" ("" = rw)
    std::string volume, at, mode;

    friend bool operator==(AdminRequest const&, AdminRequest const&) = default;
};

inline constexpr uint32_t admin_audit_page = 256;

// `descriptors`: how many arrived beside the record (only run takes any).
Result<AdminRequest> decode_admin_request(std::span<uint8_t const> bytes, size_t descriptors);
// The JSON text of a request (what the CLI sends); decode_admin_request of it gives it back.
std::string encode_admin_request(AdminRequest const& request);

} // namespace bulkhead::broker

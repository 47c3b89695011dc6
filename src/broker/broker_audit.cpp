// The broker's side of the audit log (the log itself is src/broker/audit*): recording decisions and
// actions, counting repeated denials, failing closed when a record cannot be written, flushing once
// per turn of the loop, and the admin requests `audit` and `audit verify`.
#include "broker/broker.hpp"

#include "sys/syscalls.hpp"

#include <nlohmann/json.hpp>

namespace bulkhead::broker {

using nlohmann::json;

bool Broker::record(audit::Record entry, Durability durability)
{
    // Denials of calls repeat at a hostile caller's pace: counted, and summed up per window.
    if (entry.kind == "call" && entry.verdict == "deny") {
        bool written = true;
        for (auto& due : m_denials.admit(entry, sys::monotonic_ms()))
            written = append_audit(due, durability) && written;
        return written;
    }
    // Anything else of this caller comes after the denials it made so far, in the log as in time.
    for (auto& summary : m_denials.take_caller(entry.caller))
        (void)append_audit(summary, Durability::Later);
    return append_audit(entry, durability);
}

bool Broker::append_audit(audit::Record& entry, Durability durability)
{
    if (!m_audit)
        return false;
    int64_t const now = sys::monotonic_ms();
    // Back after records were lost: the log says so first (the calls they were for were refused).
    bool appended = true;
    if (m_audit_trouble.lost > 0) {
        audit::Record gap {.kind = "admin", .caller = "@host", .service = "audit", .verdict = "failed",
            .detail = std::to_string(m_audit_trouble.lost) + " records could not be written since " + m_audit_trouble.since
                + " (" + m_audit_trouble.error + ")"};
        auto said = m_audit->append(gap, false);
        appended = said.has_value();
        if (appended) {
            log("audit log: writing again; " + gap.detail);
            m_audit_trouble = {};
        } else {
            m_audit_trouble.error = said.error().message();
        }
    }
    if (appended) {
        auto written = m_audit->append(entry, durability == Durability::Now);
        appended = written.has_value();
        if (!appended)
            m_audit_trouble.error = written.error().message();
    }
    for (auto const& notice : m_audit->take_notices())
        log("audit log: " + notice);
    if (!appended) {
        if (m_audit_trouble.lost++ == 0)
            m_audit_trouble.since = audit::current_time();
        // Loud, but at most once a minute: a flood of refused calls must not flood the broker's log.
        if (m_audit_trouble.logged_ms < 0 || now - m_audit_trouble.logged_ms >= 60000) {
            m_audit_trouble.logged_ms = now;
            log("audit log: cannot write a record (" + m_audit_trouble.error + "): calls are refused until it can; "
                + std::to_string(m_audit_trouble.lost) + " records lost since " + m_audit_trouble.since);
        }
        return false;
    }
    if (durability == Durability::Now)
        flush_audit();
    return true;
}

// The windows of counted denials that ended: their summaries (the loop's timer, calls.cpp).
void Broker::write_due_denials(int64_t now_ms)
{
    for (auto& summary : m_denials.take_due(now_ms))
        (void)append_audit(summary, Durability::Later);
}

void Broker::flush_audit()
{
    if (m_stopping) {
        for (auto& summary : m_denials.take_all())
            (void)append_audit(summary, Durability::Later);
    }
    if (!m_audit || m_audit_head_stored == m_audit->last_seq())
        return;
    if (auto synced = m_audit->sync(); synced.is_error())
        log("audit log: " + synced.error().message());
    if (auto stored = m_db->set_audit_head(m_audit->last_seq(), m_audit->last_hash()); stored.is_error())
        log("audit log: " + stored.error().message());
    m_audit_head_stored = m_audit->last_seq();
}

void Broker::admin_audit(int client, uint64_t after, uint32_t limit)
{
    auto records = audit::read(m_audit_path, after, limit);
    if (records.is_error())
        return reply_error(client, records.error().message(), 125);
    json list = json::array();
    for (auto const& entry : records.value()) {
        json parsed = json::parse(audit::to_line(entry), nullptr, false);
        if (!parsed.is_discarded())
            list.push_back(parsed);
    }
    json object = {{"ok", true}, {"records", list}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::admin_audit_verify(int client)
{
    flush_audit(); // the head compared against is the last record written
    // What the broker itself wrote last: the log must end there.
    std::optional<std::pair<uint64_t, std::string>> expected;
    if (auto head = m_db->audit_head(); head.has_value())
        expected = head.value();
    auto verification = audit::verify_files(m_audit_path, expected);
    if (verification.is_error())
        return reply_error(client, verification.error().message(), 125);
    json problems = json::array();
    for (auto const& problem : verification.value().problems)
        problems.push_back({{"file", problem.file}, {"line", problem.line}, {"seq", problem.seq}, {"what", problem.what}});
    json object = {{"ok", true}, {"records", verification.value().records}, {"files", verification.value().files},
        {"notes", verification.value().notes}, {"problems", problems}, {"path", m_audit_path}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

} // namespace bulkhead::broker

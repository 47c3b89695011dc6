#include "broker/state.hpp"

#include <ctime>
#include <sqlite3.h>
#include <utility>

namespace bulkhead::broker {

namespace {

constexpr char const* schema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS generations(
  id INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL, source TEXT NOT NULL, config TEXT NOT NULL,
  policy TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS slots(name TEXT PRIMARY KEY, slot INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS running(
  name TEXT PRIMARY KEY, pid INTEGER NOT NULL, start_time INTEGER NOT NULL, slot INTEGER NOT NULL,
  disposable INTEGER NOT NULL, template TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',
  account TEXT NOT NULL DEFAULT '', main_run INTEGER NOT NULL DEFAULT 0);
)sql";

// Columns added after the first release, for databases made before them.
struct AddedColumn {
    char const* table;
    char const* column;
    char const* definition;
};
constexpr AddedColumn added_columns[] = {
    {"generations", "policy", "TEXT NOT NULL DEFAULT ''"},
    {"running", "owner", "TEXT NOT NULL DEFAULT ''"},
    {"running", "account", "TEXT NOT NULL DEFAULT ''"},
    {"running", "main_run", "INTEGER NOT NULL DEFAULT 0"},
};

Error db_error(sqlite3* db, std::string_view what)
{
    return Error::from_message("state database: " + std::string(what) + ": " + sqlite3_errmsg(db));
}

// One prepared statement, finalized on scope exit.
class Statement {
public:
    Statement(sqlite3* db, char const* sql) : m_db(db) { m_ok = sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr) == SQLITE_OK; }
    ~Statement() { sqlite3_finalize(m_stmt); }
    Statement(Statement const&) = delete;
    Statement& operator=(Statement const&) = delete;

    Status prepared() const { return m_ok ? Status() : Status(db_error(m_db, "prepare")); }
    Statement& bind(int index, int64_t value)
    {
        sqlite3_bind_int64(m_stmt, index, value);
        return *this;
    }
    Statement& bind(int index, std::string const& text)
    {
        sqlite3_bind_text(m_stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
        return *this;
    }
    // SQLITE_ROW -> true, SQLITE_DONE -> false.
    Result<bool> step()
    {
        TRY(prepared());
        int rc = sqlite3_step(m_stmt);
        if (rc == SQLITE_ROW)
            return true;
        if (rc == SQLITE_DONE)
            return false;
        return db_error(m_db, "step");
    }
    int64_t integer(int column) const { return sqlite3_column_int64(m_stmt, column); }
    std::string text(int column) const
    {
        auto const* data = reinterpret_cast<char const*>(sqlite3_column_text(m_stmt, column));
        return data ? std::string(data, static_cast<size_t>(sqlite3_column_bytes(m_stmt, column))) : std::string();
    }

private:
    sqlite3* m_db;
    sqlite3_stmt* m_stmt = nullptr;
    bool m_ok = false;
};

Generation read_generation(Statement const& statement)
{
    return {statement.integer(0), statement.integer(1), statement.text(2), statement.text(3), statement.text(4)};
}

} // namespace

Result<StateDb> StateDb::open(std::string const& path)
{
    StateDb db;
    if (sqlite3_open_v2(path.c_str(), &db.m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr)
        != SQLITE_OK)
        return db_error(db.m_db, "opening " + path);
    sqlite3_busy_timeout(db.m_db, 5000);
    TRY(db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
    TRY(db.exec(schema));
    // Older databases gain the columns they lack (with their defaults: empty policy, no owner).
    for (auto const& added : added_columns) {
        bool present = false;
        {
            Statement columns(db.m_db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?");
            columns.bind(1, std::string(added.table)).bind(2, std::string(added.column));
            present = TRY(columns.step());
        }
        if (!present) {
            std::string const sql = std::string("ALTER TABLE ") + added.table + " ADD COLUMN " + added.column + " " + added.definition;
            TRY(db.exec(sql.c_str()));
        }
    }
    return db;
}

StateDb::StateDb(StateDb&& other) noexcept : m_db(std::exchange(other.m_db, nullptr)) {}

StateDb& StateDb::operator=(StateDb&& other) noexcept
{
    if (this != &other) {
        sqlite3_close(m_db);
        m_db = std::exchange(other.m_db, nullptr);
    }
    return *this;
}

StateDb::~StateDb()
{
    sqlite3_close(m_db);
}

Status StateDb::exec(char const* sql)
{
    char* message = nullptr;
    if (sqlite3_exec(m_db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        std::string text = message ? message : "unknown error";
        sqlite3_free(message);
        return Error::from_message("state database: " + text);
    }
    return {};
}

Result<std::optional<Generation>> StateDb::current_generation()
{
    Statement statement(m_db, "SELECT g.id, g.applied_at, g.source, g.config, g.policy FROM generations g "
                              "JOIN meta m ON m.key = 'current_generation' AND m.value = g.id");
    if (!TRY(statement.step()))
        return std::optional<Generation>();
    return std::optional<Generation>(read_generation(statement));
}

Result<std::optional<Generation>> StateDb::generation_before(int64_t id)
{
    Statement statement(m_db, "SELECT id, applied_at, source, config, policy FROM generations WHERE id < ? ORDER BY id DESC LIMIT 1");
    statement.bind(1, id);
    if (!TRY(statement.step()))
        return std::optional<Generation>();
    return std::optional<Generation>(read_generation(statement));
}

Result<int64_t> StateDb::add_generation(std::string const& source, std::string const& config, std::string const& policy)
{
    Statement statement(m_db, "INSERT INTO generations(applied_at, source, config, policy) VALUES(?, ?, ?, ?)");
    statement.bind(1, static_cast<int64_t>(::time(nullptr))).bind(2, source).bind(3, config).bind(4, policy);
    TRY(statement.step());
    return sqlite3_last_insert_rowid(m_db);
}

Status StateDb::set_current_generation(int64_t id)
{
    Statement statement(m_db, "INSERT INTO meta(key, value) VALUES('current_generation', ?) "
                              "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    statement.bind(1, id);
    TRY(statement.step());
    return {};
}

Result<std::vector<Generation>> StateDb::generations()
{
    Statement statement(m_db, "SELECT id, applied_at, source, config, policy FROM generations ORDER BY id");
    std::vector<Generation> all;
    while (TRY(statement.step()))
        all.push_back(read_generation(statement));
    return all;
}

Result<uint32_t> StateDb::slot_for(std::string const& name, uint32_t limit)
{
    {
        Statement find(m_db, "SELECT slot FROM slots WHERE name = ?");
        find.bind(1, name);
        if (TRY(find.step()))
            return static_cast<uint32_t>(find.integer(0));
    }
    // The lowest slot not in use: 0 if free, else the first gap after a used one.
    Statement gap(m_db, "SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM slots WHERE slot = 0) "
                        "UNION ALL SELECT MIN(s.slot + 1) FROM slots s "
                        "WHERE NOT EXISTS (SELECT 1 FROM slots t WHERE t.slot = s.slot + 1) LIMIT 1");
    if (!TRY(gap.step()))
        return Error::from_message("state database: no free slot");
    int64_t slot = gap.integer(0);
    if (slot < 0 || slot >= static_cast<int64_t>(limit))
        return Error::from_message("all " + std::to_string(limit) + " compartment id ranges of this broker are in use");
    Statement insert(m_db, "INSERT INTO slots(name, slot) VALUES(?, ?)");
    insert.bind(1, name).bind(2, slot);
    TRY(insert.step());
    return static_cast<uint32_t>(slot);
}

Status StateDb::free_slot(std::string const& name)
{
    Statement statement(m_db, "DELETE FROM slots WHERE name = ?");
    statement.bind(1, name);
    TRY(statement.step());
    return {};
}

Status StateDb::put_running(RunningRecord const& record)
{
    Statement statement(m_db, "INSERT OR REPLACE INTO running(name, pid, start_time, slot, disposable, template, owner, account, main_run) "
                              "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    statement.bind(1, record.name)
        .bind(2, record.pid)
        .bind(3, static_cast<int64_t>(record.start_time))
        .bind(4, record.slot)
        .bind(5, record.disposable ? 1 : 0)
        .bind(6, record.template_name)
        .bind(7, record.owner)
        .bind(8, record.account)
        .bind(9, static_cast<int64_t>(record.main_run));
    TRY(statement.step());
    return {};
}

Status StateDb::remove_running(std::string const& name)
{
    Statement statement(m_db, "DELETE FROM running WHERE name = ?");
    statement.bind(1, name);
    TRY(statement.step());
    return {};
}

Result<std::vector<RunningRecord>> StateDb::running()
{
    Statement statement(m_db, "SELECT name, pid, start_time, slot, disposable, template, owner, account, main_run FROM running ORDER BY name");
    std::vector<RunningRecord> records;
    while (TRY(statement.step())) {
        records.push_back({statement.text(0), static_cast<pid_t>(statement.integer(1)),
            static_cast<uint64_t>(statement.integer(2)), static_cast<uint32_t>(statement.integer(3)),
            statement.integer(4) != 0, statement.text(5), statement.text(6), statement.text(7),
            static_cast<uint32_t>(statement.integer(8))});
    }
    return records;
}

Result<uint64_t> StateDb::next_number(std::string const& counter)
{
    Statement statement(m_db, "INSERT INTO meta(key, value) VALUES(?, 1) "
                              "ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value");
    statement.bind(1, counter);
    if (!TRY(statement.step()))
        return Error::from_message("state database: no number for " + counter);
    return static_cast<uint64_t>(statement.integer(0));
}

Status StateDb::set_main_run(std::string const& name, uint32_t run_id)
{
    Statement statement(m_db, "UPDATE running SET main_run = ? WHERE name = ?");
    statement.bind(1, static_cast<int64_t>(run_id)).bind(2, name);
    TRY(statement.step());
    return {};
}

Status StateDb::set_owner(std::string const& name, std::string const& owner, std::string const& account)
{
    Statement statement(m_db, "UPDATE running SET owner = ?, account = ? WHERE name = ?");
    statement.bind(1, owner).bind(2, account).bind(3, name);
    TRY(statement.step());
    return {};
}

Status StateDb::set_audit_head(uint64_t seq, std::string const& hash)
{
    // "h:" keeps an all-digit hash a text (the column has integer affinity).
    Statement statement(m_db, "INSERT INTO meta(key, value) VALUES('audit_head', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1");
    statement.bind(1, "h:" + std::to_string(seq) + ":" + hash);
    TRY(statement.step());
    return {};
}

Result<std::optional<std::pair<uint64_t, std::string>>> StateDb::audit_head()
{
    Statement statement(m_db, "SELECT value FROM meta WHERE key = 'audit_head'");
    if (!TRY(statement.step()))
        return std::optional<std::pair<uint64_t, std::string>>();
    std::string value = statement.text(0);
    auto colon = value.find(':', 2);
    if (!value.starts_with("h:") || colon == std::string::npos)
        return Error::from_message("state database: a malformed audit head");
    return std::optional<std::pair<uint64_t, std::string>>(std::make_pair(std::stoull(value.substr(2, colon - 2)), value.substr(colon + 1)));
}

} // namespace bulkhead::broker

#include "broker/admin_request.hpp"

#include "base/wire.hpp"

#include <nlohmann/json.hpp>

namespace bulkhead::broker {

namespace {

using nlohmann::json;

// Reads typed fields; the first wrong one is remembered.
class Fields {
public:
    explicit Fields(json const& object) : m_object(object) {}

    std::string string(char const* key, bool required = false)
    {
        auto found = m_object.find(key);
        if (found == m_object.end()) {
            if (required)
                fail(std::string("missing field '") + key + "'");
            return {};
        }
        if (!found->is_string()) {
            fail(std::string("field '") + key + "' must be a string");
            return {};
        }
        return found->get_ref<std::string const&>();
    }

    bool boolean(char const* key)
    {
        auto found = m_object.find(key);
        if (found == m_object.end())
            return false;
        if (!found->is_boolean()) {
            fail(std::string("field '") + key + "' must be true or false");
            return false;
        }
        return found->get<bool>();
    }

    uint64_t number(char const* key, uint64_t max, bool required = false)
    {
        auto found = m_object.find(key);
        if (found == m_object.end()) {
            if (required)
                fail(std::string("'") + key + "' must be a number");
            return 0;
        }
        if (!found->is_number_unsigned() || found->get<uint64_t>() > max) {
            fail(std::string("field '") + key + "' must be a number up to " + std::to_string(max));
            return 0;
        }
        return found->get<uint64_t>();
    }

    std::vector<std::string> strings(char const* key)
    {
        std::vector<std::string> out;
        auto found = m_object.find(key);
        if (found == m_object.end())
            return out;
        if (!found->is_array() || found->size() > wire::max_list_items) {
            fail(std::string("field '") + key + "' must be a list of strings");
            return out;
        }
        for (auto const& item : *found) {
            if (!item.is_string() || item.get_ref<std::string const&>().find('\0') != std::string::npos) {
                fail(std::string("field '") + key + "' must be a list of strings without NUL");
                return {};
            }
            out.push_back(item.get<std::string>());
        }
        return out;
    }

    bool has(char const* key) const { return m_object.contains(key); }
    std::string const& error() const { return m_error; }

private:
    void fail(std::string message)
    {
        if (m_error.empty())
            m_error = std::move(message);
    }

    json const& m_object;
    std::string m_error;
};

bool one_of(std::string const& op, std::initializer_list<char const*> ops)
{
    for (char const* known : ops)
        if (op == known)
            return true;
    return false;
}

} // namespace

Result<AdminRequest> decode_admin_request(std::span<uint8_t const> bytes, size_t descriptors)
{
    json object = json::parse(bytes.begin(), bytes.end(), nullptr, false);
    if (object.is_discarded() || !object.is_object())
        return Error::from_message("malformed request: not a JSON object");
    Fields fields(object);
    AdminRequest request;
    request.op = fields.string("op", true);
    if (!fields.error().empty())
        return Error::from_message("malformed request: " + fields.error());
    if (request.op != "run" && descriptors != 0)
        return Error::from_message("malformed request: descriptors beside '" + request.op + "'");
    auto const& op = request.op;
    if (one_of(op, {"ls", "net", "pending", "audit_verify", "rollback", "generations", "config_show", "stop_all"})) {
        // no fields
    } else if (one_of(op, {"plan", "apply"})) {
        request.config = fields.string("config");
        request.file = fields.string("file");
        request.policy_dir = fields.string("policy_dir");
    } else if (op == "policy_check") {
        request.source = fields.string("source", true);
        request.target = fields.string("target", true);
        request.service = fields.string("service", true);
        request.arg = fields.string("arg");
        request.explain = fields.boolean("explain");
    } else if (one_of(op, {"approve", "deny"})) {
        request.id = fields.number("id", UINT64_MAX, true);
        request.target = fields.string("target");
    } else if (op == "audit") {
        request.after = fields.number("after", UINT64_MAX);
        // One reply is one SOCK_SEQPACKET record, which must fit the socket's buffer: pages of 256.
        request.limit = static_cast<uint32_t>(fields.number("limit", admin_audit_page));
        if (request.limit == 0)
            request.limit = admin_audit_page;
    } else if (one_of(op, {"start", "stop", "restart"})) {
        request.name = fields.string("name", true);
    } else if (op == "run") {
        request.name = fields.string("name");
        request.templ = fields.string("template");
        request.disposable = fields.boolean("disposable");
        request.argv = fields.strings("argv");
        if (fields.has("user"))
            request.user = fields.string("user");
        request.tty = fields.boolean("tty");
        request.rows = static_cast<uint32_t>(fields.number("rows", 0xffff));
        request.cols = static_cast<uint32_t>(fields.number("cols", 0xffff));
        request.term = fields.string("term");
        request.copy = fields.string("copy");
        if (request.copy != "" && request.copy != "in" && request.copy != "out")
            return Error::from_message("malformed request: 'copy' is \"in\" or \"out\"");
    } else if (one_of(op, {"grant", "revoke"})) {
        request.name = fields.string("name", true);
        request.volume = fields.string("volume", true);
        if (op == "grant") {
            request.at = fields.string("at");
            request.mode = fields.string("mode");
            if (request.mode != "" && request.mode != "ro" && request.mode != "rw")
                return Error::from_message("malformed request: 'mode' is \"ro\" or \"rw\"");
        }
    } else if (op == "show") {
        request.name = fields.string("name", true);
    } else {
        return Error::from_message("unknown request '" + op + "'");
    }
    if (!fields.error().empty())
        return Error::from_message("malformed request: " + fields.error());
    return request;
}

std::string encode_admin_request(AdminRequest const& request)
{
    json object = {{"op", request.op}};
    auto const& op = request.op;
    if (one_of(op, {"plan", "apply"})) {
        object["config"] = request.config;
        object["file"] = request.file;
        object["policy_dir"] = request.policy_dir;
    } else if (op == "policy_check") {
        object["source"] = request.source;
        object["target"] = request.target;
        object["service"] = request.service;
        object["arg"] = request.arg;
        object["explain"] = request.explain;
    } else if (one_of(op, {"approve", "deny"})) {
        object["id"] = request.id;
        object["target"] = request.target;
    } else if (op == "audit") {
        object["after"] = request.after;
        object["limit"] = request.limit;
    } else if (one_of(op, {"start", "stop", "restart"})) {
        object["name"] = request.name;
    } else if (op == "run") {
        object["name"] = request.name;
        object["template"] = request.templ;
        object["disposable"] = request.disposable;
        object["argv"] = request.argv;
        object["user"] = request.user;
        object["tty"] = request.tty;
        object["rows"] = request.rows;
        object["cols"] = request.cols;
        object["term"] = request.term;
        object["copy"] = request.copy;
    } else if (one_of(op, {"grant", "revoke"})) {
        object["name"] = request.name;
        object["volume"] = request.volume;
        if (op == "grant") {
            object["at"] = request.at;
            object["mode"] = request.mode;
        }
    } else if (op == "show") {
        object["name"] = request.name;
    }
    return object.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace bulkhead::broker

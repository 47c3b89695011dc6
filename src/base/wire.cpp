#include "base/wire.hpp"

#include <algorithm>
#include <cstring>

namespace bulkhead::wire {

namespace {

class Writer {
public:
    explicit Writer(MessageType type) { m_bytes.push_back(static_cast<uint8_t>(type)); }

    void u32(uint32_t value)
    {
        for (int i = 0; i < 4; ++i)
            m_bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
    }
    void string(std::string const& text)
    {
        u32(static_cast<uint32_t>(text.size()));
        m_bytes.insert(m_bytes.end(), text.begin(), text.end());
    }
    void list(std::vector<std::string> const& items)
    {
        u32(static_cast<uint32_t>(items.size()));
        for (auto const& item : items)
            string(item);
    }
    std::vector<uint8_t> take() { return std::move(m_bytes); }

private:
    std::vector<uint8_t> m_bytes;
};

// Reads fields off one record. The first failure sticks; later reads return zero values.
class Reader {
public:
    explicit Reader(std::span<uint8_t const> bytes) : m_bytes(bytes) {}

    uint32_t u32()
    {
        if (!need(4))
            return 0;
        uint32_t value = 0;
        for (int i = 0; i < 4; ++i)
            value |= static_cast<uint32_t>(m_bytes[m_offset + i]) << (8 * i);
        m_offset += 4;
        return value;
    }
    std::string string(size_t max_length)
    {
        uint32_t length = u32();
        if (m_failed)
            return {};
        if (length > max_length)
            return fail("string longer than " + std::to_string(max_length) + " bytes"), std::string();
        if (!need(length))
            return {};
        std::string text(reinterpret_cast<char const*>(m_bytes.data() + m_offset), length);
        m_offset += length;
        if (text.find('\0') != std::string::npos)
            return fail("string contains NUL"), std::string();
        return text;
    }
    std::vector<std::string> list(size_t max_items, size_t max_length)
    {
        uint32_t count = u32();
        if (m_failed)
            return {};
        if (count > max_items)
            return fail("list of " + std::to_string(count) + " items (at most " + std::to_string(max_items) + ")"), std::vector<std::string>();
        std::vector<std::string> items;
        for (uint32_t i = 0; i < count && !m_failed; ++i)
            items.push_back(string(max_length));
        return items;
    }
    // Every byte must have been consumed.
    Status finish() const
    {
        if (m_failed)
            return Error::from_message(m_error);
        if (m_offset != m_bytes.size())
            return Error::from_message(std::to_string(m_bytes.size() - m_offset) + " trailing bytes");
        return {};
    }
    void fail(std::string message)
    {
        if (!m_failed)
            m_error = std::move(message);
        m_failed = true;
    }

private:
    bool need(size_t count)
    {
        if (m_failed)
            return false;
        if (m_bytes.size() - m_offset < count) {
            fail("record ends inside a field");
            return false;
        }
        return true;
    }

    std::span<uint8_t const> m_bytes;
    size_t m_offset = 1; // after the type byte
    bool m_failed = false;
    std::string m_error;
};

bool printable(std::string const& text)
{
    return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

bool token_of(std::string_view text, std::string_view extra)
{
    return std::all_of(text.begin(), text.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
            || extra.find(c) != std::string_view::npos;
    });
}

Status check_record(std::span<uint8_t const> record, size_t max_size)
{
    if (record.empty())
        return Error::from_message("empty record");
    if (record.size() > max_size)
        return Error::from_message("record of " + std::to_string(record.size()) + " bytes (at most " + std::to_string(max_size) + ")");
    return {};
}

} // namespace

size_t descriptors_for(BrokerMessage const& message)
{
    if (auto const* exec = std::get_if<Exec>(&message))
        return exec->tty ? 1 : 4;
    return 0;
}

size_t descriptors_for(AgentMessage const& message, bool tty)
{
    return std::holds_alternative<Started>(message) && tty ? 1 : 0;
}

std::vector<uint8_t> encode(BrokerMessage const& message)
{
    if (auto const* exec = std::get_if<Exec>(&message)) {
        Writer writer(MessageType::Exec);
        writer.u32(exec->id);
        writer.u32(static_cast<uint32_t>(exec->run_as));
        writer.u32(exec->tty ? 1 : 0);
        writer.u32(exec->rows);
        writer.u32(exec->cols);
        writer.list(exec->argv);
        writer.list(exec->env);
        writer.string(exec->cwd);
        return writer.take();
    }
    auto const& kill = std::get<Kill>(message);
    Writer writer(MessageType::Kill);
    writer.u32(kill.id);
    return writer.take();
}

std::vector<uint8_t> encode(AgentMessage const& message)
{
    return std::visit(
        [](auto const& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, Hello>) {
                Writer writer(MessageType::Hello);
                writer.u32(m.version);
                writer.u32(m.running);
                return writer.take();
            } else if constexpr (std::is_same_v<T, Started>) {
                Writer writer(MessageType::Started);
                writer.u32(m.id);
                return writer.take();
            } else if constexpr (std::is_same_v<T, Exited>) {
                Writer writer(MessageType::Exited);
                writer.u32(m.id);
                writer.u32(static_cast<uint32_t>(m.wait_status));
                return writer.take();
            } else {
                Writer writer(MessageType::Failed);
                writer.u32(m.id);
                writer.string(m.message.substr(0, max_error_text));
                return writer.take();
            }
        },
        message);
}

Result<BrokerMessage> decode_broker_message(std::span<uint8_t const> record)
{
    TRY(check_record(record, max_broker_record));
    Reader reader(record);
    // Each case fills its alternative in place and the one message is returned at the end. (A
    // temporary variant per case, moved into the Result, made GCC's -Wmaybe-uninitialized see the
    // other alternatives' strings moved uninitialized under -fsanitize=address at -O2.)
    BrokerMessage message;
    switch (static_cast<MessageType>(record[0])) {
    case MessageType::Exec: {
        Exec& exec = message.emplace<Exec>();
        exec.id = reader.u32();
        uint32_t run_as = reader.u32();
        uint32_t tty = reader.u32();
        exec.rows = reader.u32();
        exec.cols = reader.u32();
        exec.argv = reader.list(max_list_items, max_broker_record);
        exec.env = reader.list(max_list_items, max_broker_record);
        exec.cwd = reader.string(4096);
        if (run_as > 1)
            reader.fail("run_as " + std::to_string(run_as));
        if (tty > 1)
            reader.fail("tty flag " + std::to_string(tty));
        if (exec.rows > 0xffff || exec.cols > 0xffff)
            reader.fail("window size out of range");
        TRY(reader.finish());
        exec.run_as = static_cast<RunAs>(run_as);
        exec.tty = tty == 1;
        for (auto const& entry : exec.env) {
            if (entry.find('=') == std::string::npos || entry.front() == '=')
                return Error::from_message("environment entry without a name");
        }
        break;
    }
    case MessageType::Kill: {
        Kill& kill = message.emplace<Kill>();
        kill.id = reader.u32();
        TRY(reader.finish());
        break;
    }
    default:
        return Error::from_message("unknown message type " + std::to_string(record[0]));
    }
    return message;
}

Result<AgentMessage> decode_agent_message(std::span<uint8_t const> record)
{
    TRY(check_record(record, max_agent_record));
    Reader reader(record);
    // Filled in place, as in decode_broker_message.
    AgentMessage message;
    switch (static_cast<MessageType>(record[0])) {
    case MessageType::Hello: {
        Hello& hello = message.emplace<Hello>();
        hello.version = reader.u32();
        hello.running = reader.u32();
        TRY(reader.finish());
        if (hello.version != protocol_version)
            return Error::from_message("protocol version " + std::to_string(hello.version));
        break;
    }
    case MessageType::Started: {
        Started& started = message.emplace<Started>();
        started.id = reader.u32();
        TRY(reader.finish());
        break;
    }
    case MessageType::Exited: {
        Exited& exited = message.emplace<Exited>();
        exited.id = reader.u32();
        exited.wait_status = static_cast<int32_t>(reader.u32());
        TRY(reader.finish());
        // A real wait status is an exit code (0..255 << 8) or a signal number (1..64, Linux's
        // highest), possibly with the core-dump bit 0x80.
        uint32_t raw = static_cast<uint32_t>(exited.wait_status);
        bool exited_normally = (raw & 0xff) == 0 && raw <= 0xff00;
        bool signalled = raw <= 0xff && (raw & 0x7f) >= 1 && (raw & 0x7f) <= 64;
        if (!exited_normally && !signalled)
            return Error::from_message("impossible wait status " + std::to_string(raw));
        break;
    }
    case MessageType::Failed: {
        Failed& failed = message.emplace<Failed>();
        failed.id = reader.u32();
        failed.message = reader.string(max_error_text);
        TRY(reader.finish());
        if (!printable(failed.message))
            return Error::from_message("error text with unprintable bytes");
        break;
    }
    default:
        return Error::from_message("unknown message type " + std::to_string(record[0]));
    }
    return message;
}

std::vector<uint8_t> encode(Call const& call)
{
    Writer writer(MessageType::Call);
    writer.string(call.target);
    writer.string(call.service);
    writer.string(call.arg);
    return writer.take();
}

std::vector<uint8_t> encode(CallReply const& reply)
{
    if (auto const* connected = std::get_if<CallConnected>(&reply)) {
        Writer writer(MessageType::CallConnected);
        writer.string(connected->target);
        return writer.take();
    }
    if (std::holds_alternative<CallHeld>(reply))
        return Writer(MessageType::CallHeld).take();
    auto const& refused = std::get<CallRefused>(reply);
    Writer writer(MessageType::CallRefused);
    writer.u32(refused.exit_code);
    writer.string(refused.message.substr(0, max_error_text));
    return writer.take();
}

bool valid_service_arg(std::string_view text)
{
    return text.size() <= max_call_field && token_of(text, "") && !text.starts_with('.') && !text.starts_with('-');
}

bool valid_service_name(std::string_view text)
{
    return !text.empty() && valid_service_arg(text);
}

bool valid_call_target(std::string_view text)
{
    return text.size() <= max_call_field && token_of(text, ":@");
}

Result<Call> decode_call(std::span<uint8_t const> record)
{
    TRY(check_record(record, max_caller_record));
    if (static_cast<MessageType>(record[0]) != MessageType::Call)
        return Error::from_message("not a call (message type " + std::to_string(record[0]) + ")");
    Reader reader(record);
    Call call;
    call.target = reader.string(max_call_field);
    call.service = reader.string(max_call_field);
    call.arg = reader.string(max_call_field);
    TRY(reader.finish());
    if (call.service.empty())
        return Error::from_message("a call without a service");
    if (!valid_service_name(call.service))
        return Error::from_message("a service name outside [A-Za-z0-9._-] (or starting with '.' or '-')");
    if (!valid_service_arg(call.arg))
        return Error::from_message("a service argument outside [A-Za-z0-9._-] (or starting with '.' or '-')");
    if (!valid_call_target(call.target))
        return Error::from_message("a call target outside [A-Za-z0-9._-:@]");
    return call;
}

Result<CallReply> decode_call_reply(std::span<uint8_t const> record)
{
    TRY(check_record(record, max_broker_record));
    Reader reader(record);
    switch (static_cast<MessageType>(record[0])) {
    case MessageType::CallConnected: {
        CallConnected connected;
        connected.target = reader.string(max_call_field);
        TRY(reader.finish());
        return CallReply(std::move(connected));
    }
    case MessageType::CallRefused: {
        CallRefused refused;
        refused.exit_code = reader.u32();
        refused.message = reader.string(max_error_text);
        TRY(reader.finish());
        if (refused.exit_code > 255)
            return Error::from_message("exit code " + std::to_string(refused.exit_code));
        return CallReply(std::move(refused));
    }
    case MessageType::CallHeld: {
        TRY(reader.finish());
        return CallReply(CallHeld {});
    }
    default:
        return Error::from_message("unknown message type " + std::to_string(record[0]));
    }
}

} // namespace bulkhead::wire

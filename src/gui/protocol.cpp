#include "gui/protocol.hpp"

#include <cstring>

namespace bulkhead::gui {

namespace {

class Writer {
public:
    explicit Writer(Type type) { m_out.push_back(static_cast<uint8_t>(type)); }
    Writer& u32(uint32_t value)
    {
        for (int i = 0; i < 4; ++i)
            m_out.push_back(static_cast<uint8_t>(value >> (8 * i)));
        return *this;
    }
    Writer& i32(int32_t value) { return u32(static_cast<uint32_t>(value)); }
    Writer& flag(bool value) { return u32(value ? 1 : 0); }
    Writer& geometry(Geometry const& g) { return i32(g.x).i32(g.y).u32(g.width).u32(g.height); }
    Writer& bytes(std::string const& text)
    {
        u32(static_cast<uint32_t>(text.size()));
        m_out.insert(m_out.end(), text.begin(), text.end());
        return *this;
    }
    std::vector<uint8_t> take() { return std::move(m_out); }

private:
    std::vector<uint8_t> m_out;
};

class Reader {
public:
    explicit Reader(std::span<uint8_t const> record) : m_in(record.subspan(1)) {}
    Result<uint32_t> u32()
    {
        if (m_in.size() < 4)
            return Error::from_message("the record is too short");
        uint32_t value = 0;
        for (int i = 0; i < 4; ++i)
            value |= static_cast<uint32_t>(m_in[i]) << (8 * i);
        m_in = m_in.subspan(4);
        return value;
    }
    Result<int32_t> coordinate()
    {
        auto value = static_cast<int32_t>(TRY(u32()));
        if (value < -max_coordinate || value > max_coordinate)
            return Error::from_message("a coordinate out of range");
        return value;
    }
    Result<uint32_t> dimension()
    {
        uint32_t value = TRY(u32());
        if (value == 0 || value > max_dimension)
            return Error::from_message("a size out of range (1.." + std::to_string(max_dimension) + ")");
        return value;
    }
    Result<bool> flag()
    {
        uint32_t value = TRY(u32());
        if (value > 1)
            return Error::from_message("a flag that is neither 0 nor 1");
        return value == 1;
    }
    Result<Geometry> geometry()
    {
        Geometry g;
        g.x = TRY(coordinate());
        g.y = TRY(coordinate());
        g.width = TRY(dimension());
        g.height = TRY(dimension());
        return g;
    }
    Result<uint32_t> window()
    {
        uint32_t value = TRY(u32());
        if (value == 0)
            return Error::from_message("window 0");
        return value;
    }
    Result<std::string> bytes(size_t max)
    {
        uint32_t length = TRY(u32());
        if (length > max)
            return Error::from_message("a string of " + std::to_string(length) + " bytes (at most " + std::to_string(max) + ")");
        if (m_in.size() < length)
            return Error::from_message("the record is too short");
        std::string text(reinterpret_cast<char const*>(m_in.data()), length);
        m_in = m_in.subspan(length);
        return text;
    }
    template<typename T>
    Result<T> done(T value)
    {
        if (!m_in.empty())
            return Error::from_message("the record has " + std::to_string(m_in.size()) + " bytes too many");
        return value;
    }

private:
    std::span<uint8_t const> m_in;
};

template<class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template<class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

Status check_rect(Geometry const& rect)
{
    if (rect.x < 0 || rect.y < 0 || rect.x + rect.width > max_dimension || rect.y + rect.height > max_dimension)
        return Error::from_message("a damaged area outside any window");
    return {};
}

} // namespace

std::vector<uint8_t> encode(AgentMessage const& message)
{
    return std::visit(overloaded {
        [](Create const& m) { return Writer(Type::Create).u32(m.window).geometry(m.geometry).flag(m.override_redirect).take(); },
        [](Destroy const& m) { return Writer(Type::Destroy).u32(m.window).take(); },
        [](Map const& m) { return Writer(Type::Map).u32(m.window).take(); },
        [](Unmap const& m) { return Writer(Type::Unmap).u32(m.window).take(); },
        [](Configure const& m) { return Writer(Type::Configure).u32(m.window).geometry(m.geometry).flag(m.override_redirect).take(); },
        [](Damage const& m) { return Writer(Type::Damage).u32(m.window).u32(m.serial).geometry(m.rect).take(); },
        [](Title const& m) { return Writer(Type::Title).u32(m.window).bytes(m.text).take(); },
        [](ClipboardData const& m) { return Writer(Type::ClipboardData).bytes(m.text).take(); },
    }, message);
}

std::vector<uint8_t> encode(DaemonMessage const& message)
{
    return std::visit(overloaded {
        [](Hello const& m) { return Writer(Type::Hello).u32(m.version).u32(m.screen_width).u32(m.screen_height).take(); },
        [](Buffer const& m) { return Writer(Type::Buffer).u32(m.window).u32(m.serial).u32(m.width).u32(m.height).take(); },
        [](Key const& m) { return Writer(Type::Key).u32(m.window).u32(m.keycode).flag(m.pressed).take(); },
        [](Button const& m) { return Writer(Type::Button).u32(m.window).u32(m.button).flag(m.pressed).i32(m.x).i32(m.y).take(); },
        [](Motion const& m) { return Writer(Type::Motion).u32(m.window).i32(m.x).i32(m.y).take(); },
        [](Resize const& m) { return Writer(Type::Resize).u32(m.window).geometry(m.geometry).take(); },
        [](Close const& m) { return Writer(Type::Close).u32(m.window).take(); },
        [](Focus const& m) { return Writer(Type::Focus).u32(m.window).take(); },
        [](ClipboardRequest const&) { return Writer(Type::ClipboardRequest).take(); },
        [](ClipboardPaste const& m) { return Writer(Type::ClipboardPaste).bytes(m.text).take(); },
    }, message);
}

std::vector<uint8_t> encode(ControlMessage const& message)
{
    return std::visit(overloaded {
        [](Ready const& m) { return Writer(Type::Ready).u32(m.screen_width).u32(m.screen_height).take(); },
        [](Copy const& m) { return Writer(Type::Copy).bytes(m.text).take(); },
        [](PasteAsk const&) { return Writer(Type::PasteAsk).take(); },
        [](PasteGive const& m) { return Writer(Type::PasteGive).bytes(m.text).take(); },
        [](PasteRefused const& m) { return Writer(Type::PasteRefused).bytes(m.reason).take(); },
    }, message);
}

Result<AgentMessage> decode_agent(std::span<uint8_t const> record)
{
    if (record.empty() || record.size() > max_record)
        return Error::from_message("a record of " + std::to_string(record.size()) + " bytes");
    Reader in(record);
    switch (static_cast<Type>(record[0])) {
    case Type::Create: {
        Create m;
        m.window = TRY(in.window());
        m.geometry = TRY(in.geometry());
        m.override_redirect = TRY(in.flag());
        return in.done<AgentMessage>(m);
    }
    case Type::Destroy:
        return in.done<AgentMessage>(Destroy {TRY(in.window())});
    case Type::Map:
        return in.done<AgentMessage>(Map {TRY(in.window())});
    case Type::Unmap:
        return in.done<AgentMessage>(Unmap {TRY(in.window())});
    case Type::Configure: {
        Configure m;
        m.window = TRY(in.window());
        m.geometry = TRY(in.geometry());
        m.override_redirect = TRY(in.flag());
        return in.done<AgentMessage>(m);
    }
    case Type::Damage: {
        Damage m;
        m.window = TRY(in.window());
        m.serial = TRY(in.u32());
        m.rect = TRY(in.geometry());
        TRY(check_rect(m.rect));
        return in.done<AgentMessage>(m);
    }
    case Type::Title: {
        Title m;
        m.window = TRY(in.window());
        m.text = TRY(in.bytes(max_title));
        return in.done<AgentMessage>(m);
    }
    case Type::ClipboardData:
        return in.done<AgentMessage>(ClipboardData {TRY(in.bytes(max_clipboard))});
    default:
        return Error::from_message("unknown record type " + std::to_string(record[0]));
    }
}

Result<DaemonMessage> decode_daemon(std::span<uint8_t const> record)
{
    if (record.empty() || record.size() > max_record)
        return Error::from_message("a record of " + std::to_string(record.size()) + " bytes");
    Reader in(record);
    switch (static_cast<Type>(record[0])) {
    case Type::Hello: {
        Hello m;
        m.version = TRY(in.u32());
        m.screen_width = TRY(in.dimension());
        m.screen_height = TRY(in.dimension());
        return in.done<DaemonMessage>(m);
    }
    case Type::Buffer: {
        Buffer m;
        m.window = TRY(in.window());
        m.serial = TRY(in.u32());
        m.width = TRY(in.dimension());
        m.height = TRY(in.dimension());
        return in.done<DaemonMessage>(m);
    }
    case Type::Key: {
        Key m;
        m.window = TRY(in.window());
        m.keycode = TRY(in.u32());
        if (m.keycode < 8 || m.keycode > 255)
            return Error::from_message("a keycode out of range");
        m.pressed = TRY(in.flag());
        return in.done<DaemonMessage>(m);
    }
    case Type::Button: {
        Button m;
        m.window = TRY(in.window());
        m.button = TRY(in.u32());
        if (m.button < 1 || m.button > 15)
            return Error::from_message("a button out of range");
        m.pressed = TRY(in.flag());
        m.x = TRY(in.coordinate());
        m.y = TRY(in.coordinate());
        return in.done<DaemonMessage>(m);
    }
    case Type::Motion: {
        Motion m;
        m.window = TRY(in.window());
        m.x = TRY(in.coordinate());
        m.y = TRY(in.coordinate());
        return in.done<DaemonMessage>(m);
    }
    case Type::Resize: {
        Resize m;
        m.window = TRY(in.window());
        m.geometry = TRY(in.geometry());
        return in.done<DaemonMessage>(m);
    }
    case Type::Close:
        return in.done<DaemonMessage>(Close {TRY(in.window())});
    case Type::Focus:
        return in.done<DaemonMessage>(Focus {TRY(in.window())});
    case Type::ClipboardRequest:
        return in.done<DaemonMessage>(ClipboardRequest {});
    case Type::ClipboardPaste:
        return in.done<DaemonMessage>(ClipboardPaste {TRY(in.bytes(max_clipboard))});
    default:
        return Error::from_message("unknown record type " + std::to_string(record[0]));
    }
}

Result<ControlMessage> decode_control(std::span<uint8_t const> record)
{
    if (record.empty() || record.size() > max_record)
        return Error::from_message("a record of " + std::to_string(record.size()) + " bytes");
    Reader in(record);
    switch (static_cast<Type>(record[0])) {
    case Type::Ready: {
        Ready m;
        m.screen_width = TRY(in.dimension());
        m.screen_height = TRY(in.dimension());
        return in.done<ControlMessage>(m);
    }
    case Type::Copy: {
        Copy m {TRY(in.bytes(max_clipboard))};
        if (!valid_text(m.text))
            return Error::from_message("clipboard content that is not UTF-8 text");
        return in.done<ControlMessage>(m);
    }
    case Type::PasteAsk:
        return in.done<ControlMessage>(PasteAsk {});
    case Type::PasteGive:
        return in.done<ControlMessage>(PasteGive {TRY(in.bytes(max_clipboard))});
    case Type::PasteRefused:
        return in.done<ControlMessage>(PasteRefused {TRY(in.bytes(200))});
    default:
        return Error::from_message("unknown record type " + std::to_string(record[0]));
    }
}

std::string framed_title(std::string const& compartment, std::string const& untrusted_title)
{
    std::string out = "[" + compartment + "] ";
    size_t const length = std::min(untrusted_title.size(), max_title);
    for (size_t i = 0; i < length; ++i) {
        auto c = static_cast<unsigned char>(untrusted_title[i]);
        out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '_';
    }
    return out;
}

bool valid_text(std::string const& text)
{
    size_t i = 0;
    while (i < text.size()) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == 0)
            return false;
        size_t extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 4;
        if (extra == 4 || (extra == 1 && c < 0xc2) || i + extra >= text.size())
            return false;
        uint32_t point = extra == 0 ? c : c & (0x3f >> extra);
        for (size_t k = 1; k <= extra; ++k) {
            auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xc0) != 0x80)
                return false;
            point = (point << 6) | (next & 0x3f);
        }
        if ((extra == 2 && point < 0x800) || (extra == 3 && (point < 0x10000 || point > 0x10ffff)) || (point >= 0xd800 && point <= 0xdfff))
            return false;
        i += extra + 1;
    }
    return true;
}

uint32_t label_color(std::string const& label)
{
    // The Qubes label colours (Tango palette).
    static constexpr std::pair<char const*, uint32_t> colors[] = {{"red", 0xcc0000}, {"orange", 0xf57900}, {"yellow", 0xedd400},
        {"green", 0x73d216}, {"gray", 0x555753}, {"blue", 0x3465a4}, {"purple", 0x75507b}, {"black", 0x000000}};
    for (auto const& [name, color] : colors)
        if (label == name)
            return color;
    return 0;
}

} // namespace bulkhead::gui

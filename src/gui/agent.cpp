// bulkhead-gui-agent: the GUI agent inside a `gui = true` compartment.
//
//   bulkhead-gui-agent --start-x WIDTHxHEIGHT   start the compartment's own X server (Xvfb :0) unless one
//                                               answers already; exit 0 once it accepts connections
//   bulkhead-gui-agent                          the bridge: standard input is the compartment's end of its
//                                               GUI socket (SOCK_SEQPACKET) to the host's GUI daemon
//
// The bridge watches the compartment's X server (Composite keeps every top-level window's pixels,
// DAMAGE says which changed), tells the daemon about windows, copies changed rows into the sealed
// buffer the daemon made for each window (MIT-SHM with a passed descriptor), and plays back the
// input the daemon sends (XTEST). It runs as the compartment's user and has no authority the
// compartment lacks: everything it says, the daemon checks. It exits when the daemon goes away (the
// broker starts a new pair), leaving the X server and its programs running.
#include "gui/protocol.hpp"
#include "gui/x11.hpp"
#include "sys/fd.hpp"
#include "sys/socket.hpp"

#include <xcb/composite.h>
#include <xcb/damage.h>
#include <xcb/shm.h>
#include <xcb/xcb.h>
#include <xcb/xtest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

using namespace bulkhead;

namespace {

constexpr char const* display_name = ":0";

[[noreturn]] void die(std::string const& message)
{
    std::fprintf(stderr, "bulkhead-gui-agent: %s\n", message.c_str());
    std::exit(1);
}

void sleep_ms(int ms)
{
    timespec t {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, nullptr);
}

// A connection to :0, trying for up to `wait_ms` (the X server may be starting).
xcb_connection_t* connect_display(int wait_ms)
{
    for (int waited = 0;; waited += 20) {
        xcb_connection_t* c = xcb_connect(display_name, nullptr);
        if (xcb_connection_has_error(c) == 0)
            return c;
        xcb_disconnect(c);
        if (waited >= wait_ms)
            return nullptr;
        sleep_ms(20);
    }
}

int start_x(char const* size)
{
    unsigned width = 0, height = 0;
    if (size == nullptr || std::sscanf(size, "%ux%u", &width, &height) != 2 || width < 64 || height < 64 || width > gui::max_dimension
        || height > gui::max_dimension)
        die("--start-x takes WIDTHxHEIGHT");
    if (auto* c = connect_display(0)) {
        xcb_disconnect(c);
        return 0;
    }
    std::string const screen = std::to_string(width) + "x" + std::to_string(height) + "x24";
    pid_t child = fork();
    if (child < 0)
        die("fork: " + std::string(std::strerror(errno)));
    if (child == 0) {
        // Twice forked: the X server belongs to the compartment's PID 1, not to this short run.
        setsid();
        if (fork() != 0)
            _exit(0);
        int null = open("/dev/null", O_RDWR);
        int log = open("/tmp/.bulkhead-xserver.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        dup2(null, 0);
        dup2(log >= 0 ? log : null, 1);
        dup2(log >= 0 ? log : null, 2);
        ::mkdir("/tmp/.X11-unix", 01777);
        execlp("Xvfb", "Xvfb", display_name, "-screen", "0", screen.c_str(), "-nolisten", "tcp", "-noreset", "+extension", "Composite",
            "+extension", "DAMAGE", "+extension", "MIT-SHM", "+extension", "XTEST", static_cast<char*>(nullptr));
        std::fprintf(stderr, "Xvfb: %s\n", std::strerror(errno));
        _exit(127);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (auto* c = connect_display(10000)) {
        xcb_disconnect(c);
        return 0;
    }
    die("the compartment's X server (Xvfb) did not start: see /tmp/.bulkhead-xserver.log inside (is xvfb installed in the template?)");
}

struct Window {
    int32_t x = 0, y = 0;
    uint32_t width = 0, height = 0;
    bool override_redirect = false;
    bool mapped = false;
    xcb_damage_damage_t damage = 0;
    // The daemon's buffer for this window, attached to our X server.
    xcb_shm_seg_t segment = 0;
    uint32_t serial = 0, buffer_width = 0, buffer_height = 0;
    // Rows changed since they were last copied: [dirty_top, dirty_bottom).
    uint32_t dirty_top = 0, dirty_bottom = 0;
};

class Bridge {
public:
    Bridge(xcb_connection_t* c, int socket) : m_c(c), m_socket(socket) {}
    void setup();
    void run();

private:
    xcb_atom_t atom(char const* name) { return gui::intern(m_c, name); }
    void send(gui::AgentMessage const& message);
    void track(xcb_window_t id, int16_t x, int16_t y, uint16_t w, uint16_t h, bool override_redirect, bool mapped);
    void send_title(xcb_window_t id);
    void on_event(xcb_generic_event_t* event);
    void on_daemon_record();
    void on_daemon_message(gui::DaemonMessage const& message, sys::UniqueFd fd);
    void copy_damage();
    void mark_dirty(Window& w, uint32_t top, uint32_t bottom);
    void answer_selection_request(xcb_selection_request_event_t const& request);
    void read_clipboard(xcb_selection_notify_event_t const& notify);

    xcb_connection_t* m_c;
    int m_socket;
    xcb_screen_t* m_screen = nullptr;
    xcb_window_t m_own = 0; // an unmapped window of ours, for selections
    uint8_t m_damage_event = 0;
    std::map<xcb_window_t, Window> m_windows;
    std::string m_paste; // what we offer as CLIPBOARD after a Ctrl-Shift-V
    xcb_atom_t m_clipboard = 0, m_utf8 = 0, m_targets = 0, m_text = 0, m_property = 0, m_net_wm_name = 0, m_protocols = 0, m_delete = 0;
};

void Bridge::send(gui::AgentMessage const& message)
{
    auto bytes = gui::encode(message);
    if (sys::send_record(m_socket, bytes).is_error())
        die("the GUI daemon went away");
}

void Bridge::setup()
{
    m_screen = xcb_setup_roots_iterator(xcb_get_setup(m_c)).data;
    auto need = [&](xcb_extension_t* ext, char const* name) {
        auto const* data = xcb_get_extension_data(m_c, ext);
        if (data == nullptr || data->present == 0)
            die(std::string("the X server lacks ") + name);
        return data;
    };
    need(&xcb_composite_id, "Composite");
    m_damage_event = need(&xcb_damage_id, "DAMAGE")->first_event;
    need(&xcb_shm_id, "MIT-SHM");
    need(&xcb_test_id, "XTEST");
    free(xcb_damage_query_version_reply(m_c, xcb_damage_query_version(m_c, 1, 1), nullptr));
    if (!gui::shm_passes_fds(m_c))
        die("the X server's MIT-SHM cannot take descriptors (1.2 needed)");
    free(xcb_composite_query_version_reply(m_c, xcb_composite_query_version(m_c, 0, 4), nullptr));
    m_clipboard = atom("CLIPBOARD");
    m_utf8 = atom("UTF8_STRING");
    m_targets = atom("TARGETS");
    m_text = atom("TEXT");
    m_property = atom("_BULKHEAD_CLIPBOARD");
    m_net_wm_name = atom("_NET_WM_NAME");
    m_protocols = atom("WM_PROTOCOLS");
    m_delete = atom("WM_DELETE_WINDOW");

    m_own = xcb_generate_id(m_c);
    xcb_create_window(m_c, 0, m_own, m_screen->root, -10, -10, 1, 1, 0, XCB_WINDOW_CLASS_INPUT_ONLY, XCB_COPY_FROM_PARENT, 0, nullptr);
    xcb_composite_redirect_subwindows(m_c, m_screen->root, XCB_COMPOSITE_REDIRECT_AUTOMATIC);
    uint32_t mask = XCB_EVENT_MASK_SUBSTRUCTURE_NOTIFY;
    xcb_change_window_attributes(m_c, m_screen->root, XCB_CW_EVENT_MASK, &mask);
    // The windows there already (a bridge started again after its daemon restarted).
    auto* tree = xcb_query_tree_reply(m_c, xcb_query_tree(m_c, m_screen->root), nullptr);
    if (tree != nullptr) {
        xcb_window_t* children = xcb_query_tree_children(tree);
        for (int i = 0; i < xcb_query_tree_children_length(tree); ++i) {
            if (children[i] == m_own)
                continue;
            auto* attributes = xcb_get_window_attributes_reply(m_c, xcb_get_window_attributes(m_c, children[i]), nullptr);
            auto* geometry = xcb_get_geometry_reply(m_c, xcb_get_geometry(m_c, children[i]), nullptr);
            if (attributes != nullptr && geometry != nullptr && attributes->_class == XCB_WINDOW_CLASS_INPUT_OUTPUT)
                track(children[i], geometry->x, geometry->y, geometry->width, geometry->height, attributes->override_redirect != 0,
                    attributes->map_state != XCB_MAP_STATE_UNMAPPED);
            free(attributes);
            free(geometry);
        }
        free(tree);
    }
    xcb_flush(m_c);
}

void Bridge::track(xcb_window_t id, int16_t x, int16_t y, uint16_t w, uint16_t h, bool override_redirect, bool mapped)
{
    if (m_windows.contains(id) || m_windows.size() >= gui::max_windows || w == 0 || h == 0 || w > gui::max_dimension || h > gui::max_dimension)
        return;
    Window& window = m_windows[id];
    window.x = x;
    window.y = y;
    window.width = w;
    window.height = h;
    window.override_redirect = override_redirect;
    window.damage = xcb_generate_id(m_c);
    xcb_damage_create(m_c, window.damage, id, XCB_DAMAGE_REPORT_LEVEL_BOUNDING_BOX);
    uint32_t mask = XCB_EVENT_MASK_PROPERTY_CHANGE;
    xcb_change_window_attributes(m_c, id, XCB_CW_EVENT_MASK, &mask);
    send(gui::Create {id, {x, y, w, h}, override_redirect});
    send_title(id);
    if (mapped) {
        window.mapped = true;
        send(gui::Map {id});
    }
}

void Bridge::send_title(xcb_window_t id)
{
    for (xcb_atom_t property : {m_net_wm_name, static_cast<xcb_atom_t>(XCB_ATOM_WM_NAME)}) {
        auto* reply = xcb_get_property_reply(m_c, xcb_get_property(m_c, 0, id, property, XCB_GET_PROPERTY_TYPE_ANY, 0, gui::max_title / 4), nullptr);
        if (reply == nullptr)
            continue;
        int length = xcb_get_property_value_length(reply);
        if (reply->format == 8 && length > 0) {
            std::string title(static_cast<char const*>(xcb_get_property_value(reply)), std::min<size_t>(length, gui::max_title));
            free(reply);
            send(gui::Title {id, title});
            return;
        }
        free(reply);
    }
}

void Bridge::mark_dirty(Window& w, uint32_t top, uint32_t bottom)
{
    bottom = std::min(bottom, w.height);
    if (top >= bottom)
        return;
    if (w.dirty_top >= w.dirty_bottom) {
        w.dirty_top = top;
        w.dirty_bottom = bottom;
        return;
    }
    w.dirty_top = std::min(w.dirty_top, top);
    w.dirty_bottom = std::max(w.dirty_bottom, bottom);
}

void Bridge::on_event(xcb_generic_event_t* event)
{
    uint8_t const type = event->response_type & 0x7f;
    if (type == 0)
        return; // an error: a window that went away meanwhile
    if (type == m_damage_event + XCB_DAMAGE_NOTIFY) {
        auto* notify = reinterpret_cast<xcb_damage_notify_event_t*>(event);
        auto found = m_windows.find(notify->drawable);
        if (found != m_windows.end())
            mark_dirty(found->second, std::max<int>(notify->area.y, 0), std::max<int>(notify->area.y + notify->area.height, 0));
        return;
    }
    switch (type) {
    case XCB_CREATE_NOTIFY: {
        auto* e = reinterpret_cast<xcb_create_notify_event_t*>(event);
        if (e->parent == m_screen->root && e->window != m_own)
            track(e->window, e->x, e->y, e->width, e->height, e->override_redirect != 0, false);
        return;
    }
    case XCB_DESTROY_NOTIFY: {
        auto* e = reinterpret_cast<xcb_destroy_notify_event_t*>(event);
        if (m_windows.erase(e->window) != 0)
            send(gui::Destroy {e->window});
        return;
    }
    case XCB_MAP_NOTIFY: {
        auto* e = reinterpret_cast<xcb_map_notify_event_t*>(event);
        auto found = m_windows.find(e->window);
        if (found == m_windows.end())
            return;
        found->second.mapped = true;
        mark_dirty(found->second, 0, found->second.height);
        send(gui::Map {e->window});
        return;
    }
    case XCB_UNMAP_NOTIFY: {
        auto* e = reinterpret_cast<xcb_unmap_notify_event_t*>(event);
        auto found = m_windows.find(e->window);
        if (found == m_windows.end())
            return;
        found->second.mapped = false;
        send(gui::Unmap {e->window});
        return;
    }
    case XCB_CONFIGURE_NOTIFY: {
        auto* e = reinterpret_cast<xcb_configure_notify_event_t*>(event);
        auto found = m_windows.find(e->window);
        if (found == m_windows.end() || e->width == 0 || e->height == 0 || e->width > gui::max_dimension || e->height > gui::max_dimension)
            return;
        Window& w = found->second;
        bool const resized = w.width != e->width || w.height != e->height;
        w.x = e->x;
        w.y = e->y;
        w.width = e->width;
        w.height = e->height;
        w.override_redirect = e->override_redirect != 0;
        if (resized)
            mark_dirty(w, 0, w.height);
        send(gui::Configure {e->window, {w.x, w.y, w.width, w.height}, w.override_redirect});
        return;
    }
    case XCB_PROPERTY_NOTIFY: {
        auto* e = reinterpret_cast<xcb_property_notify_event_t*>(event);
        if (m_windows.contains(e->window) && (e->atom == m_net_wm_name || e->atom == XCB_ATOM_WM_NAME))
            send_title(e->window);
        return;
    }
    case XCB_SELECTION_REQUEST:
        return answer_selection_request(*reinterpret_cast<xcb_selection_request_event_t*>(event));
    case XCB_SELECTION_NOTIFY:
        return read_clipboard(*reinterpret_cast<xcb_selection_notify_event_t*>(event));
    case XCB_SELECTION_CLEAR:
        m_paste.clear();
        return;
    default:
        return;
    }
}

// Changed rows go into the daemon's buffer as whole rows (a band has the buffer's own stride), then
// the daemon is told which.
void Bridge::copy_damage()
{
    for (auto& [id, w] : m_windows) {
        if (w.dirty_top >= w.dirty_bottom || !w.mapped || w.segment == 0 || w.buffer_width != w.width || w.buffer_height != w.height)
            continue;
        uint32_t const top = w.dirty_top, rows = w.dirty_bottom - w.dirty_top;
        w.dirty_top = w.dirty_bottom = 0;
        xcb_damage_subtract(m_c, w.damage, XCB_NONE, XCB_NONE);
        auto* reply = xcb_shm_get_image_reply(m_c,
            xcb_shm_get_image(m_c, id, 0, static_cast<int16_t>(top), static_cast<uint16_t>(w.width), static_cast<uint16_t>(rows), ~0U,
                XCB_IMAGE_FORMAT_Z_PIXMAP, w.segment, top * w.width * 4),
            nullptr);
        if (reply == nullptr)
            continue; // unmapped meanwhile
        free(reply);
        send(gui::Damage {id, w.serial, {0, static_cast<int32_t>(top), w.width, rows}});
    }
}

void Bridge::answer_selection_request(xcb_selection_request_event_t const& request)
{
    xcb_selection_notify_event_t notify {};
    notify.response_type = XCB_SELECTION_NOTIFY;
    notify.time = request.time;
    notify.requestor = request.requestor;
    notify.selection = request.selection;
    notify.target = request.target;
    notify.property = XCB_ATOM_NONE;
    xcb_atom_t const property = request.property == XCB_ATOM_NONE ? request.target : request.property;
    if (request.selection == m_clipboard && request.owner == m_own && !m_paste.empty()) {
        if (request.target == m_targets) {
            xcb_atom_t targets[] = {m_targets, m_utf8, XCB_ATOM_STRING, m_text};
            xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, request.requestor, property, XCB_ATOM_ATOM, 32, 4, targets);
            notify.property = property;
        } else if (request.target == m_utf8 || request.target == XCB_ATOM_STRING || request.target == m_text) {
            xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, request.requestor, property, request.target == m_text ? m_utf8 : request.target, 8,
                static_cast<uint32_t>(m_paste.size()), m_paste.data());
            notify.property = property;
        }
    }
    xcb_send_event(m_c, 0, request.requestor, XCB_EVENT_MASK_NO_EVENT, reinterpret_cast<char const*>(&notify));
}

void Bridge::read_clipboard(xcb_selection_notify_event_t const& notify)
{
    if (notify.requestor != m_own || notify.property == XCB_ATOM_NONE)
        return;
    auto* reply = xcb_get_property_reply(m_c, xcb_get_property(m_c, 1, m_own, m_property, XCB_GET_PROPERTY_TYPE_ANY, 0, gui::max_clipboard / 4 + 1), nullptr);
    if (reply == nullptr)
        return;
    int const length = xcb_get_property_value_length(reply);
    if (reply->format != 8 || reply->bytes_after != 0 || static_cast<size_t>(length) > gui::max_clipboard)
        std::fprintf(stderr, "bulkhead-gui-agent: the clipboard holds no text of at most %zu bytes: nothing copied\n", gui::max_clipboard);
    else
        send(gui::ClipboardData {std::string(static_cast<char const*>(xcb_get_property_value(reply)), static_cast<size_t>(length))});
    free(reply);
}

void Bridge::on_daemon_message(gui::DaemonMessage const& message, sys::UniqueFd fd)
{
    auto window_of = [&](uint32_t id) -> Window* {
        auto found = m_windows.find(id);
        return found == m_windows.end() ? nullptr : &found->second;
    };
    xcb_window_t const root = m_screen->root;
    if (auto const* buffer = std::get_if<gui::Buffer>(&message)) {
        Window* w = window_of(buffer->window);
        if (w == nullptr || !fd)
            return;
        if (w->segment != 0)
            xcb_shm_detach(m_c, w->segment);
        w->segment = xcb_generate_id(m_c);
        xcb_shm_attach_fd(m_c, w->segment, fd.release(), 0); // xcb closes it once sent
        w->serial = buffer->serial;
        w->buffer_width = buffer->width;
        w->buffer_height = buffer->height;
        mark_dirty(*w, 0, w->height);
        return;
    }
    if (auto const* key = std::get_if<gui::Key>(&message)) {
        if (window_of(key->window) != nullptr)
            xcb_test_fake_input(m_c, key->pressed ? XCB_KEY_PRESS : XCB_KEY_RELEASE, static_cast<uint8_t>(key->keycode), XCB_CURRENT_TIME, root, 0, 0, 0);
        return;
    }
    if (auto const* button = std::get_if<gui::Button>(&message)) {
        Window* w = window_of(button->window);
        if (w == nullptr)
            return;
        xcb_test_fake_input(m_c, XCB_MOTION_NOTIFY, 0, XCB_CURRENT_TIME, root, static_cast<int16_t>(w->x + button->x), static_cast<int16_t>(w->y + button->y), 0);
        xcb_test_fake_input(m_c, button->pressed ? XCB_BUTTON_PRESS : XCB_BUTTON_RELEASE, static_cast<uint8_t>(button->button), XCB_CURRENT_TIME, root, 0, 0, 0);
        return;
    }
    if (auto const* motion = std::get_if<gui::Motion>(&message)) {
        if (Window* w = window_of(motion->window))
            xcb_test_fake_input(m_c, XCB_MOTION_NOTIFY, 0, XCB_CURRENT_TIME, root, static_cast<int16_t>(w->x + motion->x), static_cast<int16_t>(w->y + motion->y), 0);
        return;
    }
    if (auto const* focus = std::get_if<gui::Focus>(&message)) {
        Window* w = window_of(focus->window);
        if (w != nullptr && w->mapped)
            xcb_set_input_focus(m_c, XCB_INPUT_FOCUS_POINTER_ROOT, focus->window, XCB_CURRENT_TIME);
        return;
    }
    if (auto const* resize = std::get_if<gui::Resize>(&message)) {
        if (window_of(resize->window) == nullptr)
            return;
        auto const& g = resize->geometry;
        uint32_t values[] = {static_cast<uint32_t>(g.x), static_cast<uint32_t>(g.y), g.width, g.height};
        xcb_configure_window(m_c, resize->window, XCB_CONFIG_WINDOW_X | XCB_CONFIG_WINDOW_Y | XCB_CONFIG_WINDOW_WIDTH | XCB_CONFIG_WINDOW_HEIGHT, values);
        return;
    }
    if (auto const* close = std::get_if<gui::Close>(&message)) {
        if (window_of(close->window) == nullptr)
            return;
        // WM_DELETE_WINDOW where the program takes it, else the program's connection is closed.
        bool polite = false;
        auto* reply = xcb_get_property_reply(m_c, xcb_get_property(m_c, 0, close->window, m_protocols, XCB_ATOM_ATOM, 0, 32), nullptr);
        if (reply != nullptr && reply->format == 32) {
            auto const* atoms = static_cast<xcb_atom_t const*>(xcb_get_property_value(reply));
            for (int i = 0; i < xcb_get_property_value_length(reply) / 4; ++i)
                polite = polite || atoms[i] == m_delete;
        }
        free(reply);
        if (!polite) {
            xcb_kill_client(m_c, close->window);
            return;
        }
        xcb_client_message_event_t event {};
        event.response_type = XCB_CLIENT_MESSAGE;
        event.format = 32;
        event.window = close->window;
        event.type = m_protocols;
        event.data.data32[0] = m_delete;
        event.data.data32[1] = XCB_CURRENT_TIME;
        xcb_send_event(m_c, 0, close->window, XCB_EVENT_MASK_NO_EVENT, reinterpret_cast<char const*>(&event));
        return;
    }
    if (std::holds_alternative<gui::ClipboardRequest>(message)) {
        xcb_convert_selection(m_c, m_own, m_clipboard, m_utf8, m_property, XCB_CURRENT_TIME);
        return;
    }
    if (auto const* paste = std::get_if<gui::ClipboardPaste>(&message)) {
        m_paste = paste->text;
        xcb_set_selection_owner(m_c, m_own, m_clipboard, XCB_CURRENT_TIME);
        return;
    }
    // Hello: nothing to do (the screen was sized when the X server started).
}

void Bridge::on_daemon_record()
{
    auto record = sys::receive_record(m_socket, gui::max_record, 1);
    if (record.is_error()) {
        if (record.error().code() == EAGAIN || record.error().code() == EINTR)
            return;
        die("the GUI socket: " + record.error().message());
    }
    if (record.value().end_of_stream)
        std::exit(0); // the daemon went away: the broker starts a new pair
    auto message = gui::decode_daemon(record.value().bytes);
    if (message.is_error())
        die("a bad record from the GUI daemon: " + message.error().message());
    sys::UniqueFd fd;
    auto& fds = record.value().fds;
    bool const is_buffer = std::holds_alternative<gui::Buffer>(message.value());
    if (fds.size() != (is_buffer ? 1U : 0U))
        die("a record from the GUI daemon with the wrong descriptors");
    if (is_buffer)
        fd = std::move(fds.front());
    on_daemon_message(message.value(), std::move(fd));
}

void Bridge::run()
{
    int const xfd = xcb_get_file_descriptor(m_c);
    for (;;) {
        while (xcb_generic_event_t* event = xcb_poll_for_event(m_c)) {
            on_event(event);
            free(event);
        }
        if (xcb_connection_has_error(m_c) != 0)
            die("the compartment's X server went away");
        copy_damage();
        xcb_flush(m_c);
        // Events that arrived while we waited for a reply are in xcb's queue, not on the socket.
        if (xcb_generic_event_t* queued = xcb_poll_for_queued_event(m_c)) {
            on_event(queued);
            free(queued);
            continue;
        }
        pollfd fds[] = {{m_socket, POLLIN, 0}, {xfd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            die("poll: " + std::string(std::strerror(errno)));
        if (fds[0].revents != 0)
            on_daemon_record();
    }
}

} // namespace

// In a sanitizer build (make sanitize): LeakSanitizer stops the world with ptrace, which this program
// runs inside a compartment, whose seccomp filter denies it; it runs without leak detection (AddressSanitizer and UBSan still check
// it). Read by the sanitizer runtime only; a normal build never calls it.
extern "C" char const* __asan_default_options()
{
    return "detect_leaks=0";
}

int main(int argc, char** argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && std::strcmp(argv[1], "--start-x") == 0)
        return start_x(argv[2]);
    if (argc != 1) {
        std::fprintf(stderr, "usage: bulkhead-gui-agent [--start-x WIDTHxHEIGHT]\n");
        return 2;
    }
    struct stat info {};
    int type = 0;
    socklen_t length = sizeof(type);
    if (fstat(0, &info) < 0 || !S_ISSOCK(info.st_mode) || getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type != SOCK_SEQPACKET)
        die("standard input is not the GUI socket (the broker starts this program)");
    xcb_connection_t* c = connect_display(10000);
    if (c == nullptr)
        die("cannot connect to the compartment's X server :0");
    Bridge bridge(c, 0);
    bridge.setup();
    bridge.run();
}

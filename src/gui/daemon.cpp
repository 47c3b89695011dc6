// bulkhead-guid: the host-side GUI daemon of one compartment, started by the broker.
//
//   bulkhead-guid --name NAME --color 0xRRGGBB --uid UID   descriptor 3: the compartment's GUI socket,
//                                                          descriptor 4: the control socket to the broker
//   bulkhead-guid --probe                                  print the display's screen size (WxH)
//
// It connects to the host display ($DISPLAY, $XAUTHORITY), then confines itself before it reads a
// byte from the compartment: its own uid, no capabilities, no new network or IPC namespace access, a
// Landlock ruleset that allows no file at all, and a seccomp allow-list without open or socket.
//
// Each compartment window becomes a host window 2*B pixels wider and taller, whose ring of B pixels
// is filled opaquely with the label colour (the window's background, and again on every expose);
// the compartment's pixels are put only into the interior, so nothing it sends can reach the ring.
// Its title is "[NAME] " and the compartment's title in printable ASCII. Override-redirect windows
// (menus) are framed too, and lose the flag when they would cover more than 90% of the screen.
// Input reaches the compartment only from its own windows; Ctrl-Shift-C / Ctrl-Shift-V are kept
// from it and go to the broker's clipboard. A malformed record disconnects (exit status 3).
#include "gui/protocol.hpp"
#include "gui/x11.hpp"
#include "sandbox/landlock.hpp"
#include "sys/fd.hpp"
#include "sys/socket.hpp"

#include <seccomp.h>
#include <xcb/shm.h>
#include <xcb/xcb.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <map>
#include <poll.h>
#include <sched.h>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

using namespace bulkhead;

namespace {

constexpr int compartment_fd = 3;
constexpr int broker_fd = 4;
constexpr int border = 3;
constexpr uint64_t max_buffer_bytes = 1ULL << 30; // all of one compartment's window buffers
constexpr int exit_misbehaved = 3;
constexpr size_t max_queued = 4096; // records to the agent not yet taken by its socket

std::string g_name;

void say(std::string const& message)
{
    std::fprintf(stderr, "bulkhead-guid[%s]: %s\n", g_name.c_str(), message.c_str());
}

// _exit: nothing runs after the decision to end (no atexit handler, whose system calls the seccomp
// filter may not allow; the display connection and buffers go with the process).
[[noreturn]] void die(std::string const& message, int status = 1)
{
    say(message);
    std::fflush(stderr);
    _exit(status);
}

[[noreturn]] void misbehaved(std::string const& what)
{
    die("the compartment's GUI agent " + what + ": its display is disconnected", exit_misbehaved);
}

// No file, no new socket, no process, no signal to anyone: what is left is talking on the
// descriptors it holds and making buffers.
void confine(uid_t uid)
{
    if (unshare(CLONE_NEWNET | CLONE_NEWIPC) < 0)
        die("unshare: " + std::string(std::strerror(errno)));
    if (setgroups(0, nullptr) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
        die("dropping to uid " + std::to_string(uid) + ": " + std::strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("prctl: " + std::string(std::strerror(errno)));
    auto ruleset = sandbox::landlock_prepare({});
    if (ruleset.is_error())
        die("landlock: " + ruleset.error().message());
    if (ruleset.value() && sandbox::landlock_enforce(ruleset.value().get()).is_error())
        die("landlock_restrict_self failed");
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (filter == nullptr)
        die("seccomp_init failed");
    for (int call : {SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
             SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(close), SCMP_SYS(memfd_create), SCMP_SYS(ftruncate), SCMP_SYS(fcntl),
             SCMP_SYS(dup), SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(futex),
             SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(getpid), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
             SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(restart_syscall), SCMP_SYS(sigaltstack), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(getrandom)})
        if (seccomp_rule_add(filter, SCMP_ACT_ALLOW, call, 0) < 0)
            die("seccomp_rule_add failed");
    if (seccomp_load(filter) < 0)
        die("seccomp_load failed");
    seccomp_release(filter);
}

struct HostWindow {
    xcb_window_t host = 0;
    gui::Geometry geometry; // the compartment's window
    // The host window as last placed: on the screen with its whole ring, at most the screen's size;
    // its interior shows the compartment window from its top-left corner.
    gui::Geometry frame;
    bool override_redirect = false;
    uint32_t serial = 0;
    uint32_t buffer_width = 0, buffer_height = 0;
    xcb_shm_seg_t segment = 0;
};

class Daemon {
public:
    Daemon(xcb_connection_t* c, uint32_t color) : m_c(c), m_color(color) {}
    void setup();
    void run();

private:
    xcb_atom_t atom(char const* name) { return gui::intern(m_c, name); }
    void send_agent(gui::DaemonMessage const& message, int fd = -1);
    void flush_agent();
    void send_broker(gui::ControlMessage const& message);
    void on_agent_record();
    void on_agent_message(gui::AgentMessage const& message);
    void on_broker_record();
    void on_event(xcb_generic_event_t* event);
    void create(gui::Create const& m);
    void destroy(uint32_t id);
    void new_buffer(uint32_t id, HostWindow& w);
    void place(HostWindow& w);
    gui::Geometry frame_of(gui::Geometry const& g) const;
    uint32_t interior_width(HostWindow const& w) const { return w.frame.width - 2 * border; }
    uint32_t interior_height(HostWindow const& w) const { return w.frame.height - 2 * border; }
    void set_title(HostWindow const& w, std::string const& title);
    void redraw(HostWindow const& w);
    void put(HostWindow const& w, gui::Geometry const& r);
    HostWindow* by_id(uint32_t id);
    std::pair<uint32_t, HostWindow*> by_host(xcb_window_t host);

    xcb_connection_t* m_c;
    uint32_t m_color;
    xcb_screen_t* m_screen = nullptr;
    xcb_gcontext_t m_ring_gc = 0, m_copy_gc = 0;
    std::map<uint32_t, HostWindow> m_windows;
    std::map<xcb_window_t, uint32_t> m_by_host;
    uint64_t m_buffer_bytes = 0;
    uint32_t m_next_serial = 1;
    struct Outgoing {
        std::vector<uint8_t> bytes;
        sys::UniqueFd fd;
    };
    std::deque<Outgoing> m_out;
    xcb_keycode_t m_key_c = 0, m_key_v = 0;
    xcb_keycode_t m_swallowed = 0; // the key of a Ctrl-Shift-C/V: its release is kept too
    xcb_atom_t m_net_wm_name = 0, m_utf8 = 0, m_protocols = 0, m_delete = 0, m_label_color = 0, m_label_name = 0;
};

void Daemon::setup()
{
    m_screen = xcb_setup_roots_iterator(xcb_get_setup(m_c)).data;
    // The pixels are copied as they are: both X servers must hold 24-bit colour in 32-bit pixels.
    bool true_color = false;
    for (auto depths = xcb_screen_allowed_depths_iterator(m_screen); depths.rem != 0; xcb_depth_next(&depths))
        for (auto visuals = xcb_depth_visuals_iterator(depths.data); visuals.rem != 0; xcb_visualtype_next(&visuals))
            if (visuals.data->visual_id == m_screen->root_visual)
                true_color = visuals.data->_class == XCB_VISUAL_CLASS_TRUE_COLOR && visuals.data->red_mask == 0xff0000
                    && visuals.data->green_mask == 0xff00 && visuals.data->blue_mask == 0xff;
    if (m_screen->root_depth != 24 || !true_color)
        die("the display is not 24-bit TrueColor (RGB 8:8:8)");
    if (!gui::shm_passes_fds(m_c))
        die("the display's MIT-SHM cannot take descriptors (1.2 needed)");
    m_net_wm_name = atom("_NET_WM_NAME");
    m_utf8 = atom("UTF8_STRING");
    m_protocols = atom("WM_PROTOCOLS");
    m_delete = atom("WM_DELETE_WINDOW");
    m_label_color = atom("_BULKHEAD_LABEL_COLOR");
    m_label_name = atom("_BULKHEAD_COMPARTMENT");
    m_ring_gc = xcb_generate_id(m_c);
    xcb_create_gc(m_c, m_ring_gc, m_screen->root, XCB_GC_FOREGROUND, &m_color);
    m_copy_gc = xcb_generate_id(m_c);
    uint32_t no_exposures = 0;
    xcb_create_gc(m_c, m_copy_gc, m_screen->root, XCB_GC_GRAPHICS_EXPOSURES, &no_exposures);
    // The keys of Ctrl-Shift-C and Ctrl-Shift-V on this display.
    xcb_setup_t const* setup = xcb_get_setup(m_c);
    uint8_t const count = setup->max_keycode - setup->min_keycode + 1;
    auto* map = xcb_get_keyboard_mapping_reply(m_c, xcb_get_keyboard_mapping(m_c, setup->min_keycode, count), nullptr);
    if (map != nullptr) {
        auto const* syms = xcb_get_keyboard_mapping_keysyms(map);
        for (int i = 0; i < count; ++i) {
            xcb_keysym_t sym = syms[i * map->keysyms_per_keycode];
            if ((sym == 'c' || sym == 'C') && m_key_c == 0)
                m_key_c = static_cast<xcb_keycode_t>(setup->min_keycode + i);
            if ((sym == 'v' || sym == 'V') && m_key_v == 0)
                m_key_v = static_cast<xcb_keycode_t>(setup->min_keycode + i);
        }
        free(map);
    }
    xcb_flush(m_c);
}

// Records to the agent queue up while its socket is full (it may be busy copying a frame); an agent
// that lets max_queued pile up does not read, and is disconnected: the daemon never blocks on it.
void Daemon::send_agent(gui::DaemonMessage const& message, int fd)
{
    if (m_out.size() >= max_queued)
        misbehaved("does not read what the daemon sends");
    Outgoing out {gui::encode(message), {}};
    if (fd >= 0) {
        out.fd = sys::UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 5));
        if (!out.fd)
            die("dup: " + std::string(std::strerror(errno)));
    }
    m_out.push_back(std::move(out));
    flush_agent();
}

void Daemon::flush_agent()
{
    while (!m_out.empty()) {
        auto const& out = m_out.front();
        int fds[] = {out.fd.get()};
        auto sent = out.fd ? sys::send_record(compartment_fd, out.bytes, fds) : sys::send_record(compartment_fd, out.bytes);
        if (sent.is_error() && (sent.error().code() == EAGAIN || sent.error().code() == ENOBUFS))
            return;
        if (sent.is_error())
            die("the compartment's GUI agent went away", 0);
        m_out.pop_front();
    }
}

void Daemon::send_broker(gui::ControlMessage const& message)
{
    auto sent = sys::send_record(broker_fd, gui::encode(message));
    if (sent.is_error() && sent.error().code() == EAGAIN)
        say("the broker is busy: a clipboard key was dropped");
    else if (sent.is_error())
        die("the broker went away", 0);
}

HostWindow* Daemon::by_id(uint32_t id)
{
    auto found = m_windows.find(id);
    return found == m_windows.end() ? nullptr : &found->second;
}

std::pair<uint32_t, HostWindow*> Daemon::by_host(xcb_window_t host)
{
    auto found = m_by_host.find(host);
    if (found == m_by_host.end())
        return {0, nullptr};
    return {found->second, by_id(found->second)};
}

// Where the host window goes: the interior over the compartment's coordinates, the ring around it,
// moved (and cut) so that the whole ring is on the screen: no window of a compartment covers the
// screen, or hides its ring past the screen's edge.
gui::Geometry Daemon::frame_of(gui::Geometry const& g) const
{
    int32_t const screen_width = m_screen->width_in_pixels, screen_height = m_screen->height_in_pixels;
    gui::Geometry frame;
    frame.width = static_cast<uint32_t>(std::min<int64_t>(int64_t(g.width) + 2 * border, screen_width));
    frame.height = static_cast<uint32_t>(std::min<int64_t>(int64_t(g.height) + 2 * border, screen_height));
    frame.x = std::clamp<int32_t>(g.x - border, 0, screen_width - static_cast<int32_t>(frame.width));
    frame.y = std::clamp<int32_t>(g.y - border, 0, screen_height - static_cast<int32_t>(frame.height));
    return frame;
}

void Daemon::place(HostWindow& w)
{
    w.frame = frame_of(w.geometry);
    uint32_t values[] = {static_cast<uint32_t>(w.frame.x), static_cast<uint32_t>(w.frame.y), w.frame.width, w.frame.height};
    xcb_configure_window(m_c, w.host, XCB_CONFIG_WINDOW_X | XCB_CONFIG_WINDOW_Y | XCB_CONFIG_WINDOW_WIDTH | XCB_CONFIG_WINDOW_HEIGHT, values);
}

// A buffer the compartment cannot shrink or grow (sealed before the compartment sees it), shared by
// the compartment's X server (which writes it) and the host's (which reads it).
void Daemon::new_buffer(uint32_t id, HostWindow& w)
{
    if (w.segment != 0) {
        xcb_shm_detach(m_c, w.segment);
        m_buffer_bytes -= uint64_t(w.buffer_width) * w.buffer_height * 4;
        w.segment = 0;
    }
    uint64_t const bytes = uint64_t(w.geometry.width) * w.geometry.height * 4;
    if (m_buffer_bytes + bytes > max_buffer_bytes)
        misbehaved("asked for more than " + std::to_string(max_buffer_bytes >> 20) + " MiB of window buffers");
    int fd = memfd_create("bulkhead-gui", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) < 0
        || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0
        || (fcntl(fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        die("making a window buffer: " + std::string(std::strerror(errno)));
    int host_copy = fcntl(fd, F_DUPFD_CLOEXEC, 5);
    if (host_copy < 0)
        die("dup: " + std::string(std::strerror(errno)));
    w.segment = xcb_generate_id(m_c);
    xcb_shm_attach_fd(m_c, w.segment, host_copy, 1); // read-only for the host's server; xcb closes it
    w.serial = m_next_serial++;
    w.buffer_width = w.geometry.width;
    w.buffer_height = w.geometry.height;
    m_buffer_bytes += bytes;
    send_agent(gui::Buffer {id, w.serial, w.buffer_width, w.buffer_height}, fd);
    close(fd);
}

void Daemon::set_title(HostWindow const& w, std::string const& untrusted_title)
{
    std::string const title = gui::framed_title(g_name, untrusted_title);
    auto length = static_cast<uint32_t>(title.size());
    xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, w.host, XCB_ATOM_WM_NAME, XCB_ATOM_STRING, 8, length, title.data());
    xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, w.host, m_net_wm_name, m_utf8, 8, length, title.data());
}

void Daemon::create(gui::Create const& m)
{
    if (m_windows.contains(m.window))
        misbehaved("created a window twice");
    if (m_windows.size() >= gui::max_windows)
        misbehaved("made more than " + std::to_string(gui::max_windows) + " windows");
    HostWindow& w = m_windows[m.window];
    w.geometry = m.geometry;
    w.override_redirect = m.override_redirect;
    uint64_t const screen = uint64_t(m_screen->width_in_pixels) * m_screen->height_in_pixels;
    if (w.override_redirect && uint64_t(m.geometry.width) * m.geometry.height * 10 > screen * 9) {
        say("an override-redirect window of " + std::to_string(m.geometry.width) + "x" + std::to_string(m.geometry.height)
            + " covers more than 90% of the screen: shown as a normal window");
        w.override_redirect = false;
    }
    w.host = xcb_generate_id(m_c);
    w.frame = frame_of(w.geometry);
    uint32_t const events = XCB_EVENT_MASK_EXPOSURE | XCB_EVENT_MASK_KEY_PRESS | XCB_EVENT_MASK_KEY_RELEASE | XCB_EVENT_MASK_BUTTON_PRESS
        | XCB_EVENT_MASK_BUTTON_RELEASE | XCB_EVENT_MASK_POINTER_MOTION | XCB_EVENT_MASK_STRUCTURE_NOTIFY | XCB_EVENT_MASK_FOCUS_CHANGE;
    uint32_t values[] = {m_color, w.override_redirect ? 1U : 0U, events};
    xcb_create_window(m_c, XCB_COPY_FROM_PARENT, w.host, m_screen->root, static_cast<int16_t>(w.frame.x), static_cast<int16_t>(w.frame.y),
        static_cast<uint16_t>(w.frame.width), static_cast<uint16_t>(w.frame.height), 0, XCB_WINDOW_CLASS_INPUT_OUTPUT, m_screen->root_visual,
        XCB_CW_BACK_PIXEL | XCB_CW_OVERRIDE_REDIRECT | XCB_CW_EVENT_MASK, values);
    m_by_host[w.host] = m.window;
    std::string const wm_class = "bulkhead-" + g_name + '\0' + "bulkhead-" + g_name + '\0';
    xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, w.host, XCB_ATOM_WM_CLASS, XCB_ATOM_STRING, 8, static_cast<uint32_t>(wm_class.size()), wm_class.data());
    xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, w.host, m_label_color, XCB_ATOM_CARDINAL, 32, 1, &m_color);
    xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, w.host, m_label_name, XCB_ATOM_STRING, 8, static_cast<uint32_t>(g_name.size()), g_name.data());
    xcb_change_property(m_c, XCB_PROP_MODE_REPLACE, w.host, m_protocols, XCB_ATOM_ATOM, 32, 1, &m_delete);
    set_title(w, "");
    new_buffer(m.window, w);
}

void Daemon::destroy(uint32_t id)
{
    HostWindow* w = by_id(id);
    if (w == nullptr)
        return;
    if (w->segment != 0) {
        xcb_shm_detach(m_c, w->segment);
        m_buffer_bytes -= uint64_t(w->buffer_width) * w->buffer_height * 4;
    }
    xcb_destroy_window(m_c, w->host);
    m_by_host.erase(w->host);
    m_windows.erase(id);
}

void Daemon::redraw(HostWindow const& w)
{
    uint16_t const width = static_cast<uint16_t>(w.frame.width), height = static_cast<uint16_t>(w.frame.height);
    xcb_rectangle_t ring[] = {{0, 0, width, border}, {0, static_cast<int16_t>(height - border), width, border}, {0, 0, border, height},
        {static_cast<int16_t>(width - border), 0, border, height}};
    xcb_poly_fill_rectangle(m_c, w.host, m_ring_gc, 4, ring);
    if (w.segment != 0 && w.buffer_width == w.geometry.width && w.buffer_height == w.geometry.height)
        put(w, {0, 0, w.buffer_width, w.buffer_height});
}

void Daemon::on_agent_message(gui::AgentMessage const& message)
{
    if (auto const* m = std::get_if<gui::Create>(&message))
        return create(*m);
    if (auto const* m = std::get_if<gui::ClipboardData>(&message)) {
        if (!gui::valid_text(m->text)) {
            say("the compartment's clipboard is not UTF-8 text: nothing copied");
            return;
        }
        return send_broker(gui::Copy {m->text});
    }
    // Every other record names a window the agent created.
    uint32_t const id = std::visit([](auto const& m) -> uint32_t {
        if constexpr (requires { m.window; })
            return m.window;
        return 0;
    }, message);
    HostWindow* w = by_id(id);
    if (w == nullptr)
        misbehaved("named a window it never created");
    if (std::holds_alternative<gui::Destroy>(message))
        return destroy(id);
    if (std::holds_alternative<gui::Map>(message)) {
        xcb_map_window(m_c, w->host);
        return;
    }
    if (std::holds_alternative<gui::Unmap>(message)) {
        xcb_unmap_window(m_c, w->host);
        return;
    }
    if (auto const* m = std::get_if<gui::Title>(&message))
        return set_title(*w, m->text);
    if (auto const* m = std::get_if<gui::Configure>(&message)) {
        bool const resized = m->geometry.width != w->geometry.width || m->geometry.height != w->geometry.height;
        bool const moved = m->geometry.x != w->geometry.x || m->geometry.y != w->geometry.y;
        w->geometry = m->geometry;
        if (moved || resized)
            place(*w);
        if (resized)
            new_buffer(id, *w);
        return;
    }
    auto const& damage = std::get<gui::Damage>(message);
    if (damage.serial != w->serial)
        return; // for a buffer since replaced
    auto const& r = damage.rect;
    if (r.x + r.width > w->buffer_width || r.y + r.height > w->buffer_height)
        misbehaved("damaged pixels outside its window");
    put(*w, r);
}

// The compartment's pixels of `r` (inside its buffer), cut to the interior: never onto the ring.
void Daemon::put(HostWindow const& w, gui::Geometry const& r)
{
    uint32_t const x = static_cast<uint32_t>(r.x), y = static_cast<uint32_t>(r.y);
    if (x >= interior_width(w) || y >= interior_height(w))
        return;
    uint32_t const width = std::min(r.width, interior_width(w) - x), height = std::min(r.height, interior_height(w) - y);
    xcb_shm_put_image(m_c, w.host, m_copy_gc, static_cast<uint16_t>(w.buffer_width), static_cast<uint16_t>(w.buffer_height),
        static_cast<uint16_t>(x), static_cast<uint16_t>(y), static_cast<uint16_t>(width), static_cast<uint16_t>(height),
        static_cast<int16_t>(border + x), static_cast<int16_t>(border + y), 24, XCB_IMAGE_FORMAT_Z_PIXMAP, 0, w.segment, 0);
}

void Daemon::on_agent_record()
{
    auto record = sys::receive_record(compartment_fd, gui::max_record, 0);
    if (record.is_error()) {
        if (record.error().code() == EAGAIN || record.error().code() == EINTR)
            return;
        misbehaved("sent a bad record (" + record.error().message() + ")");
    }
    if (record.value().end_of_stream)
        die("the compartment's GUI agent went away", 0);
    auto message = gui::decode_agent(record.value().bytes);
    if (message.is_error())
        misbehaved("sent a malformed record (" + message.error().message() + ")");
    on_agent_message(message.value());
}

void Daemon::on_broker_record()
{
    auto record = sys::receive_record(broker_fd, gui::max_record, 0);
    if (record.is_error() && (record.error().code() == EAGAIN || record.error().code() == EINTR))
        return;
    if (record.is_error() || record.value().end_of_stream)
        die("the broker went away", 0);
    auto message = gui::decode_control(record.value().bytes);
    if (message.is_error())
        die("a bad record from the broker: " + message.error().message());
    if (auto const* give = std::get_if<gui::PasteGive>(&message.value()))
        send_agent(gui::ClipboardPaste {give->text});
    else if (auto const* refused = std::get_if<gui::PasteRefused>(&message.value()))
        say("paste refused: " + refused->reason);
}

void Daemon::on_event(xcb_generic_event_t* event)
{
    uint8_t const type = event->response_type & 0x7f;
    if (type == 0) {
        // An error of one of our requests (a window the compartment made go away meanwhile): said, at most 20 times.
        static int said = 0;
        auto* error = reinterpret_cast<xcb_generic_error_t*>(event);
        if (said++ < 20)
            say("X error " + std::to_string(error->error_code) + " of request " + std::to_string(error->major_code) + "." + std::to_string(error->minor_code));
        return;
    }
    switch (type) {
    case XCB_EXPOSE: {
        auto* e = reinterpret_cast<xcb_expose_event_t*>(event);
        if (auto [id, w] = by_host(e->window); w != nullptr && e->count == 0)
            redraw(*w);
        return;
    }
    case XCB_KEY_PRESS:
    case XCB_KEY_RELEASE: {
        auto* e = reinterpret_cast<xcb_key_press_event_t*>(event);
        auto [id, w] = by_host(e->event);
        if (w == nullptr)
            return;
        bool const pressed = type == XCB_KEY_PRESS;
        uint16_t const chord = XCB_MOD_MASK_CONTROL | XCB_MOD_MASK_SHIFT;
        if (pressed && (e->state & chord) == chord && (e->detail == m_key_c || e->detail == m_key_v)) {
            m_swallowed = e->detail;
            if (e->detail == m_key_c)
                send_agent(gui::ClipboardRequest {});
            else
                send_broker(gui::PasteAsk {});
            return;
        }
        if (!pressed && e->detail == m_swallowed && m_swallowed != 0) {
            m_swallowed = 0;
            return;
        }
        send_agent(gui::Key {id, e->detail, pressed});
        return;
    }
    case XCB_BUTTON_PRESS:
    case XCB_BUTTON_RELEASE: {
        auto* e = reinterpret_cast<xcb_button_press_event_t*>(event);
        auto [id, w] = by_host(e->event);
        if (w != nullptr && e->detail >= 1 && e->detail <= 15)
            send_agent(gui::Button {id, e->detail, type == XCB_BUTTON_PRESS, e->event_x - border, e->event_y - border});
        return;
    }
    case XCB_MOTION_NOTIFY: {
        auto* e = reinterpret_cast<xcb_motion_notify_event_t*>(event);
        if (auto [id, w] = by_host(e->event); w != nullptr)
            send_agent(gui::Motion {id, e->event_x - border, e->event_y - border});
        return;
    }
    case XCB_FOCUS_IN: {
        auto* e = reinterpret_cast<xcb_focus_in_event_t*>(event);
        if (auto [id, w] = by_host(e->event); w != nullptr)
            send_agent(gui::Focus {id});
        return;
    }
    case XCB_CONFIGURE_NOTIFY: {
        // The host's window manager moved or resized a window: the compartment's follows.
        auto* e = reinterpret_cast<xcb_configure_notify_event_t*>(event);
        auto [id, w] = by_host(e->window);
        if (w == nullptr || e->width <= 2 * border || e->height <= 2 * border)
            return;
        auto* where = xcb_translate_coordinates_reply(m_c, xcb_translate_coordinates(m_c, w->host, m_screen->root, 0, 0), nullptr);
        gui::Geometry frame {where != nullptr ? where->dst_x : w->frame.x, where != nullptr ? where->dst_y : w->frame.y, e->width, e->height};
        free(where);
        if (frame.x == w->frame.x && frame.y == w->frame.y && frame.width == w->frame.width && frame.height == w->frame.height)
            return; // where we put it
        w->frame = frame;
        gui::Geometry g {frame.x + border, frame.y + border, frame.width - 2 * border, frame.height - 2 * border};
        if (g.width > gui::max_dimension || g.height > gui::max_dimension)
            return;
        send_agent(gui::Resize {id, g});
        return;
    }
    case XCB_CLIENT_MESSAGE: {
        auto* e = reinterpret_cast<xcb_client_message_event_t*>(event);
        if (auto [id, w] = by_host(e->window); w != nullptr && e->type == m_protocols && e->data.data32[0] == m_delete)
            send_agent(gui::Close {id});
        return;
    }
    default:
        return;
    }
}

void Daemon::run()
{
    send_agent(gui::Hello {gui::protocol_version, m_screen->width_in_pixels, m_screen->height_in_pixels});
    send_broker(gui::Ready {m_screen->width_in_pixels, m_screen->height_in_pixels});
    int const xfd = xcb_get_file_descriptor(m_c);
    for (;;) {
        while (xcb_generic_event_t* event = xcb_poll_for_event(m_c)) {
            on_event(event);
            free(event);
        }
        if (xcb_connection_has_error(m_c) != 0)
            die("the display went away");
        xcb_flush(m_c);
        // Events that arrived while we waited for a reply are in xcb's queue, not on the socket.
        if (xcb_generic_event_t* queued = xcb_poll_for_queued_event(m_c)) {
            on_event(queued);
            free(queued);
            continue;
        }
        pollfd fds[] = {{compartment_fd, static_cast<short>(POLLIN | (m_out.empty() ? 0 : POLLOUT)), 0}, {broker_fd, POLLIN, 0}, {xfd, POLLIN, 0}};
        if (poll(fds, 3, -1) < 0 && errno != EINTR)
            die("poll: " + std::string(std::strerror(errno)));
        if (fds[0].revents & POLLOUT)
            flush_agent();
        // A bounded batch per turn from the compartment, so that a flood cannot starve the display.
        for (int i = 0; i < 64 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0; ++i) {
            on_agent_record();
            pollfd again {compartment_fd, POLLIN, 0};
            if (poll(&again, 1, 0) <= 0)
                break;
        }
        if (fds[1].revents != 0)
            on_broker_record();
    }
}

xcb_connection_t* connect_display()
{
    xcb_connection_t* c = xcb_connect(nullptr, nullptr);
    if (xcb_connection_has_error(c) != 0)
        die(std::string("cannot open the display '") + (getenv("DISPLAY") != nullptr ? getenv("DISPLAY") : "") + "'");
    return c;
}

} // namespace

// In a sanitizer build (make sanitize): LeakSanitizer stops the world with ptrace, which this program
// runs under its own seccomp filter, which denies it; it runs without leak detection (AddressSanitizer and UBSan still check
// it). Read by the sanitizer runtime only; a normal build never calls it.
extern "C" char const* __asan_default_options()
{
    return "detect_leaks=0";
}

int main(int argc, char** argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && std::strcmp(argv[1], "--probe") == 0) {
        g_name = "probe";
        xcb_connection_t* c = connect_display();
        xcb_screen_t* screen = xcb_setup_roots_iterator(xcb_get_setup(c)).data;
        std::printf("%ux%u\n", screen->width_in_pixels, screen->height_in_pixels);
        xcb_disconnect(c);
        return 0;
    }
    uint32_t color = 0;
    long uid = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string const option = argv[i];
        if (option == "--name")
            g_name = argv[i + 1];
        else if (option == "--color")
            color = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 0));
        else if (option == "--uid")
            uid = std::strtol(argv[i + 1], nullptr, 10);
    }
    if (g_name.empty() || uid <= 0 || color > 0xffffff || argc != 7) {
        std::fprintf(stderr, "usage: bulkhead-guid --name NAME --color 0xRRGGBB --uid UID (started by the broker) | --probe\n");
        return 2;
    }
    xcb_connection_t* c = connect_display();
    if (fcntl(compartment_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(broker_fd, F_SETFL, O_NONBLOCK) < 0)
        die("descriptors 3 and 4 must be the GUI and control sockets");
    confine(static_cast<uid_t>(uid));
    Daemon daemon(c, color);
    daemon.setup();
    daemon.run();
}

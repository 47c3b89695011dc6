// A plain-xcb X client the GUI tests run inside and outside compartments (see usage() for modes):
// `hostile` fakes a trusted "[vault]" window (title and green frame), optionally with a fullscreen
// override-redirect window on top; `frames` repaints a window as fast as the server allows, each
// frame's colour being the CLOCK_MONOTONIC time in 100us units (drawn by the server with a fill, or
// with --image uploaded as a whole image, as client-side renderers do); `observe` reads one pixel of such a
// window to measure the fps and latency another client sees; `find` locates a window by title.
#include <xcb/xcb.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <numeric>
#include <poll.h>
#include <sched.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

xcb_connection_t* conn = nullptr;
xcb_screen_t* screen = nullptr;

[[noreturn]] void usage()
{
    std::fputs("usage: bulkhead-gui-testclient hostile [--override-fullscreen] | frames [--width W] "
               "[--height H] [--seconds S] [--title T] | observe --window ID [--x X] [--y Y] "
               "[--seconds S] | find --name-prefix PREFIX [--timeout-ms T] | close --window ID\n",
               stderr);
    std::exit(2);
}

[[noreturn]] void die(char const* msg)
{
    std::fprintf(stderr, "gui-testclient: %s\n", msg);
    std::exit(1);
}

// CLOCK_MONOTONIC in 100-microsecond units (what `frames` writes into its pixels), and in seconds.
uint64_t now_100us()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 10000 + static_cast<uint64_t>(ts.tv_nsec) / 100000;
}

double now_seconds()
{
    return double(now_100us()) / 1e4;
}

// A round trip: once it returns, the server has processed every earlier request.
void round_trip()
{
    xcb_get_input_focus_reply_t* r = xcb_get_input_focus_reply(conn, xcb_get_input_focus(conn), nullptr);
    if (r == nullptr)
        die("connection to the X server lost");
    std::free(r);
}

xcb_atom_t atom(char const* name)
{
    auto len = static_cast<uint16_t>(std::strlen(name));
    xcb_intern_atom_reply_t* r = xcb_intern_atom_reply(conn, xcb_intern_atom(conn, 0, len, name), nullptr);
    if (r == nullptr)
        die("intern_atom failed");
    xcb_atom_t a = r->atom;
    std::free(r);
    return a;
}

// A window, its size, and a GC to paint it with.
struct Win {
    xcb_window_t id;
    xcb_gcontext_t gc;
    int w, h;
};

// An unmapped window of the root's depth and visual, titled through both WM_NAME and _NET_WM_NAME.
Win make_window(int x, int y, int w, int h, uint32_t background, bool override, std::string const& title)
{
    xcb_window_t win = xcb_generate_id(conn);
    // In mask-bit order: BACK_PIXEL, OVERRIDE_REDIRECT, EVENT_MASK.
    uint32_t values[] = {background, override ? 1u : 0u, XCB_EVENT_MASK_EXPOSURE};
    xcb_create_window(conn, XCB_COPY_FROM_PARENT, win, screen->root, int16_t(x), int16_t(y), uint16_t(w), uint16_t(h),
                      0, XCB_WINDOW_CLASS_INPUT_OUTPUT, screen->root_visual,
                      XCB_CW_BACK_PIXEL | XCB_CW_OVERRIDE_REDIRECT | XCB_CW_EVENT_MASK, values);
    auto len = static_cast<uint32_t>(title.size());
    xcb_change_property(conn, XCB_PROP_MODE_REPLACE, win, XCB_ATOM_WM_NAME, XCB_ATOM_STRING, 8, len, title.data());
    xcb_change_property(conn, XCB_PROP_MODE_REPLACE, win, atom("_NET_WM_NAME"), atom("UTF8_STRING"), 8, len,
                        title.data());
    xcb_gcontext_t gc = xcb_generate_id(conn);
    uint32_t gc_values[] = {0, 0}; // FOREGROUND, GRAPHICS_EXPOSURES
    xcb_create_gc(conn, gc, win, XCB_GC_FOREGROUND | XCB_GC_GRAPHICS_EXPOSURES, gc_values);
    return {win, gc, w, h};
}

// Fills a rectangle with a 0xRRGGBB colour (the pixel value on a 24-bit TrueColor root visual).
void fill(Win const& win, uint32_t colour, int x, int y, int w, int h)
{
    xcb_change_gc(conn, win.gc, XCB_GC_FOREGROUND, &colour);
    xcb_rectangle_t r {int16_t(x), int16_t(y), uint16_t(w), uint16_t(h)};
    xcb_poly_fill_rectangle(conn, win.id, win.gc, 1, &r);
}

// ---- hostile: a look-alike of a trusted window ---------------------------------------------------

struct Painted {
    Win win;
    uint32_t body;
    bool frame; // the fake 3-pixel frame along the four edges
};

void paint(Painted const& p)
{
    uint32_t const green = 0x73d216;
    int w = p.win.w, h = p.win.h;
    fill(p.win, p.body, 0, 0, w, h);
    if (p.frame) {
        fill(p.win, green, 0, 0, w, 3);     // top
        fill(p.win, green, 0, h - 3, w, 3); // bottom
        fill(p.win, green, 0, 0, 3, h);     // left
        fill(p.win, green, w - 3, 0, 3, h); // right
    }
}

// Repaints on Expose; false once the connection is gone.
bool handle_events(std::vector<Painted> const& wins)
{
    while (xcb_generic_event_t* ev = xcb_poll_for_event(conn)) {
        for (Painted const& p : wins)
            if ((ev->response_type & 0x7f) == XCB_EXPOSE
                && reinterpret_cast<xcb_expose_event_t*>(ev)->window == p.win.id)
                paint(p);
        std::free(ev);
    }
    xcb_flush(conn);
    return xcb_connection_has_error(conn) == 0;
}

int run_hostile(bool override_fullscreen)
{
    std::vector<Painted> wins {{make_window(100, 100, 400, 300, 0x3465a4, false, "[vault] login"), 0x3465a4, true}};
    int sw = screen->width_in_pixels, sh = screen->height_in_pixels;
    if (override_fullscreen)
        wins.push_back({make_window(0, 0, sw, sh, 0x75507b, true, "fullscreen"), 0x75507b, false});
    for (Painted const& p : wins)
        xcb_map_window(conn, p.win.id);
    // Let the server map the windows (queueing Expose), paint what was exposed, and wait until drawn.
    round_trip();
    if (!handle_events(wins))
        die("connection to the X server lost");
    round_trip();
    std::puts("ready");
    std::fflush(stdout);

    pollfd fds[2] = {{xcb_get_file_descriptor(conn), POLLIN, 0}, {0, POLLIN, 0}};
    while (handle_events(wins)) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            return 1;
        if (fds[1].revents & POLLNVAL) {
            fds[1].fd = -1; // no stdin at all: run until killed
        } else if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[256];
            ssize_t n = read(0, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                return 0; // stdin closed: the test is done with us
        }
    }
    return 1;
}

// ---- frames: paint the clock as fast as possible -------------------------------------------------

// Uploads a whole frame of `colour` as the client-side renderers of real programs do (GTK, browsers):
// PutImage, in bands of rows that fit the server's request length.
void put_frame(Win const& win, std::vector<uint32_t>& pixels, uint32_t colour, int width, int height)
{
    std::fill(pixels.begin(), pixels.end(), colour);
    uint32_t const max_bytes = xcb_get_maximum_request_length(conn) * 4 - 64;
    int const rows = std::max(1, int(max_bytes / (uint32_t(width) * 4)));
    for (int y = 0; y < height; y += rows) {
        int const band = std::min(rows, height - y);
        xcb_put_image(conn, XCB_IMAGE_FORMAT_Z_PIXMAP, win.id, win.gc, uint16_t(width), uint16_t(band), 0, int16_t(y), 0, screen->root_depth,
            uint32_t(width) * uint32_t(band) * 4, reinterpret_cast<uint8_t const*>(pixels.data() + size_t(y) * size_t(width)));
    }
}

int run_frames(int width, int height, double seconds, std::string const& title, bool image)
{
    std::vector<uint32_t> pixels(image ? size_t(width) * size_t(height) : 0);
    Win win = make_window(0, 0, width, height, 0, false, title);
    xcb_map_window(conn, win.id);
    xcb_flush(conn);
    for (bool exposed = false; !exposed;) {
        xcb_generic_event_t* ev = xcb_wait_for_event(conn);
        if (ev == nullptr)
            die("connection to the X server lost");
        exposed = (ev->response_type & 0x7f) == XCB_EXPOSE;
        std::free(ev);
    }
    std::puts("ready");
    std::fflush(stdout);

    long frames = 0;
    double start = now_seconds(), elapsed = 0;
    while ((elapsed = now_seconds() - start) < seconds) {
        if (image)
            put_frame(win, pixels, uint32_t(now_100us() & 0xffffff), width, height);
        else
            fill(win, uint32_t(now_100us() & 0xffffff), 0, 0, width, height);
        round_trip(); // never queue frames faster than the server draws them
        while (xcb_generic_event_t* ev = xcb_poll_for_event(conn))
            std::free(ev);
        ++frames;
    }
    std::printf("{\"frames\":%ld,\"seconds\":%.3f,\"fps\":%.1f}\n", frames, elapsed, double(frames) / elapsed);
    return 0;
}

// ---- observe: watch a `frames` window from another client ----------------------------------------

int run_observe(xcb_window_t win, int x, int y, double seconds)
{
    bool msb_first = xcb_get_setup(conn)->image_byte_order == XCB_IMAGE_ORDER_MSB_FIRST;
    int64_t last = -1; // the first read is only a baseline
    std::vector<double> lat_ms;
    long frames = 0;
    double start = now_seconds(), elapsed = 0;
    while ((elapsed = now_seconds() - start) < seconds) {
        xcb_generic_error_t* err = nullptr;
        auto cookie = xcb_get_image(conn, XCB_IMAGE_FORMAT_Z_PIXMAP, win, int16_t(x), int16_t(y), 1, 1, ~0u);
        xcb_get_image_reply_t* r = xcb_get_image_reply(conn, cookie, &err);
        if (r == nullptr) {
            std::fprintf(stderr, "gui-testclient: cannot read window %u (X error %d)\n", win,
                         err != nullptr ? err->error_code : -1);
            return 1;
        }
        uint64_t now = now_100us();
        uint8_t const* d = xcb_get_image_data(r);
        int n = std::min(xcb_get_image_data_length(r), 4);
        uint32_t pixel = 0; // one pixel, in the server's byte order
        for (int i = 0; i < n; ++i)
            pixel |= uint32_t(d[i]) << (msb_first ? 8 * (n - 1 - i) : 8 * i);
        std::free(r);
        uint32_t c = pixel & 0xffffff;
        if (last >= 0 && c != last) {
            ++frames;
            uint32_t lat = (uint32_t(now & 0xffffff) - c) & 0xffffff;
            if (lat <= 100000) // over 10 s: not one of our timestamps
                lat_ms.push_back(lat / 10.0);
        }
        last = c;
        sched_yield();
    }
    std::sort(lat_ms.begin(), lat_ms.end());
    auto pct = [&](double p) { // nearest-rank percentile
        size_t rank = size_t(std::ceil(p * double(lat_ms.size())));
        return lat_ms.empty() ? 0.0 : lat_ms[std::clamp<size_t>(rank, 1, lat_ms.size()) - 1];
    };
    double mean = lat_ms.empty() ? 0.0 : std::accumulate(lat_ms.begin(), lat_ms.end(), 0.0) / double(lat_ms.size());
    std::printf("{\"frames_seen\":%ld,\"seconds\":%.3f,\"fps\":%.1f,\"latency_ms_p50\":%.3f,"
                "\"latency_ms_p90\":%.3f,\"latency_ms_mean\":%.3f}\n",
                frames, elapsed, double(frames) / elapsed, pct(0.5), pct(0.9), mean);
    return 0;
}

// ---- find: a window by title prefix --------------------------------------------------------------

bool title_has_prefix(xcb_window_t win, xcb_atom_t prop, std::string const& prefix)
{
    auto cookie = xcb_get_property(conn, 0, win, prop, XCB_GET_PROPERTY_TYPE_ANY, 0, 1024);
    xcb_get_property_reply_t* r = xcb_get_property_reply(conn, cookie, nullptr);
    if (r == nullptr) // the window vanished meanwhile
        return false;
    bool match = r->format == 8 && size_t(xcb_get_property_value_length(r)) >= prefix.size()
        && std::memcmp(xcb_get_property_value(r), prefix.data(), prefix.size()) == 0;
    std::free(r);
    return match;
}

// Depth-first search under `parent`, in stacking order; 0 when nothing matches.
xcb_window_t search(xcb_window_t parent, xcb_atom_t net_wm_name, std::string const& prefix)
{
    xcb_query_tree_reply_t* r = xcb_query_tree_reply(conn, xcb_query_tree(conn, parent), nullptr);
    if (r == nullptr)
        return 0;
    xcb_window_t* children = xcb_query_tree_children(r);
    std::vector<xcb_window_t> kids(children, children + xcb_query_tree_children_length(r));
    std::free(r);
    for (xcb_window_t k : kids) {
        if (title_has_prefix(k, net_wm_name, prefix) || title_has_prefix(k, XCB_ATOM_WM_NAME, prefix))
            return k;
        if (xcb_window_t found = search(k, net_wm_name, prefix))
            return found;
    }
    return 0;
}

// ---- close: what a window manager's close button sends (WM_DELETE_WINDOW) ----

xcb_atom_t atom_of(char const* name)
{
    auto* reply = xcb_intern_atom_reply(conn, xcb_intern_atom(conn, 0, uint16_t(std::strlen(name)), name), nullptr);
    xcb_atom_t value = reply != nullptr ? reply->atom : xcb_atom_t(XCB_ATOM_NONE);
    std::free(reply);
    return value;
}

int run_close(xcb_window_t window)
{
    xcb_client_message_event_t event {};
    event.response_type = XCB_CLIENT_MESSAGE;
    event.format = 32;
    event.window = window;
    event.type = atom_of("WM_PROTOCOLS");
    event.data.data32[0] = atom_of("WM_DELETE_WINDOW");
    event.data.data32[1] = XCB_CURRENT_TIME;
    xcb_send_event(conn, 0, window, XCB_EVENT_MASK_NO_EVENT, reinterpret_cast<char const*>(&event));
    round_trip();
    return 0;
}

int run_find(std::string const& prefix, long timeout_ms)
{
    xcb_atom_t net_wm_name = atom("_NET_WM_NAME");
    double deadline = now_seconds() + double(timeout_ms) / 1000.0;
    do {
        if (xcb_window_t w = search(screen->root, net_wm_name, prefix)) {
            auto* t = xcb_translate_coordinates_reply(conn, xcb_translate_coordinates(conn, w, screen->root, 0, 0),
                                                      nullptr);
            auto* g = xcb_get_geometry_reply(conn, xcb_get_geometry(conn, w), nullptr);
            bool ok = t != nullptr && g != nullptr; // else it vanished after the search: look again
            if (ok)
                std::printf("%u\t%d\t%d\t%u\t%u\n", w, t->dst_x, t->dst_y, g->width, g->height);
            std::free(t);
            std::free(g);
            if (ok)
                return 0;
        }
        if (xcb_connection_has_error(conn) != 0)
            die("connection to the X server lost");
    } while (now_seconds() < deadline && usleep(20000) == 0); // look again every 20 ms
    std::fprintf(stderr, "gui-testclient: no window titled \"%s...\" within %ld ms\n", prefix.c_str(), timeout_ms);
    return 1;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2)
        usage();
    std::string mode = argv[1];
    std::map<std::string, char const*> allowed = {{"hostile", " --override-fullscreen "},
                                                  {"frames", " --width --height --seconds --title --image "},
                                                  {"observe", " --window --x --y --seconds "},
                                                  {"find", " --name-prefix --timeout-ms "},
                                                  {"close", " --window "}};
    if (allowed.count(mode) == 0)
        usage();
    // Every option takes one value except the flag --override-fullscreen.
    std::map<std::string, std::string> opts;
    for (int i = 2; i < argc; ++i) {
        std::string opt = argv[i];
        if (std::strstr(allowed[mode], (" " + opt + " ").c_str()) == nullptr)
            usage();
        if (opt == "--override-fullscreen" || opt == "--image")
            opts[opt] = "1";
        else if (i + 1 < argc)
            opts[opt] = argv[++i];
        else
            usage();
    }
    // A numeric option (decimal, or 0x hex), defaulting to `def`, within [min, max].
    auto num = [&](char const* name, double def, double min, double max, bool integral = true) {
        if (opts.count(name) == 0)
            return def;
        char const* s = opts[name].c_str();
        char* end = nullptr;
        double v = std::strtod(s, &end);
        if (end == s || *end != '\0' || !(v >= min && v <= max) || (integral && v != std::floor(v)))
            usage();
        return v;
    };
    auto str = [&](char const* name, char const* def) { return opts.count(name) ? opts[name] : std::string(def); };
    double seconds = num("--seconds", 5, 0.001, 1e6, false);
    int width = int(num("--width", 1280, 1, 32767)), height = int(num("--height", 800, 1, 32767));
    int x = int(num("--x", 10, 0, 32767)), y = int(num("--y", 10, 0, 32767));
    auto window = xcb_window_t(num("--window", 0, 0, 4294967295.0));
    long timeout_ms = long(num("--timeout-ms", 5000, 0, 1e9));
    std::string prefix = str("--name-prefix", "");
    if (((mode == "observe" || mode == "close") && window == 0) || (mode == "find" && prefix.empty()))
        usage();

    int screen_num = 0;
    conn = xcb_connect(nullptr, &screen_num);
    if (conn == nullptr || xcb_connection_has_error(conn) != 0)
        die("cannot open display");
    xcb_screen_iterator_t it = xcb_setup_roots_iterator(xcb_get_setup(conn));
    for (int i = 0; i < screen_num; ++i) // xcb_connect returned a valid screen number
        xcb_screen_next(&it);
    screen = it.data;

    int rc = mode == "hostile" ? run_hostile(opts.count("--override-fullscreen") != 0)
        : mode == "frames"     ? run_frames(width, height, seconds, str("--title", "frames"), opts.count("--image") != 0)
        : mode == "observe"    ? run_observe(window, x, y, seconds)
        : mode == "close"      ? run_close(window)
                               : run_find(prefix, timeout_ms);
    std::fflush(stdout);
    xcb_disconnect(conn);
    return rc;
}

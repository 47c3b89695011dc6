#include "gui/x11.hpp"

#include <cstdlib>
#include <cstring>
#include <xcb/shm.h>

namespace bulkhead::gui {

xcb_atom_t intern(xcb_connection_t* c, char const* name)
{
    auto* reply = xcb_intern_atom_reply(c, xcb_intern_atom(c, 0, static_cast<uint16_t>(std::strlen(name)), name), nullptr);
    xcb_atom_t value = reply != nullptr ? reply->atom : xcb_atom_t {XCB_ATOM_NONE};
    free(reply);
    return value;
}

bool shm_passes_fds(xcb_connection_t* c)
{
    auto* shm = xcb_shm_query_version_reply(c, xcb_shm_query_version(c), nullptr);
    bool const fds = shm != nullptr && (shm->major_version > 1 || (shm->major_version == 1 && shm->minor_version >= 2));
    free(shm);
    return fds;
}

} // namespace bulkhead::gui

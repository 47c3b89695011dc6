// Small xcb helpers shared by the GUI agent and the GUI daemon (both speak X with libxcb).
#pragma once

#include <xcb/xcb.h>

namespace bulkhead::gui {

// The atom of `name` (interned), XCB_ATOM_NONE when the server does not answer.
xcb_atom_t intern(xcb_connection_t* c, char const* name);
// Whether the server's MIT-SHM takes descriptors (version 1.2: shm_attach_fd), which both sides need.
bool shm_passes_fds(xcb_connection_t* c);

} // namespace bulkhead::gui

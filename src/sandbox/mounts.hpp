// The compartment's filesystem: a fresh tmpfs root holding the read-only template, a generated
// /etc, a minimal /dev, a new /proc with its dangerous files masked, /tmp, /run, a home and the
// spec's binds. Every mount is made with the fd-based mount API, and every path inside the new
// root is resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so nothing in the tree
// can redirect a mount. Runs in the compartment's first process, in its new mount namespace.
#pragma once

#include "base/result.hpp"
#include "sandbox/spec.hpp"
#include "sys/fd.hpp"

#include <optional>
#include <string>
#include <vector>

namespace bulkhead::sandbox {

// One host object the compartment gets: a detached, already restricted copy of a host mount
// tree, or a symlink to replicate.
struct HostEntry {
    std::string target;  // relative to the new root, e.g. "usr", "etc/ld.so.cache"
    sys::UniqueFd tree;  // detached mount (open_tree clone); invalid for a link
    std::string link;    // link text when the template has a symlink here
    bool directory = true;
};

struct HostSources {
    sys::UniqueFd mountpoint; // O_PATH fd of the host directory the root is attached to
    std::vector<HostEntry> template_entries;
    std::vector<HostEntry> etc_entries;
    std::vector<HostEntry> dev_entries;
    std::vector<HostEntry> binds;
    std::optional<HostEntry> home;
};

// Phase one, still with the host identity (host paths may be readable by host root only): opens
// every host object named by the spec. Nothing is attached yet.
// `idmapped`: trees from open_idmapped_binds, taken for the binds they are made for.
Result<HostSources> open_host_sources(Spec const& spec, std::string const& mountpoint, std::vector<sys::UniqueFd>& idmapped);
// The idmapped binds of the spec (Bind::idmap), made on the host side before the clone: an idmap
// needs host root, which the compartment's first process no longer has. Index-aligned with
// spec.binds, invalid for the others.
Result<std::vector<sys::UniqueFd>> open_idmapped_binds(Spec const& spec);
// A detached, idmapped, nosuid/nodev copy of the directory open as `dir_fd` (a live grant),
// read-only unless `mode` says otherwise.
Result<sys::UniqueFd> open_idmapped_tree_of(int dir_fd, IdMap const& map, AccessMode mode);
// Phase two, as root inside: builds the root from `sources` on the mountpoint and returns an
// O_PATH fd of the new root mount.
Result<sys::UniqueFd> build_root(Spec const& spec, HostSources& sources);
// Makes `root` the root of the calling process's mount namespace and detaches the old root.
Status pivot_into(sys::UniqueFd const& root);

// The generated /etc files, exposed for tests.
std::string generated_passwd();
std::string generated_group();
std::string generated_hosts(std::string const& hostname);

} // namespace bulkhead::sandbox

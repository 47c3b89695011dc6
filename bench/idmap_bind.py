#!/usr/bin/env python3
# bench/idmap_bind.py SRC DST ONDISK HOST: binds SRC at DST through an idmapped mount (on-disk id
# ONDISK, uid and gid, shown as HOST), as the broker makes them for volumes; for bench/data.sh, which
# measures the mapping alone on the host. Needs root.
import ctypes, os, struct, sys, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_open_tree, SYS_move_mount, SYS_mount_setattr = 428, 429, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, AT_EMPTY_PATH, AT_FDCWD = 1, 0o2000000, 0x1000, -100
MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_IDMAP, CLONE_NEWUSER = 0x4, 0x100000, 0x10000000
src, dst, on_disk, host = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    if libc.unshare(CLONE_NEWUSER) != 0:
        os._exit(1)
    os.read(r, 1)
    os._exit(0)
os.close(r)
import time; time.sleep(0.05)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(f"{on_disk} {host} 1\n")
userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
os.close(w); os.waitpid(pid, 0)
tree = libc.syscall(SYS_open_tree, AT_FDCWD, src.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
if tree < 0: sys.exit(f"open_tree: {os.strerror(ctypes.get_errno())}")
attr = struct.pack("QQQQ", MOUNT_ATTR_IDMAP, 0, 0, userns)
buf = ctypes.create_string_buffer(attr)
if libc.syscall(SYS_mount_setattr, tree, b"", AT_EMPTY_PATH, buf, len(attr)) != 0:
    sys.exit(f"mount_setattr: {os.strerror(ctypes.get_errno())}")
if libc.syscall(SYS_move_mount, tree, b"", AT_FDCWD, dst.encode(), MOVE_MOUNT_F_EMPTY_PATH) != 0:
    sys.exit(f"move_mount: {os.strerror(ctypes.get_errno())}")

#!/usr/bin/env python3
"""Runs a command with io_uring blocked, as a container's default seccomp profile does.

    python3 scripts/without-io-uring.py node app.js

Installs a seccomp filter that answers io_uring_setup, io_uring_enter and io_uring_register
(syscalls 425-427 on every Linux architecture) with ENOSYS, then execs the command. Every
other system call is allowed. Needs no privileges: PR_SET_NO_NEW_PRIVS comes first.
"""
import ctypes
import errno
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_JGT_K = 0x25  # BPF_JMP | BPF_JGT | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
IO_URING_FIRST, IO_URING_LAST = 425, 427


def instruction(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    program = b"".join([
        instruction(BPF_LD_W_ABS, 0, 0, 0),  # A = seccomp_data.nr
        instruction(BPF_JGE_K, 0, 2, IO_URING_FIRST),  # nr < 425: allow
        instruction(BPF_JGT_K, 1, 0, IO_URING_LAST),  # nr > 427: allow
        instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ])
    count = len(program) // 8
    filters = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(count, ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_SECCOMP): {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()

/*
 * version.c — the library's version and error naming.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define RL_STR2(x) #x
#define RL_STR(x) RL_STR2(x)

/* The two fixed records are part of the ABI: their layout must not drift. */
_Static_assert(sizeof(ringline_cqe_t) == 40, "ringline_cqe_t is 40 bytes");
_Static_assert(sizeof(void *) != 8 || sizeof(ringline_event_t) == 64,
               "ringline_event_t is 64 bytes on 64-bit targets");
_Static_assert(sizeof(ringline_nvme_cmd_t) == 72, "nvme command is 72 bytes");

unsigned ringline_version(void) { return RINGLINE_VERSION_HEX; }

const char *ringline_version_string(void)
{
    return RL_STR(RINGLINE_VERSION_MAJOR) "." RL_STR(
        RINGLINE_VERSION_MINOR) "." RL_STR(RINGLINE_VERSION_PATCH);
}

/* strerror() is not thread-safe and strerror_r's GNU variant may return a
 * pointer into a caller buffer, so ringline keeps its own table: static
 * strings, safe from any thread and from FFI. */
struct rl_errinfo {
    int code;
    const char *name;
    const char *text;
};

#define E(c, t) {c, #c, t}
static const struct rl_errinfo rl_errors[] = {
    {0, "OK", "Success"},
    E(EPERM, "Operation not permitted"),
    E(ENOENT, "No such file, directory or matching operation"),
    E(ESRCH, "No such process"),
    E(EINTR, "Interrupted system call"),
    E(EIO, "Input/output error"),
    E(ENXIO, "No such device or address"),
    E(E2BIG, "Argument list too long"),
    E(ENOEXEC, "Exec format error"),
    E(EBADF, "Bad file descriptor or handle"),
    E(ECHILD, "No child processes"),
    E(EAGAIN, "Resource temporarily unavailable"),
    E(ENOMEM, "Cannot allocate memory"),
    E(EACCES, "Permission denied"),
    E(EFAULT, "Bad address"),
    E(EBUSY, "Device or resource busy"),
    E(EEXIST, "File or object exists"),
    E(EXDEV, "Invalid cross-device link"),
    E(ENODEV, "No such device"),
    E(ENOTDIR, "Not a directory"),
    E(EISDIR, "Is a directory"),
    E(EINVAL, "Invalid argument"),
    E(ENFILE, "Too many open files in system or table"),
    E(EMFILE, "Too many open files"),
    E(ENOTTY, "Inappropriate ioctl for device"),
    E(EFBIG, "File too large"),
    E(ENOSPC, "No space left on device"),
    E(ESPIPE, "Illegal seek"),
    E(EROFS, "Read-only file system"),
    E(EPIPE, "Broken pipe"),
    E(ERANGE, "Numerical result out of range"),
    E(EDEADLK, "Resource deadlock avoided"),
    E(ENAMETOOLONG, "File name too long"),
    E(ENOSYS, "Function not implemented"),
    E(ENOTEMPTY, "Directory not empty"),
    E(ELOOP, "Too many levels of symbolic links"),
    E(ENODATA, "No data available"),
    E(ETIME, "Timer expired"),
    E(EBADR, "Invalid request descriptor (completions were dropped)"),
    E(EOVERFLOW, "Value too large for defined data type"),
    E(EBADFD, "File descriptor in bad state"),
    E(ENOTSOCK, "Socket operation on non-socket"),
    E(EDESTADDRREQ, "Destination address required"),
    E(EMSGSIZE, "Message too long"),
    E(EPROTOTYPE, "Protocol wrong type for socket"),
    E(ENOPROTOOPT, "Protocol not available"),
    E(EPROTONOSUPPORT, "Protocol not supported"),
    E(EOPNOTSUPP, "Operation not supported"),
    E(EAFNOSUPPORT, "Address family not supported by protocol"),
    E(EADDRINUSE, "Address already in use"),
    E(EADDRNOTAVAIL, "Cannot assign requested address"),
    E(ENETDOWN, "Network is down"),
    E(ENETUNREACH, "Network is unreachable"),
    E(ECONNABORTED, "Software caused connection abort"),
    E(ECONNRESET, "Connection reset by peer"),
    E(ENOBUFS, "No buffer space available"),
    E(EISCONN, "Transport endpoint is already connected"),
    E(ENOTCONN, "Transport endpoint is not connected"),
    E(ESHUTDOWN, "Cannot send after transport endpoint shutdown"),
    E(ETIMEDOUT, "Connection timed out"),
    E(ECONNREFUSED, "Connection refused"),
    E(EHOSTUNREACH, "No route to host"),
    E(EALREADY, "Operation already in progress"),
    E(EINPROGRESS, "Operation now in progress"),
    E(ECANCELED, "Operation canceled"),
    E(EPROTO, "Protocol error"),
    E(EILSEQ, "Invalid or incomplete multibyte or wide character"),
    E(ENOMSG, "No message of desired type"),
    E(ENOTBLK, "Block device required"),
    E(EREMOTEIO, "Remote I/O error"),
    E(ENOMEDIUM, "No medium found"),
    E(ETXTBSY, "Text file busy"),
    E(EDOM, "Numerical argument out of domain"),
    E(EOWNERDEAD, "Owner died"),
    E(ENOTRECOVERABLE, "State not recoverable"),
};
#undef E

static const struct rl_errinfo *rl_err_lookup(int err)
{
    if (err < 0) {
        if (err == INT32_MIN)
            return NULL;
        err = -err;
    }
    for (size_t i = 0; i < sizeof rl_errors / sizeof rl_errors[0]; i++)
        if (rl_errors[i].code == err)
            return &rl_errors[i];
    return NULL;
}

const char *ringline_strerror(int err)
{
    const struct rl_errinfo *e = rl_err_lookup(err);
    return e ? e->text : "Unknown error";
}

const char *ringline_err_name(int err)
{
    const struct rl_errinfo *e = rl_err_lookup(err);
    return e ? e->name : "EUNKNOWN";
}

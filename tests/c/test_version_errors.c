/* Version reporting and error-code naming: ringline_version{,_string},
 * ringline_strerror and ringline_err_name (errno or -errno, never NULL). */
#include <limits.h>
#include <pthread.h>

#include "rl_test.h"

static void check_str(const char *what, int code, const char *s)
{
    if (!s)
        FAIL("%s(%d) returned NULL", what, code);
    if (!*s)
        FAIL("%s(%d) returned an empty string", what, code);
}

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        int code = (i % 140) * ((i & 1) ? -1 : 1);
        if (!ringline_strerror(code) || !ringline_err_name(code))
            return (void *)1;
    }
    return NULL;
}

int main(void)
{
    alarm(30);

    /* ---- version ---- */
    CHECK(ringline_version() == RINGLINE_VERSION_HEX);
    const char *vs = ringline_version_string();
    CHECK(vs != NULL);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RINGLINE_VERSION_MAJOR,
             RINGLINE_VERSION_MINOR, RINGLINE_VERSION_PATCH);
    if (strcmp(vs, want) != 0)
        FAIL("version_string \"%s\", want \"%s\"", vs, want);
    /* Static storage: the same pointer (or at least same text) each call. */
    CHECK(strcmp(ringline_version_string(), want) == 0);
    unsigned v = ringline_version();
    CHECK((v >> 16) == RINGLINE_VERSION_MAJOR);
    CHECK(((v >> 8) & 0xFF) == RINGLINE_VERSION_MINOR);
    CHECK((v & 0xFF) == RINGLINE_VERSION_PATCH);

    /* ---- err_name ---- */
    struct {
        int code;
        const char *name;
    } names[] = {
        {ECONNRESET, "ECONNRESET"}, {-ECONNRESET, "ECONNRESET"},
        {ENOBUFS, "ENOBUFS"},       {-ENOBUFS, "ENOBUFS"},
        {EINVAL, "EINVAL"},         {-EBADF, "EBADF"},
        {-ETIME, "ETIME"},          {-ECANCELED, "ECANCELED"},
        {-ENOENT, "ENOENT"},        {-EAGAIN, "EAGAIN"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *n = ringline_err_name(names[i].code);
        check_str("ringline_err_name", names[i].code, n);
        if (strcmp(n, names[i].name) != 0)
            FAIL("err_name(%d) = \"%s\", want \"%s\"", names[i].code, n,
                 names[i].name);
    }
    const char *unk = ringline_err_name(99999);
    check_str("ringline_err_name", 99999, unk);
    if (strcmp(unk, "EUNKNOWN") != 0)
        FAIL("err_name(99999) = \"%s\", want \"EUNKNOWN\"", unk);
    unk = ringline_err_name(-99999);
    check_str("ringline_err_name", -99999, unk);
    if (strcmp(unk, "EUNKNOWN") != 0)
        FAIL("err_name(-99999) = \"%s\", want \"EUNKNOWN\"", unk);
    /* Extremes: -INT_MIN overflows; the library must not trip on it. */
    check_str("ringline_err_name", INT_MIN, ringline_err_name(INT_MIN));
    check_str("ringline_err_name", INT_MAX, ringline_err_name(INT_MAX));
    /* 0 is not an error; any non-NULL text is acceptable. */
    const char *zero = ringline_err_name(0);
    CHECK(zero != NULL);
    printf("err_name(0) = \"%s\"\n", zero);

    /* Every code ringline's own API documents or produces has a name. */
    struct {
        int code;
        const char *name;
    } own[] = {
        {EBADF, "EBADF"},         {EINVAL, "EINVAL"},
        {ENOENT, "ENOENT"},       {EEXIST, "EEXIST"},
        {EBUSY, "EBUSY"},         {ENXIO, "ENXIO"},
        {ENFILE, "ENFILE"},       {EMFILE, "EMFILE"},
        {EALREADY, "EALREADY"},   {ETIME, "ETIME"},
        {ETIMEDOUT, "ETIMEDOUT"}, {ECANCELED, "ECANCELED"},
        {ENOBUFS, "ENOBUFS"},     {EMSGSIZE, "EMSGSIZE"},
        {EPROTO, "EPROTO"},       {E2BIG, "E2BIG"},
        {EINTR, "EINTR"},         {ENOMEM, "ENOMEM"},
        {EPERM, "EPERM"},         {EFAULT, "EFAULT"},
        {EPIPE, "EPIPE"},         {ECONNREFUSED, "ECONNREFUSED"},
        {EOPNOTSUPP, "EOPNOTSUPP"}, {EIO, "EIO"},
    };
    int unnamed = 0;
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        const char *n = ringline_err_name(-own[i].code);
        if (!n || strcmp(n, own[i].name) != 0) {
            fprintf(stderr, "err_name(-%s) = \"%s\"\n", own[i].name,
                    n ? n : "(null)");
            unnamed++;
        }
    }
    if (unnamed)
        FAIL("%d error code(s) used by ringline have no proper name",
             unnamed);
    /* For information: how the table compares with glibc's names. */
    int differ = 0;
    for (int e = 1; e < 134; e++) {
        const char *mine = ringline_err_name(e);
        const char *libc = strerrorname_np(e);
        CHECK(mine != NULL);
        if (libc && strcmp(mine, libc) != 0) {
            CHECK(strcmp(mine, "EUNKNOWN") == 0); /* unknown, never wrong */
            differ++;
        }
    }
    printf("err_name: %d of errno 1..133 unnamed (\"EUNKNOWN\")\n", differ);

    /* ---- strerror ---- */
    int codes[] = {ECONNRESET, -ECONNRESET, ENOBUFS, -ENOBUFS, 0,
                   99999,      -99999,      INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = ringline_strerror(codes[i]);
        if (!s)
            FAIL("strerror(%d) returned NULL", codes[i]);
        printf("strerror(%d) = \"%s\"\n", codes[i], s);
    }
    check_str("ringline_strerror", ECONNRESET, ringline_strerror(ECONNRESET));
    check_str("ringline_strerror", 99999, ringline_strerror(99999));
    /* errno and -errno give the same text. */
    if (strcmp(ringline_strerror(ECONNRESET), ringline_strerror(-ECONNRESET)))
        FAIL("strerror(ECONNRESET) != strerror(-ECONNRESET)");
    if (strcmp(ringline_strerror(ENOBUFS), ringline_strerror(-ENOBUFS)))
        FAIL("strerror(ENOBUFS) != strerror(-ENOBUFS)");
    /* Different errors give different texts. */
    CHECK(strcmp(ringline_strerror(ECONNRESET), ringline_strerror(ENOBUFS)));

    /* ---- thread safety smoke test: two threads at once ---- */
    pthread_t t1, t2;
    void *r1 = NULL, *r2 = NULL;
    CHECK(pthread_create(&t1, NULL, hammer, NULL) == 0);
    CHECK(pthread_create(&t2, NULL, hammer, NULL) == 0);
    pthread_join(t1, &r1);
    pthread_join(t2, &r2);
    CHECK(r1 == NULL && r2 == NULL);

    printf("version %s OK\n", vs);
    return 0;
}

/*
 * The script's STDOUT.
 *
 * A PerlIO layer pushed on STDOUT (fd 1) for the length of a request. What
 * the script prints lands in one buffer in this process, which the runner
 * sends with FCGI_END_REQUEST in a single write: no pipe and no second
 * thread for the usual response. Descriptor 1 stays real underneath (a pipe
 * the runner drains), so fileno, syswrite, system and children behave as
 * under CGI. When perl flushes STDOUT (autoflush, before fork/system/exec,
 * an explicit flush) or the buffer passes FS_OUT_STREAM_AT while the script
 * runs, the sink sends the buffer to the client at once: output streams and
 * stays in order with what children write to fd 1. In a forked child, or a
 * process told to pass output through (the child of a `fork` isolation
 * request), the layer hands everything down to fd 1, as a plain perl would.
 */
#include "glue_internal.h"
#include <perliol.h>
#include <errno.h>

#include "glue.h"

#define FS_OUT_STREAM_AT 65536

static char *fs_out_buf;
static size_t fs_out_len, fs_out_cap;
static fs_output_sink fs_out_sink;
/* Set in the child of a `fork` isolation request: fd 1 is its response. */
static int fs_out_pass_through;

void fs_output_forget_pending(void)
{
    fs_out_len = 0;
}

static int fs_out_send(void)
{
    /* A print that succeeded leaves $! as it was, as a write to a pipe
     * does: the sink's non-blocking writes may meet EAGAIN on the way
     * (and `die` exits with $! when it is set). */
    int saved_errno = errno;
    if (fs_stage_get() != FS_STAGE_RUNNING || fs_out_len == 0 || !fs_out_sink)
        return 0;
    if (fs_out_sink(fs_out_buf, fs_out_len) != 0) {
        fs_out_len = 0;
        errno = EPIPE;
        return -1;
    }
    fs_out_len = 0;
    errno = saved_errno;
    return 0;
}

/* One instance of the layer. A script that reopens STDOUT (`open STDOUT,
 * '>', $file`) keeps perl's PerlIO structure, layers and all: perl only
 * dup2()s the new file onto fd 1, after flushing. So after every flush the
 * layer checks, on its next use, that its descriptor is still the response
 * pipe; if not, it steps aside and passes everything down, as if it had
 * never been there. */
typedef struct {
    struct _PerlIO base;
    int state;
} fs_out_layer;

enum { FS_OUT_CAPTURE, FS_OUT_VERIFY, FS_OUT_PASS };

/* The response pipe (fd 1 when the layer was pushed). */
static dev_t fs_out_dev;
static ino_t fs_out_ino;

static int fs_out_capturing(pTHX_ PerlIO *f)
{
    fs_out_layer *l = PerlIOSelf(f, fs_out_layer);
    if (fs_forked || fs_out_pass_through)
        return 0;
    if (l->state == FS_OUT_VERIFY) {
        Stat_t st;
        int fd = PerlIO_fileno(f);
        l->state = (fd >= 0 && PerlLIO_fstat(fd, &st) == 0 && st.st_dev == fs_out_dev
                    && st.st_ino == fs_out_ino)
                       ? FS_OUT_CAPTURE
                       : FS_OUT_PASS;
    }
    return l->state == FS_OUT_CAPTURE;
}

static IV fs_out_pushed(pTHX_ PerlIO *f, const char *mode, SV *arg, PerlIO_funcs *tab)
{
    /* Pushed by name or as part of a dup: check the descriptor first. */
    PerlIOSelf(f, fs_out_layer)->state = FS_OUT_VERIFY;
    return PerlIOBase_pushed(aTHX_ f, mode, arg, tab);
}

static SSize_t fs_out_write(pTHX_ PerlIO *f, const void *vbuf, Size_t count)
{
    if (!fs_out_capturing(aTHX_ f))
        return PerlIO_write(PerlIONext(f), vbuf, count);
    if (fs_out_len + count > fs_out_cap) {
        size_t cap = fs_out_cap ? fs_out_cap : 16384;
        char *grown;
        while (cap < fs_out_len + count)
            cap *= 2;
        grown = (char *)realloc(fs_out_buf, cap);
        if (!grown) {
            errno = ENOMEM;
            PerlIOBase(f)->flags |= PERLIO_F_ERROR;
            return -1;
        }
        fs_out_buf = grown;
        fs_out_cap = cap;
    }
    memcpy(fs_out_buf + fs_out_len, vbuf, count);
    fs_out_len += count;
    if (fs_out_len >= FS_OUT_STREAM_AT && fs_out_send() != 0) {
        PerlIOBase(f)->flags |= PERLIO_F_ERROR;
        return -1;
    }
    return (SSize_t)count;
}

static IV fs_out_flush(pTHX_ PerlIO *f)
{
    fs_out_layer *l = PerlIOSelf(f, fs_out_layer);
    if (fs_forked || fs_out_pass_through || l->state == FS_OUT_PASS)
        return PerlIO_flush(PerlIONext(f));
    if (l->state == FS_OUT_CAPTURE)
        l->state = FS_OUT_VERIFY;
    if (fs_out_send() != 0) {
        PerlIOBase(f)->flags |= PERLIO_F_ERROR;
        return -1;
    }
    return 0;
}

/* Reading and seeking are the descriptor's business: a capture handle that
 * got the layer by name (Capture::Tiny re-applies STDOUT's layers to its
 * temp file) must still seek and read. */
static SSize_t fs_out_read(pTHX_ PerlIO *f, void *vbuf, Size_t count)
{
    return PerlIO_read(PerlIONext(f), vbuf, count);
}

static SSize_t fs_out_unread(pTHX_ PerlIO *f, const void *vbuf, Size_t count)
{
    return PerlIO_unread(PerlIONext(f), vbuf, count);
}

static IV fs_out_seek(pTHX_ PerlIO *f, Off_t offset, int whence)
{
    if (fs_out_flush(aTHX_ f) != 0)
        return -1;
    return PerlIO_seek(PerlIONext(f), offset, whence);
}

static Off_t fs_out_tell(pTHX_ PerlIO *f)
{
    return PerlIO_tell(PerlIONext(f));
}

static IV fs_out_eof(pTHX_ PerlIO *f)
{
    return PerlIO_eof(PerlIONext(f));
}

static PERLIO_FUNCS_DECL(fs_out_funcs) = {
    sizeof(PerlIO_funcs),
    "fcgi_spawn_stdout",
    sizeof(fs_out_layer),
    PERLIO_K_RAW, /* survives binmode(STDOUT) */
    fs_out_pushed,
    PerlIOBase_popped,
    NULL, /* Open: only pushed onto an open handle */
    PerlIOBase_binmode,
    NULL, /* Getarg */
    PerlIOBase_fileno,
    PerlIOBase_dup,
    fs_out_read,
    fs_out_unread,
    fs_out_write,
    fs_out_seek,
    fs_out_tell,
    PerlIOBase_close,
    fs_out_flush,
    NULL, /* Fill */
    fs_out_eof,
    PerlIOBase_error,
    PerlIOBase_clearerr,
    PerlIOBase_setlinebuf,
    NULL, NULL, NULL, NULL, NULL /* not a buffering layer */
};

const PerlIO_funcs *fs_output_funcs(void)
{
    return PERLIO_FUNCS_CAST(&fs_out_funcs);
}

void fs_output_capture(pTHX)
{
    IO *io = GvIO(gv_fetchpvs("STDOUT", GV_ADD, SVt_PVIO));
    PerlIO *f = io ? IoOFP(io) : NULL;
    Stat_t st;
    if (!f || PerlLIO_fstat(PerlIO_fileno(f), &st) != 0)
        croak("fcgi-spawn: STDOUT is not open: %s", Strerror(errno));
    /* Kept from the last request (the runner found it untouched), or new. */
    if (PerlIOBase(f)->tab != PERLIO_FUNCS_CAST(&fs_out_funcs)
        && !PerlIO_push(aTHX_ f, PERLIO_FUNCS_CAST(&fs_out_funcs), "w", NULL))
        croak("fcgi-spawn: cannot push the output layer on STDOUT: %s", Strerror(errno));
    /* A client that went away last time left the handle marked failed. */
    PerlIO_clearerr(f);
    fs_out_dev = st.st_dev;
    fs_out_ino = st.st_ino;
    PerlIOSelf(f, fs_out_layer)->state = FS_OUT_CAPTURE;
}

void fs_output_init(fs_output_sink sink)
{
    dTHX;
    fs_out_sink = sink;
    /* By name too, so code that re-applies STDOUT's layers (Capture::Tiny)
     * finds it. */
    PerlIO_define_layer(aTHX_ PERLIO_FUNCS_CAST(&fs_out_funcs));
}

void fs_output_pass_through(void)
{
    fs_out_pass_through = 1;
    fs_out_len = 0;
}

const char *fs_output_pending(size_t *len)
{
    *len = fs_out_len;
    return fs_out_buf;
}

void fs_output_clear(void)
{
    fs_out_len = 0;
    /* One huge response should not pin its buffer for the worker's life. */
    if (fs_out_cap > 4 * 1048576) {
        free(fs_out_buf);
        fs_out_buf = NULL;
        fs_out_cap = 0;
    }
}

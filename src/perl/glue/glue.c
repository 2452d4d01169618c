/*
 * Glue between Rust and libperl. See glue.h for the contract.
 *
 * Why C: interpreter set-up (PERL_SYS_INIT3, perl_construct…), the stack
 * macros (dSP, PUSHMARK, XPUSHs) and JMPENV (Perl's setjmp frames, which is
 * how `exit` unwinds) only exist as macros whose expansion depends on how
 * perl was configured. Rust calls the few functions below; the XSUBs
 * registered in xs_init give the Perl runner (perl/FCGI/Spawn/Runner.pm) the
 * handful of interpreter internals it cannot reach from Perl.
 */
#include <EXTERN.h>
#include <perl.h>
#include <XSUB.h>
#include <perliol.h>
#include <errno.h>
#include <unistd.h>
#include <pthread.h>

#include "glue.h"

static PerlInterpreter *fs_interp;
static pid_t fs_owner_pid;
/* Set in the child of any fork() after fs_set_owner_pid: cheaper than a
 * getpid() system call after every call into Perl. */
static volatile int fs_forked;

/* fork() calls made by the worker process (the script's fork, system,
 * backticks, piped open...): the runner asks whether a request forked. */
static volatile unsigned long fs_forks;

static void fs_count_fork(void)
{
    fs_forks++;
}

static char *fs_out_buf;
static size_t fs_out_len, fs_out_cap;

static void fs_mark_forked(void)
{
    fs_forked = 1;
    /* The parent's pending output is the parent's to send. */
    fs_out_len = 0;
}

/* --- the script's STDOUT ---------------------------------------------------
 *
 * A PerlIO layer pushed on STDOUT (fd 1) for the length of a request. What
 * the script prints lands in one buffer in this process, which the runner
 * sends with FCGI_END_REQUEST in a single write: no pipe and no second
 * thread for the usual response. Descriptor 1 stays real underneath (a pipe
 * the runner drains), so fileno, syswrite, system and children behave as
 * under CGI. When perl flushes STDOUT (autoflush, before fork/system/exec,
 * an explicit flush) or the buffer passes FS_OUT_STREAM_AT while the script
 * runs, the sink sends the buffer to the client at once: output streams and
 * stays in order with what children write to fd 1. In a forked child the
 * layer passes everything down to fd 1, as a plain perl would. */

#define FS_OUT_STREAM_AT 65536

static fs_output_sink fs_out_sink;
static int fs_out_streaming;

static int fs_out_send(void)
{
    if (!fs_out_streaming || fs_out_len == 0 || !fs_out_sink)
        return 0;
    if (fs_out_sink(fs_out_buf, fs_out_len) != 0) {
        fs_out_len = 0;
        errno = EPIPE;
        return -1;
    }
    fs_out_len = 0;
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
    if (fs_forked)
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
    if (fs_forked || l->state == FS_OUT_PASS)
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

/* FCGI::Spawn::Native::capture_stdout() — pushes the layer on STDOUT. */
XS(fs_xs_capture_stdout)
{
    dXSARGS;
    IO *io = GvIO(gv_fetchpvs("STDOUT", GV_ADD, SVt_PVIO));
    PerlIO *f = io ? IoOFP(io) : NULL;
    Stat_t st;
    PERL_UNUSED_VAR(items);
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
    XSRETURN_EMPTY;
}

void fs_output_init(fs_output_sink sink)
{
    dTHX;
    fs_out_sink = sink;
    /* By name too, so code that re-applies STDOUT's layers (Capture::Tiny)
     * finds it. */
    PerlIO_define_layer(aTHX_ PERLIO_FUNCS_CAST(&fs_out_funcs));
}

void fs_output_set_streaming(int on)
{
    fs_out_streaming = on;
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

void fs_before_fork_workers(void)
{
    dTHX;
    /* Perl reuses freed SV heads and bodies from free lists threaded
     * through the arenas the preload filled. A worker taking a slot from
     * them writes to a page it shares with the master and its siblings,
     * and the kernel copies the page. Leaving the master's free slots
     * unused makes workers allocate from fresh arenas instead: a few kB of
     * slots forgone for pages that stay shared. */
    PL_sv_root = NULL;
    Zero(PL_body_roots, PERL_ARENA_ROOTS_SIZE, void *);
}

unsigned long fs_fork_count(void)
{
    return fs_forks;
}

EXTERN_C void boot_DynaLoader(pTHX_ CV *cv);

/* FCGI::Spawn::Native::clear_in_eval() — called first thing by a script's
 * generated prologue. `do FILE` marks the interpreter as "inside an eval",
 * which would make $^S true and trap die; a CGI script must see $^S == 0 and
 * a die must end it (CGI::Carp's fatalsToBrowser depends on this). The eval
 * frame restores the flag when it is popped. */
XS(fs_xs_clear_in_eval)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    PL_in_eval = 0;
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::end_block_count() — length of PL_endav. */
XS(fs_xs_end_block_count)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    XSRETURN_IV(PL_endav ? (IV)(av_count(PL_endav)) : 0);
}

/* FCGI::Spawn::Native::take_end_blocks(N, FILE) — removes, among the N END
 * blocks most recently compiled (perl unshifts them, so they are at the
 * front, already in run order), those compiled from FILE, and returns them as
 * code refs for the runner to call. END blocks of modules the script loaded
 * stay where they are: they belong to the module, not to the request. */
XS(fs_xs_take_end_blocks)
{
    dXSARGS;
    IV n, i, total, kept = 0, taken = 0;
    const char *file;
    SV **blocks;
    if (items != 2)
        croak_xs_usage(cv, "count, file");
    n = SvIV(ST(0));
    file = SvPV_nolen(ST(1));
    SP -= items;
    if (!PL_endav || n <= 0)
        XSRETURN_EMPTY;
    total = (IV)av_count(PL_endav);
    if (n > total)
        n = total;
    blocks = AvARRAY(PL_endav);
    EXTEND(SP, n);
    for (i = 0; i < total; i++) {
        SV *block = blocks[i];
        const char *from = (block && SvTYPE(block) == SVt_PVCV) ? CvFILE((CV *)block) : NULL;
        if (i < n && from && strEQ(from, file)) {
            PUSHs(sv_2mortal(newRV_noinc(block)));
            taken++;
        } else {
            blocks[kept++] = block;
        }
    }
    for (i = kept; i < total; i++)
        blocks[i] = NULL;
    AvFILLp(PL_endav) = kept - 1;
    PUTBACK;
    XSRETURN(taken);
}

/* Signal handlers as the worker starts: FCGI::Spawn::Native::snapshot_signals()
 * copies the value behind each PL_psig_ptr slot (what %SIG holds), and
 * changed_signals() returns the names of those whose value differs now — a
 * C loop instead of a magic %SIG fetch (each a linear search of the signal
 * names) for every signal on every request. */
static SV *fs_signal_snapshot[SIG_SIZE];

static int fs_same_handler(pTHX_ SV *a, SV *b)
{
    int a_set = a && SvOK(a), b_set = b && SvOK(b);
    if (!a_set || !b_set)
        return a_set == b_set;
    if (SvROK(a) || SvROK(b))
        return SvROK(a) && SvROK(b) && SvRV(a) == SvRV(b);
    return sv_eq(a, b);
}

XS(fs_xs_snapshot_signals)
{
    dXSARGS;
    int i;
    PERL_UNUSED_VAR(items);
    for (i = 1; i < SIG_SIZE; i++) {
        SV *now = PL_psig_ptr ? PL_psig_ptr[i] : NULL;
        SvREFCNT_dec(fs_signal_snapshot[i]);
        fs_signal_snapshot[i] = now ? newSVsv(now) : NULL;
    }
    XSRETURN_EMPTY;
}

XS(fs_xs_changed_signals)
{
    dXSARGS;
    int i, changed = 0;
    PERL_UNUSED_VAR(items);
    SP -= items;
    for (i = 1; i < SIG_SIZE; i++) {
        SV *now = PL_psig_ptr ? PL_psig_ptr[i] : NULL;
        if (!fs_same_handler(aTHX_ now, fs_signal_snapshot[i])) {
            XPUSHs(sv_2mortal(newSVpv(PL_sig_name[i], 0)));
            changed++;
        }
    }
    PUTBACK;
    XSRETURN(changed);
}

/* FCGI::Spawn::Native::sync_env(NAME, VALUE, ...) — makes %ENV (and so
 * environ) exactly these pairs (a later pair wins), touching only what
 * differs from what is there: `%ENV = (...)` would clear the environment
 * and setenv every variable again on every request. Stores go through the
 * %ENV element magic, so environ follows and a later `$ENV{X} = ...` of the
 * script still reaches it. */
XS(fs_xs_sync_env)
{
    dXSARGS;
    HV *env = GvHVn(PL_envgv);
    HV *want = newHV();
    AV *gone = newAV();
    HE *entry;
    I32 i;
    SSize_t k;

    sv_2mortal((SV *)want);
    sv_2mortal((SV *)gone);
    if (items % 2)
        croak_xs_usage(cv, "NAME, VALUE, ...");
    for (i = 0; i < items; i += 2)
        (void)hv_store_ent(want, ST(i), SvREFCNT_inc_simple_NN(ST(i + 1)), 0);

    hv_iterinit(env);
    while ((entry = hv_iternext(env))) {
        SV *name = hv_iterkeysv(entry);
        if (!hv_exists_ent(want, name, 0))
            av_push(gone, SvREFCNT_inc_simple_NN(name));
    }
    for (k = 0; k <= av_top_index(gone); k++)
        (void)hv_delete_ent(env, *av_fetch(gone, k, 0), G_DISCARD, 0);

    hv_iterinit(want);
    while ((entry = hv_iternext(want))) {
        SV *name = hv_iterkeysv(entry);
        SV *value = hv_iterval(want, entry);
        HE *now = hv_fetch_ent(env, name, 0, 0);
        if (now && SvOK(HeVAL(now)) && sv_eq(HeVAL(now), value))
            continue;
        now = hv_fetch_ent(env, name, 1, 0);
        sv_setsv(HeVAL(now), value);
        SvSETMAGIC(HeVAL(now));
    }
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::sv_count() — live SVs in this interpreter, for
 * leak checks in tests. */
XS(fs_xs_sv_count)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    XSRETURN_IV((IV)PL_sv_count);
}

static void xs_init(pTHX)
{
    newXS("DynaLoader::boot_DynaLoader", boot_DynaLoader, __FILE__);
    newXS("FCGI::Spawn::Native::clear_in_eval", fs_xs_clear_in_eval, __FILE__);
    newXS("FCGI::Spawn::Native::end_block_count", fs_xs_end_block_count, __FILE__);
    newXS("FCGI::Spawn::Native::take_end_blocks", fs_xs_take_end_blocks, __FILE__);
    newXS("FCGI::Spawn::Native::sv_count", fs_xs_sv_count, __FILE__);
    newXS("FCGI::Spawn::Native::sync_env", fs_xs_sync_env, __FILE__);
    newXS("FCGI::Spawn::Native::snapshot_signals", fs_xs_snapshot_signals, __FILE__);
    newXS("FCGI::Spawn::Native::changed_signals", fs_xs_changed_signals, __FILE__);
    newXS("FCGI::Spawn::Native::capture_stdout", fs_xs_capture_stdout, __FILE__);
}

int fs_interp_start(int argc, char **argv, char **env)
{
    int rc;
    PERL_SYS_INIT3(&argc, &argv, &env);
    /* As perlmain.c does: perl manages environ itself, freeing what it
     * replaces. The embedder default (setenv) leaks every distinct
     * NAME=VALUE inside glibc, i.e. some bytes per request via %ENV. */
    PL_use_safe_putenv = FALSE;
    fs_interp = perl_alloc();
    if (!fs_interp)
        return -1;
    PERL_SET_CONTEXT(fs_interp);
    perl_construct(fs_interp);
    {
        dTHX;
        PL_exit_flags |= PERL_EXIT_DESTRUCT_END;
    }
    rc = perl_parse(fs_interp, xs_init, argc, argv, env);
    if (rc != 0)
        return rc;
    return perl_run(fs_interp);
}

void fs_interp_stop(void)
{
    if (!fs_interp)
        return;
    perl_destruct(fs_interp);
    perl_free(fs_interp);
    fs_interp = NULL;
    PERL_SYS_TERM();
}

void fs_set_owner_pid(int pid)
{
    static int registered;
    fs_owner_pid = (pid_t)pid;
    fs_forked = 0;
    if (!registered) {
        pthread_atfork(fs_count_fork, NULL, fs_mark_forked);
        registered = 1;
    }
}

/* A child the script fork()ed must never return into the request loop: it
 * ends here, as it would have ended in a plain CGI process (minus global
 * destruction, which would run the parent's DESTROYs a second time). */
static void end_foreign_child(pTHX_ int status)
{
    if (fs_owner_pid && fs_forked && getpid() != fs_owner_pid) {
        PerlIO_flush((PerlIO *)NULL);
        _exit(status & 0xff);
    }
}

const char *fs_error(size_t *len)
{
    dTHX;
    STRLEN l = 0;
    const char *p = SvPV_const(ERRSV, l);
    *len = (size_t)l;
    return p;
}

/* Runs `body` inside a JMPENV frame so that my_exit() (exit, or die with no
 * eval) lands here instead of unwinding out of the interpreter. This mirrors
 * the `case 2` of perl_run(). */
typedef void (*fs_body)(pTHX_ void *ctx, fs_outcome *out);

static fs_outcome run_trapping_exit(pTHX_ fs_body body, void *ctx)
{
    fs_outcome out = { FS_RETURNED, 0, 0 };
    volatile I32 oldscope = PL_scopestack_ix;
    volatile SSize_t oldsp = PL_stack_sp - PL_stack_base;
    volatile U8 old_in_eval = PL_in_eval;
    int ret;
    dJMPENV;

    JMPENV_PUSH(ret);
    switch (ret) {
    case 0:
        body(aTHX_ ctx, &out);
        break;
    case 2: /* my_exit() */
        while (PL_scopestack_ix > oldscope)
            LEAVE;
        FREETMPS;
        PL_curstash = PL_defstash;
        PL_stack_sp = PL_stack_base + oldsp;
        PL_in_eval = old_in_eval;
        out.kind = FS_EXITED;
        out.exit_status = STATUS_EXIT;
        STATUS_ALL_SUCCESS;
        break;
    default: /* 3: die with PL_restartop, should not reach us; 1: unused */
        PL_stack_sp = PL_stack_base + oldsp;
        PL_in_eval = old_in_eval;
        out.kind = FS_EXITED;
        out.exit_status = 255;
        break;
    }
    JMPENV_POP;
    end_foreign_child(aTHX_ out.kind == FS_RETURNED ? 0 : out.exit_status);
    return out;
}

struct call_ctx {
    const char *sub;
    const char *const *args;
    const size_t *lens;
    size_t nargs;
    int trap_die;
};

static void call_body(pTHX_ void *vctx, fs_outcome *out)
{
    struct call_ctx *c = (struct call_ctx *)vctx;
    size_t i;
    I32 count;
    dSP;

    ENTER;
    SAVETMPS;
    PUSHMARK(SP);
    EXTEND(SP, (SSize_t)c->nargs);
    for (i = 0; i < c->nargs; i++)
        PUSHs(sv_2mortal(newSVpvn(c->args[i], c->lens[i])));
    PUTBACK;
    count = call_pv(c->sub, G_SCALAR | (c->trap_die ? G_EVAL : 0));
    SPAGAIN;
    if (c->trap_die && SvTRUE(ERRSV)) {
        out->kind = FS_DIED;
    } else if (count == 1) {
        SV *rv = POPs;
        out->value = SvOK(rv) ? (long long)SvIV(rv) : 0;
    }
    PUTBACK;
    FREETMPS;
    LEAVE;
}

fs_outcome fs_call(const char *sub, const char *const *args, const size_t *lens,
                   size_t nargs, int trap_die)
{
    dTHX;
    struct call_ctx c = { sub, args, lens, nargs, trap_die };
    return run_trapping_exit(aTHX_ call_body, &c);
}

struct eval_ctx {
    const char *code;
    size_t len;
};

static void eval_body(pTHX_ void *vctx, fs_outcome *out)
{
    struct eval_ctx *c = (struct eval_ctx *)vctx;
    SV *src = sv_2mortal(newSVpvn(c->code, c->len));
    SV *rv;
    dSP;
    PUSHMARK(SP);
    eval_sv(src, G_SCALAR);
    SPAGAIN;
    rv = POPs;
    PUTBACK;
    if (SvTRUE(ERRSV))
        out->kind = FS_DIED;
    else
        out->value = SvOK(rv) ? (long long)SvIV(rv) : 0;
}

fs_outcome fs_eval(const char *code, size_t len)
{
    dTHX;
    struct eval_ctx c = { code, len };
    return run_trapping_exit(aTHX_ eval_body, &c);
}

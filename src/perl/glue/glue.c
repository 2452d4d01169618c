/*
 * Glue between Rust and libperl: the interpreter's life-cycle and calls
 * into it. See glue.h for the contract.
 *
 * Why C: interpreter set-up (PERL_SYS_INIT3, perl_construct…), the stack
 * macros (dSP, PUSHMARK, XPUSHs) and JMPENV (Perl's setjmp frames, which is
 * how `exit` unwinds) only exist as macros whose expansion depends on how
 * perl was configured. Rust calls the few functions below; the XSUBs
 * registered in xs_init give the Perl runner (perl/FCGI/Spawn/) the
 * handful of interpreter internals it cannot reach from Perl. The other
 * files hold one job each: output.c the script's STDOUT, state.c the state
 * a request changes, packages.c registry packages, code.c the worker's subs
 * a script redefines, process.c the request stage, exec and the `fork`
 * isolation child.
 */
#include "glue_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

#include "glue.h"

static PerlInterpreter *fs_interp;
static pid_t fs_owner_pid;
/* Set in the child of any fork() after fs_set_owner_pid: cheaper than a
 * getpid() system call after every call into Perl. */
volatile int fs_forked;
int fs_env_inherited;

/* fork() calls made by the worker process (the script's fork, system,
 * backticks, piped open...): the runner asks whether a request forked. */
static volatile unsigned long fs_forks;

/* In the child of a `fork` isolation request: where it reports its exit
 * status before its descriptors close (runner/spare.rs); -1 elsewhere. */
static int fs_exit_report_fd = -1;
/* ... and whether it reports the pages it wrote too. */
static int fs_exit_report_pages;
static void fs_note_heap_start(void);

static void fs_count_fork(void)
{
    fs_forks++;
}

static void fs_mark_forked(void)
{
    fs_forked = 1;
    /* The parent's pending output is the parent's to send. */
    fs_output_forget_pending();
    /* A process the request's child forks does not report its end. */
    if (fs_exit_report_fd >= 0) {
        close(fs_exit_report_fd);
        fs_exit_report_fd = -1;
    }
}

void fs_report_exit_on(int fd, int with_pages)
{
    fs_exit_report_fd = fd;
    fs_exit_report_pages = with_pages;
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

/* FCGI::Spawn::Native::start_script() — a perlrun script's first
 * statement. `do FILE` marks the interpreter as "inside an eval", which
 * would make $^S true and trap die; a CGI script must see $^S == 0 and a die
 * must end it (CGI::Carp's fatalsToBrowser depends on this). The eval frame
 * restores the flag when it is popped. It also tells the runner that the
 * compile is over and the script runs ($FCGI::Spawn::Compile::SCRIPT_STARTED):
 * one call in the prologue, where a statement more costs every request its
 * compile. */
XS(fs_xs_start_script)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    PL_in_eval = 0;
    sv_setiv(get_sv("FCGI::Spawn::Compile::SCRIPT_STARTED", GV_ADD), 1);
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

void fs_register_xsubs(pTHX_ const fs_xsub *table, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++)
        newXS(table[i].name, table[i].fn, __FILE__);
}

static void xs_init(pTHX)
{
    newXS("DynaLoader::boot_DynaLoader", boot_DynaLoader, __FILE__);
    newXS("FCGI::Spawn::Native::start_script", fs_xs_start_script, __FILE__);
    newXS("FCGI::Spawn::Native::sv_count", fs_xs_sv_count, __FILE__);
    fs_register_state_xsubs(aTHX);
    fs_register_package_xsubs(aTHX);
    fs_register_code_xsubs(aTHX);
    fs_register_process_xsubs(aTHX);
    fs_register_request_xsubs(aTHX);
}

/* The interpreters of this process: normally one. A reload builds the
 * next one in the master beside the current one (MULTIPLICITY: every
 * interpreter is its own struct; the current one is the thread's
 * context), then destroys whichever is not kept. The C statics that point
 * into an interpreter (code.c, state.c) are parked in its PL_modglobal
 * while another one is current. */
static int fs_interp_count;
#define FS_PARKED_KEY "FCGI::Spawn::glue::parked"

typedef struct {
    void *code, *state;
} fs_parked;

static void fs_park_statics(pTHX)
{
    fs_parked *p = (fs_parked *)calloc(1, sizeof *p);
    if (!p)
        croak("fcgi-spawn: out of memory");
    p->code = fs_code_park();
    p->state = fs_state_park();
    (void)hv_store(PL_modglobal, FS_PARKED_KEY, sizeof FS_PARKED_KEY - 1, newSViv(PTR2IV(p)), 0);
}

static void fs_unpark_statics(pTHX_ int keep)
{
    SV *sv = hv_delete(PL_modglobal, FS_PARKED_KEY, sizeof FS_PARKED_KEY - 1, 0);
    fs_parked *p;
    if (!sv)
        return;
    p = INT2PTR(fs_parked *, SvIV(sv));
    fs_code_unpark(p->code, keep);
    fs_state_unpark(p->state, keep);
    free(p);
}

void fs_interp_select(void *interp)
{
    PerlInterpreter *to = (PerlInterpreter *)interp;
    if (fs_interp == to)
        return;
    if (fs_interp) {
        dTHXa(fs_interp);
        fs_park_statics(aTHX);
    }
    PERL_SET_CONTEXT(to);
    fs_interp = to;
    if (to) {
        dTHXa(to);
        fs_unpark_statics(aTHX_ 1);
    }
}

void fs_interp_adopt(void *interp)
{
    /* perl lets only this one change the process's environ (%ENV) and
     * free it at destruction. */
    PERL_SET_INTERP((PerlInterpreter *)interp);
}

int fs_interp_start(int argc, char **argv, char **env, void **interp)
{
    static int sys_init;
    PerlInterpreter *my;
    int rc;
    if (!sys_init) {
        PERL_SYS_INIT3(&argc, &argv, &env);
        sys_init = 1;
    }
    /* As perlmain.c does: perl manages environ itself, freeing what it
     * replaces. The embedder default (setenv) leaks every distinct
     * NAME=VALUE inside glibc, i.e. some bytes per request via %ENV. */
    PL_use_safe_putenv = FALSE;
    my = perl_alloc();
    if (!my)
        return -1;
    /* The current interpreter's statics go aside: the new one fills its
     * own while it preloads. */
    fs_interp_select(NULL);
    PERL_SET_CONTEXT(my);
    fs_interp = my;
    fs_interp_count++;
    *interp = my;
    perl_construct(my);
    {
        dTHXa(my);
        PL_exit_flags |= PERL_EXIT_DESTRUCT_END;
    }
    rc = perl_parse(my, xs_init, argc, argv, env);
    if (rc != 0)
        return rc;
    {
        dTHXa(my);
        /* $0 is the variable only: perl would copy each assignment into
         * its argv and call prctl(PR_SET_NAME), a system call twice a
         * request (the runner sets $0 to the script and back). The
         * process title is the daemon's (src/title.rs). */
        PL_origalen = 1;
    }
    return perl_run(my);
}

/* A glue file's state that belongs to one interpreter (what points into
 * it), kept in its PL_modglobal under `key` (a string of the file's own,
 * so its address is the key of a small cache): made zeroed on first use,
 * gone with the interpreter (its SVs are; what is malloc'ed is leaked, a
 * few bytes per reload). */
#define FS_STATE_CACHE 8
static struct {
    PerlInterpreter *interp;
    const char *key;
    void *state;
} fs_state_cache[FS_STATE_CACHE];

void *fs_interp_state(pTHX_ const char *key, size_t size)
{
    size_t i, free_slot = FS_STATE_CACHE;
    SV **svp;
    void *state;
    for (i = 0; i < FS_STATE_CACHE; i++) {
        if (fs_state_cache[i].interp == aTHX && fs_state_cache[i].key == key)
            return fs_state_cache[i].state;
        if (!fs_state_cache[i].interp && free_slot == FS_STATE_CACHE)
            free_slot = i;
    }
    svp = hv_fetch(PL_modglobal, key, (I32)strlen(key), 0);
    if (!svp) {
        char *fresh;
        Newxz(fresh, size, char);
        svp = hv_store(PL_modglobal, key, (I32)strlen(key), newSViv(PTR2IV(fresh)), 0);
    }
    state = INT2PTR(void *, SvIV(*svp));
    if (free_slot < FS_STATE_CACHE) {
        fs_state_cache[free_slot].interp = aTHX;
        fs_state_cache[free_slot].key = key;
        fs_state_cache[free_slot].state = state;
    }
    return state;
}

static void fs_state_cache_forget(PerlInterpreter *gone)
{
    size_t i;
    for (i = 0; i < FS_STATE_CACHE; i++)
        if (fs_state_cache[i].interp == gone)
            fs_state_cache[i].interp = NULL;
}

/* The subs Rust calls, found once per interpreter: `sub` is one of Rust's
 * static names, so its address is the key. The cache holds a reference:
 * a script that replaces one still leaves the runner's own to call. */
#define FS_CV_CACHE 32
static struct {
    PerlInterpreter *interp;
    const char *name;
    CV *cv;
} fs_cv_cache[FS_CV_CACHE];

static CV *fs_cached_cv(pTHX_ const char *name)
{
    size_t i;
    CV *cv;
    for (i = 0; i < FS_CV_CACHE && fs_cv_cache[i].interp; i++)
        if (fs_cv_cache[i].interp == aTHX && fs_cv_cache[i].name == name)
            return fs_cv_cache[i].cv;
    cv = get_cv(name, 0);
    if (cv && i < FS_CV_CACHE) {
        fs_cv_cache[i].interp = aTHX;
        fs_cv_cache[i].name = name;
        fs_cv_cache[i].cv = (CV *)SvREFCNT_inc_simple_NN((SV *)cv);
    }
    return cv;
}

/* An interpreter is gone: its entries go (another one may get its
 * address). */
static void fs_cv_cache_forget(PerlInterpreter *gone)
{
    size_t i, kept = 0;
    for (i = 0; i < FS_CV_CACHE && fs_cv_cache[i].interp; i++)
        if (fs_cv_cache[i].interp != gone)
            fs_cv_cache[kept++] = fs_cv_cache[i];
    for (; kept < i; kept++)
        fs_cv_cache[kept].interp = NULL;
    fs_state_cache_forget(gone);
}

void fs_interp_discard(void *interp)
{
    PerlInterpreter *gone = (PerlInterpreter *)interp;
    PerlInterpreter *back = fs_interp == gone ? NULL : fs_interp;
    if (!gone)
        return;
    fs_interp_select(gone);
    {
        dTHXa(gone);
        /* No END blocks: the modules' ENDs are for the end of the process
         * (a worker's exit), not for an interpreter the master replaced. */
        PL_exit_flags &= ~PERL_EXIT_DESTRUCT_END;
        perl_destruct(gone);
    }
    perl_free(gone);
    fs_cv_cache_forget(gone);
    /* What pointed into it points nowhere now. */
    fs_state_unpark(fs_state_park(), 0);
    fs_code_unpark(fs_code_park(), 0);
    fs_interp = NULL;
    PERL_SET_CONTEXT(NULL);
    fs_interp_count--;
    if (back)
        fs_interp_select(back);
}

void fs_interp_stop(void *interp)
{
    PerlInterpreter *gone = (PerlInterpreter *)interp;
    if (!gone)
        return;
    fs_interp_select(gone);
    perl_destruct(gone);
    perl_free(gone);
    fs_cv_cache_forget(gone);
    fs_interp = NULL;
    PERL_SET_CONTEXT(NULL);
    if (--fs_interp_count == 0)
        PERL_SYS_TERM();
}

const char *fs_sub_end_forked_child;
const char *fs_sub_end_request_child;
const char *fs_sub_slow_request;

void fs_set_glue_callbacks(const char *end_forked_child, const char *end_request_child,
                           const char *slow_request)
{
    fs_sub_end_forked_child = end_forked_child;
    fs_sub_end_request_child = end_request_child;
    fs_sub_slow_request = slow_request;
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

void fs_worker_forked(void)
{
    fs_env_inherited = 1;
    fs_note_heap_start();
}

static void end_foreign_child(pTHX_ int status);

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
    CV *cv; /* the sub, when found */
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
    count = c->cv ? call_sv((SV *)c->cv, G_SCALAR | (c->trap_die ? G_EVAL : 0))
                  : call_pv(c->sub, G_SCALAR | (c->trap_die ? G_EVAL : 0));
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

/* A child the script fork()ed must never return into the request loop: it
 * ends here, as it would have ended in a plain CGI process: the script's
 * END blocks run (an `exit` in one sets the status), output is flushed
 * (minus global destruction, which would run the parent's DESTROYs a
 * second time). */
static void end_foreign_child(pTHX_ int status)
{
    static int ending;
    if (!fs_owner_pid || !fs_forked || ending || getpid() == fs_owner_pid)
        return;
    ending = 1;
    if (fs_stage_get() == FS_STAGE_RUNNING && fs_sub_end_forked_child) {
        struct call_ctx c = { fs_sub_end_forked_child, NULL, NULL, NULL, 0, 1 };
        fs_outcome out = run_trapping_exit(aTHX_ call_body, &c);
        if (out.kind == FS_EXITED)
            status = out.exit_status;
    }
    PerlIO_flush((PerlIO *)NULL);
    _exit(status & 0xff);
}

fs_outcome fs_call(const char *sub, const char *const *args, const size_t *lens,
                   size_t nargs, int trap_die)
{
    dTHX;
    struct call_ctx c = { sub, fs_cached_cv(aTHX_ sub), args, lens, nargs, trap_die };
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

static void end_blocks_body(pTHX_ void *ctx, fs_outcome *out)
{
    (void)ctx;
    (void)out;
    if (PL_endav && !PL_minus_c) {
        PERL_SET_PHASE(PERL_PHASE_END);
        call_list(PL_scopestack_ix, PL_endav);
    }
}

/* At most this many ranges are reported (a child that wrote more is
 * unusual, and its successor faults in the rest as before). */
#define FS_WRITTEN_RANGES_MAX 65536

/* Where the heap starts: read once per worker (fs_worker_forked), so a
 * request's child need not read /proc/self/maps (a line per mapping, the
 * costliest part of the report). */
static uint64_t fs_heap_start;

static void fs_note_heap_start(void)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    char line[512];
    unsigned long lo, hi;
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
            fs_heap_start = lo;
            break;
        }
    if (maps)
        fclose(maps);
}

/* The heap's pages that this process holds alone: those it copied (or
 * added) since its fork, nearly all a request's child writes (its stack
 * and the libraries' data are a few more). The worker has the next
 * request's child write the same ones while it waits for its request
 * (runner/spare.rs), so that request does not wait for the copies. Sent
 * on `fd` as a count, then (start, length) pairs, all uint64_t. */
static void fs_report_written_pages(int fd)
{
    int pagemap = fs_heap_start ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const uint64_t hi = (uint64_t)(uintptr_t)sbrk(0);
    uint64_t *ranges = malloc(2 * FS_WRITTEN_RANGES_MAX * sizeof *ranges);
    uint64_t n = 0, at = fs_heap_start;

    while (pagemap >= 0 && ranges && at < hi) {
        uint64_t entries[512];
        uint64_t want = (hi - at) / page, i;
        ssize_t got;
        if (want > 512)
            want = 512;
        got = pread(pagemap, entries, want * sizeof *entries, (off_t)(at / page * sizeof *entries));
        if (got <= 0)
            break;
        for (i = 0; i < (uint64_t)got / sizeof *entries; i++, at += page) {
            /* bit 63: present; bit 56: mapped by this process only */
            if (!(entries[i] >> 63 & 1) || !(entries[i] >> 56 & 1))
                continue;
            if (n && ranges[2 * n - 2] + ranges[2 * n - 1] == at)
                ranges[2 * n - 1] += page;
            else if (n < FS_WRITTEN_RANGES_MAX) {
                ranges[2 * n] = at;
                ranges[2 * n + 1] = page;
                n++;
            }
        }
    }
    (void)!write(fd, &n, sizeof n);
    if (n)
        (void)!write(fd, ranges, 2 * n * sizeof *ranges);
}

void fs_exit_process(int status)
{
    dTHX;
    fs_outcome out;
    STATUS_EXIT_SET(status);
    /* What the end of a perl program does that a CGI process's exit shows:
     * the END blocks still queued (the worker's modules': File::Temp
     * removes this process's temp files), an `exit` in one setting the
     * status; then the script's objects destroyed with its packages
     * (CGI::Session writes its data in DESTROY). Not perl_destruct: its
     * walk over every SV of the interpreter inherited from the worker
     * copied most of the heap, page by page, for objects that are the
     * worker's (5-10 ms a request on a typical page). */
    out = run_trapping_exit(aTHX_ end_blocks_body, NULL);
    status = out.kind == FS_EXITED ? out.exit_status : STATUS_EXIT;
    if (fs_sub_end_request_child) {
        fs_outcome ignored = fs_call(fs_sub_end_request_child, NULL, NULL, 0, 1);
        (void)ignored;
    }
    PerlIO_flush((PerlIO *)NULL);
    if (fs_exit_report_fd >= 0) {
        /* The worker ends the response on this and EOF on the output
         * pipes: both come before the kernel tears the address space down
         * (as long again as the fork). */
        int fd = fs_exit_report_fd, report = status & 0xff;
        (void)!write(fd, &report, sizeof report);
        if (fd > 0)
            close_range(0, (unsigned)fd - 1, 0);
        close_range((unsigned)fd + 1, ~0U, 0);
        if (fs_exit_report_pages)
            fs_report_written_pages(fd);
    }
    _exit(status & 0xff);
}

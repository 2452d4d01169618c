/*
 * The worker process and the processes a request makes.
 *
 * - The request stage: one value saying what the worker is doing with the
 *   current request (glue.h, fs_stage). The output layer, the exec hook
 *   and the Rust runner and its watcher thread all read this one value.
 * - `exec` in a script (perlrun, registry): under CGI it replaces the
 *   script's process and the program's output is the rest of the
 *   response. Here that process is the worker, which must outlive the
 *   request; so exec forks, the child execs with the request's fds 0/1/2
 *   and the script ends with the program's exit status. A failed exec
 *   returns false and the script goes on, as under CGI.
 * - The child of a `fork` isolation request: a throwaway CGI process.
 */
#include "glue_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "glue.h"

static int fs_stage_value = FS_STAGE_IDLE;

int fs_stage_get(void)
{
    return __atomic_load_n(&fs_stage_value, __ATOMIC_SEQ_CST);
}

void fs_stage_set(int stage)
{
    __atomic_store_n(&fs_stage_value, stage, __ATOMIC_SEQ_CST);
}

/* Why the stage is STOPPING (a detail of that stage, written before it is
 * entered). */
static int fs_stop_why;

int fs_stage_request_stop(int why)
{
    int running = FS_STAGE_RUNNING;
    __atomic_store_n(&fs_stop_why, why, __ATOMIC_SEQ_CST);
    return __atomic_compare_exchange_n(&fs_stage_value, &running, FS_STAGE_STOPPING, 0,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* FCGI::Spawn::Native::stop_reason() — undef unless the script (or its END
 * blocks) runs; '' while it runs, 'client' or 'timeout' once it is being
 * stopped. */
XS(fs_xs_stop_reason)
{
    dXSARGS;
    int stage = fs_stage_get();
    PERL_UNUSED_VAR(items);
    if (stage == FS_STAGE_RUNNING)
        ST(0) = sv_2mortal(newSVpvs(""));
    else if (stage != FS_STAGE_STOPPING)
        ST(0) = &PL_sv_undef;
    else if (__atomic_load_n(&fs_stop_why, __ATOMIC_SEQ_CST) == FS_STOP_TIMEOUT)
        ST(0) = sv_2mortal(newSVpvs("timeout"));
    else
        ST(0) = sv_2mortal(newSVpvs("client"));
    XSRETURN(1);
}

/* --- the slowlog backtrace ---------------------------------------------------
 *
 * slowlog_timeout: another thread (the pump) asks the running script for
 * its backtrace without a signal the script could see or that would cut a
 * sleep short. It raises a flag and PL_sig_pending, which perl polls
 * between ops (PERL_ASYNC_CHECK); the hook below then calls the runner's
 * slow_request (which walks `caller`) and the script goes on. A script
 * blocked in a system call is seen when the call returns. */
static int fs_backtrace_wanted;
static PerlInterpreter *fs_backtrace_interp;
static despatch_signals_proc_t fs_orig_signalhook;

static void fs_log_backtrace(pTHX)
{
    dSP;
    int saved_errno = errno;
    if (!fs_sub_slow_request)
        return;
    ENTER;
    SAVETMPS;
    PUSHMARK(SP);
    PUTBACK;
    /* G_KEEPERR: the script's $@ is left alone, a failure only warns. */
    call_pv(fs_sub_slow_request, G_DISCARD | G_NOARGS | G_EVAL | G_KEEPERR);
    FREETMPS;
    LEAVE;
    errno = saved_errno;
}

static void fs_signalhook(pTHX)
{
    /* Real signals first: despatching them clears PL_sig_pending, so a
     * request raised after that keeps it set for the next check. */
    fs_orig_signalhook(aTHX);
    if (__atomic_exchange_n(&fs_backtrace_wanted, 0, __ATOMIC_SEQ_CST)
        && fs_stage_get() == FS_STAGE_RUNNING && !fs_forked)
        fs_log_backtrace(aTHX);
}

void fs_request_backtrace(void)
{
    /* The field itself: PL_sig_pending would look up the calling thread's
     * interpreter, and this thread has none. */
    PerlInterpreter *interp = fs_backtrace_interp;
    if (!interp)
        return;
    __atomic_store_n(&fs_backtrace_wanted, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&interp->Isig_pending, 1, __ATOMIC_SEQ_CST);
}

/* This process is the child of a `fork` isolation request. */
static int fs_request_child;

static Perl_ppaddr_t fs_orig_pp_exec;

static OP *fs_exec_failed(pTHX_ int err)
{
    dSP;
    dMARK;
    dTARGET;
    SP = MARK;
    errno = err;
    XPUSHi(0); /* exec returns false, as pp_exec does */
    RETURN;
}

static OP *fs_pp_exec(pTHX)
{
    int report[2], err = 0, status = 0;
    ssize_t n;
    pid_t pid;
    int stage = fs_stage_get();

    if (fs_forked || fs_request_child
        || (stage != FS_STAGE_RUNNING && stage != FS_STAGE_STOPPING))
        return fs_orig_pp_exec(aTHX);

    /* What the script printed goes before the program's output. */
    PERL_FLUSHALL_FOR_CHILD;
    if (pipe2(report, O_CLOEXEC) != 0)
        return fs_exec_failed(aTHX_ errno);
    pid = fork();
    if (pid < 0) {
        err = errno;
        close(report[0]);
        close(report[1]);
        return fs_exec_failed(aTHX_ err);
    }
    if (pid == 0) {
        close(report[0]);
        (void)fs_orig_pp_exec(aTHX); /* returns only when exec failed */
        err = errno;
        (void)!write(report[1], &err, sizeof err);
        _exit(127);
    }
    close(report[1]);
    do
        n = read(report[0], &err, sizeof err);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof err) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        return fs_exec_failed(aTHX_ err);
    }
    /* The program is running with the request's descriptors; the script
     * is over once it is. A stop (client gone, timeout) passes it on. */
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = 255 << 8;
            break;
        }
        if (fs_stage_get() == FS_STAGE_STOPPING)
            kill(pid, SIGTERM);
        PERL_ASYNC_CHECK();
    }
    my_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    NOT_REACHED; /* NOTREACHED */
    return NULL;
}

static const fs_xsub fs_process_xsubs_table[] = {
    FS_XSUB("stop_reason", fs_xs_stop_reason),
};

void fs_register_process_xsubs(pTHX)
{
    fs_register_xsubs(aTHX_ fs_process_xsubs_table, sizeof fs_process_xsubs_table / sizeof fs_process_xsubs_table[0]);
    if (!fs_orig_pp_exec) {
        fs_orig_pp_exec = PL_ppaddr[OP_EXEC];
        PL_ppaddr[OP_EXEC] = fs_pp_exec;
    }
    if (!fs_orig_signalhook) {
        fs_orig_signalhook = PL_signalhook;
        PL_signalhook = fs_signalhook;
        fs_backtrace_interp = aTHX;
    }
}

void fs_become_request_child(void)
{
    dTHX;
    fs_request_child = 1;
    fs_output_pass_through();
    /* A new process has no signal waiting: one that reached the worker
     * and waits in perl's pending list (perl runs %SIG handlers between
     * ops, and the worker ran none since) is not this request's. */
    if (PL_psig_pend)
        Zero(PL_psig_pend, SIG_SIZE, int);
    PL_sig_pending = 0;
}

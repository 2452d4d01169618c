/*
 * The C side of fcgi-spawn's Perl embedding: plain functions over the
 * macro-heavy Perl API. Rust sees only what is declared here (through
 * bindgen); every Perl value stays on the C side of this fence.
 */
#ifndef FCGI_SPAWN_GLUE_H
#define FCGI_SPAWN_GLUE_H

#include <stddef.h>

/* How a call into Perl ended. */
typedef enum fs_outcome_kind {
    FS_RETURNED = 0, /* the sub returned; `value` is its scalar result as an integer */
    FS_DIED = 1,     /* die trapped (only when trap_die was set); message in fs_error() */
    FS_EXITED = 2    /* exit(), or die at top level (message already on STDERR) */
} fs_outcome_kind;

typedef struct fs_outcome {
    int kind;
    long long value;
    int exit_status;
} fs_outcome;

/* Constructs, parses ("-e0") and runs a new interpreter, which becomes
 * the current one (`*interp`, also set when it fails). 0 on success. */
int fs_interp_start(int argc, char **argv, char **env, void **interp);
/* Makes `interp` the one later calls go to (the thread's context); the
 * statics of the one it replaces are kept aside for it. */
void fs_interp_select(void *interp);
/* `interp` becomes the process's main interpreter: the one whose %ENV is
 * the process's environment. */
void fs_interp_adopt(void *interp);
/* Destroys `interp` without running END blocks (global destruction and
 * DESTROYs do run), then makes the previous current one current again. */
void fs_interp_discard(void *interp);
/* Runs END blocks and global destruction, frees the interpreter. */
void fs_interp_stop(void *interp);
/* The process that owns the request loop; a fork()ed child of a script
 * that leaves Perl through exit/die/return is ended here instead. */
void fs_set_owner_pid(int pid);
/* In a worker just forked from the master: %ENV is still the master's
 * hash, which the first request's environment leaves alone (request.c). */
void fs_worker_forked(void);
/* The runner's subs the glue itself calls (the names live with the
 * runner's other entry points, in Rust's runner/steps.rs): where a child a
 * script forked ends, where a fork-mode request's child ends, and the
 * slowlog's backtrace. Static strings; set before any request. */
void fs_set_glue_callbacks(const char *end_forked_child, const char *end_request_child,
                           const char *slow_request);
/* Evaluates Perl source at file scope (as `eval STRING`, die trapped). */
fs_outcome fs_eval(const char *code, size_t len);
/* Calls the named sub with byte-string arguments in scalar context.
 * trap_die: 1 = die is trapped (FS_DIED); 0 = die behaves as in a plain
 * perl program (message to STDERR, FS_EXITED with perl's exit status). */
fs_outcome fs_call(const char *sub, const char *const *args, const size_t *lens,
                   size_t nargs, int trap_die);
/* The current $@ as bytes; valid until the next call into Perl. */
const char *fs_error(size_t *len);

/* The request's %ENV: the worker's base variables, then these NAME, VALUE
 * pairs (`count` pointers and lengths; a later pair wins). */
void fs_request_env(const char *const *ptrs, const size_t *lens, size_t count);

/* What the worker is doing with the current request (process.c). The one
 * truth for "is a script running": the output layer, the exec hook, the
 * runner and its watcher thread all read it. */
typedef enum fs_stage {
    FS_STAGE_IDLE = 0,     /* no request, or setting one up / cleaning up */
    FS_STAGE_RUNNING = 1,  /* the script or its END blocks run; a stop may come */
    FS_STAGE_STOPPING = 2, /* a stop was asked for (client gone, timeout): writes give up */
    FS_STAGE_ENDING = 3    /* the script is over; its handles close, the response ends */
} fs_stage;
int fs_stage_get(void);
void fs_stage_set(int stage);
/* Why a script is stopped. */
typedef enum fs_stop {
    FS_STOP_CLIENT = 1,  /* client gone or FCGI_ABORT_REQUEST */
    FS_STOP_TIMEOUT = 2  /* --request-timeout */
} fs_stop;
/* RUNNING -> STOPPING for `why`; 1 if it moved (any other stage is left
 * alone). */
int fs_stage_request_stop(int why);
/* Any thread: the running script logs its backtrace (the runner's
 * slow_request) at its next op and goes on; nothing while no script runs. */
void fs_request_backtrace(void);

/* The script's STDOUT (output.c): the sink sends bytes to the client and
 * returns 0, or -1 when the client is gone. While the stage is RUNNING a
 * flush reaches the sink at once; otherwise output stays pending. */
typedef int (*fs_output_sink)(const char *data, size_t len);
/* Once per worker, after the interpreter started. */
void fs_output_init(fs_output_sink sink);
/* Output printed but not yet sent; valid until the next Perl call. */
const char *fs_output_pending(size_t *len);
void fs_output_clear(void);
/* In the child of a `fork` isolation request: STDOUT goes straight to fd 1. */
void fs_output_pass_through(void);
/* The child of a `fork` isolation request is a throwaway CGI process:
 * output straight to fd 1, `exec` the real one. */
void fs_become_request_child(void);
/* Ends the process as perl ends a program: END blocks, global
 * destruction, handles flushed; then _exit with the resulting status. */
void fs_exit_process(int status);
/* In the child of a `fork` isolation request: fs_exit_process writes the
 * exit status (an int) to `fd` and closes every other descriptor, then,
 * `with_pages`, the heap pages it wrote since its fork (a uint64_t count,
 * then (start, length) pairs), before it exits. A process this one forks
 * does not inherit the duty. */
void fs_report_exit_on(int fd, int with_pages);
/* In the master, before forking workers: keep the preload's pages shared. */
void fs_before_fork_workers(void);
/* fork() calls made by this process so far. */
unsigned long fs_fork_count(void);

#endif

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

/* Constructs, parses ("-e0") and runs the interpreter. 0 on success. */
int fs_interp_start(int argc, char **argv, char **env);
/* Runs END blocks and global destruction, frees the interpreter. */
void fs_interp_stop(void);
/* The process that owns the request loop; a fork()ed child of a script
 * that leaves Perl through exit/die/return is ended here instead. */
void fs_set_owner_pid(int pid);
/* Evaluates Perl source at file scope (as `eval STRING`, die trapped). */
fs_outcome fs_eval(const char *code, size_t len);
/* Calls the named sub with byte-string arguments in scalar context.
 * trap_die: 1 = die is trapped (FS_DIED); 0 = die behaves as in a plain
 * perl program (message to STDERR, FS_EXITED with perl's exit status). */
fs_outcome fs_call(const char *sub, const char *const *args, const size_t *lens,
                   size_t nargs, int trap_die);
/* The current $@ as bytes; valid until the next call into Perl. */
const char *fs_error(size_t *len);

/* The script's STDOUT (see glue.c): the sink sends bytes to the client and
 * returns 0, or -1 when the client is gone. */
typedef int (*fs_output_sink)(const char *data, size_t len);
/* Once per worker, after the interpreter started. */
void fs_output_init(fs_output_sink sink);
/* 1 while the script runs: flushes go to the sink. 0: output stays pending. */
void fs_output_set_streaming(int on);
/* Output printed but not yet sent; valid until the next Perl call. */
const char *fs_output_pending(size_t *len);
void fs_output_clear(void);
/* In the master, before forking workers: keep the preload's pages shared. */
void fs_before_fork_workers(void);
/* fork() calls made by this process so far. */
unsigned long fs_fork_count(void);

#endif

/*
 * What the glue's C files share with each other (never seen by Rust):
 * process facts set in glue.c and the XSUB registration of each file.
 */
#ifndef FCGI_SPAWN_GLUE_INTERNAL_H
#define FCGI_SPAWN_GLUE_INTERNAL_H

#include <EXTERN.h>
#include <perl.h>
#include <XSUB.h>

/* Set in the child of any fork() after fs_set_owner_pid (glue.c). */
extern volatile int fs_forked;

/* Set by fs_worker_forked (glue.c): %ENV is still the hash the worker was
 * forked with; the first request's sync (request.c) leaves it be. */
extern int fs_env_inherited;

/* The runner's subs the glue calls (fs_set_glue_callbacks, glue.c). */
extern const char *fs_sub_end_forked_child;
extern const char *fs_sub_end_request_child;
extern const char *fs_sub_slow_request;

/* output.c: what the script printed and did not send yet is dropped in a
 * forked child (it is the parent's to send). */
void fs_output_forget_pending(void);

/* An XSUB a file gives the Perl runner: FCGI::Spawn::Native::<name>. */
typedef struct {
    const char *name;
    XSUBADDR_t fn;
} fs_xsub;
#define FS_XSUB(name, fn) { "FCGI::Spawn::Native::" name, fn }
void fs_register_xsubs(pTHX_ const fs_xsub *table, size_t count);

/* Ends an XSUB returning the elements of `list` (an AV it may free). */
#define FS_XSRETURN_AV(list)                                                   \
    STMT_START {                                                               \
        AV *fs_list_ = (list);                                                 \
        SSize_t fs_i_;                                                         \
        SP -= items;                                                           \
        EXTEND(SP, AvFILLp(fs_list_) + 1);                                     \
        for (fs_i_ = 0; fs_i_ <= AvFILLp(fs_list_); fs_i_++)                   \
            PUSHs(sv_2mortal(SvREFCNT_inc_simple_NN(AvARRAY(fs_list_)[fs_i_]))); \
        PUTBACK;                                                               \
        XSRETURN(AvFILLp(fs_list_) + 1);                                       \
    } STMT_END

/* Each file's XSUBs, registered by xs_init (glue.c). */
void fs_register_state_xsubs(pTHX);
void fs_register_process_xsubs(pTHX);
void fs_register_package_xsubs(pTHX);
void fs_register_code_xsubs(pTHX);

void fs_register_request_xsubs(pTHX);

/* A glue file's state for the current interpreter (glue.c): `size` bytes,
 * zeroed when first asked for, found again by `key`'s address. */
void *fs_interp_state(pTHX_ const char *key, size_t size);

/* output.c: the output layer's functions, and pushing it on STDOUT (or
 * finding it there) for a request. */
const PerlIO_funcs *fs_output_funcs(void);
void fs_output_capture(pTHX);

/* state.c: every std handle's per-request state as a new process has it
 * (FCGI::Spawn::Native::reset_handles); whether %SIG differs from its
 * snapshot. */
void fs_reset_handles(pTHX);
int fs_signals_changed(pTHX);

/* code.c: modules were loaded since the worker's subs were recorded;
 * whether a sub is one of the worker's subs as recorded (a module's, not
 * a script's); a sub of the worker's packages may have changed (the next
 * restore_code looks). */
int fs_code_stale(pTHX);
int fs_code_is_workers(pTHX_ CV *cv);
void fs_code_touch(void);
void fs_code_touch_unless_script(HV *stash);

/* Makes `cv` (or nothing) the sub of `gv`, refcounts kept; 1 if it changed
 * (packages.c). */
int fs_set_gv_code(pTHX_ GV *gv, CV *cv);

/* Statics that point into the current interpreter (code.c, state.c):
 * taken out while another interpreter is current, put back (keep = 1) or
 * dropped with their destroyed owner (keep = 0). */
void *fs_code_park(void);
void fs_code_unpark(void *parked, int keep);
void *fs_state_park(void);
void fs_state_unpark(void *parked, int keep);

/* The package's symbol table, or NULL; never creates one. */
HV *fs_find_stash(pTHX_ const char *name, STRLEN len);

#endif

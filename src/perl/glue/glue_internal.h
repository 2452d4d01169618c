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

/* output.c: what the script printed and did not send yet is dropped in a
 * forked child (it is the parent's to send). */
void fs_output_forget_pending(void);

/* Each file's XSUBs, registered by xs_init (glue.c). */
void fs_register_output_xsubs(pTHX);
void fs_register_state_xsubs(pTHX);
void fs_register_process_xsubs(pTHX);
void fs_register_package_xsubs(pTHX);

/* The package's symbol table, or NULL; never creates one. */
HV *fs_find_stash(pTHX_ const char *name, STRLEN len);

#endif

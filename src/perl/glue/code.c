/*
 * Subs of the worker's packages that a script redefines.
 *
 * `*CGI::header = sub {...}`, `sub File::Basename::basename {...}` in a
 * script: harmless under CGI, where the process ends with the request, but
 * here every later request of the worker would call the script's sub. The
 * worker records the subs of every package it has (the preloads, modules
 * loaded since), and after each request puts back those a script replaced
 * and drops those a script added. A package whose key count and method
 * generation did not move is skipped, so the check costs a loop over the
 * packages. Subs that modules define at run time (CGI's AUTOLOAD, lazy
 * accessors) are the worker's and stay: only subs compiled from the
 * request's own files are undone.
 *
 * A request that did nothing that can put a sub in a glob is not looked
 * at (SPEC §8: a quiet request costs no walk over the worker's packages;
 * the loop costs ~30 instructions a package, 16,000 a request with 560
 * packages preloaded). What can: a compile (require, do FILE, string
 * eval; not a perlrun script's own, when its text names no package and
 * no sub outside its own: Compile::defines_elsewhere), an assignment to
 * a glob not of a script's package (`*CGI::header = sub {...}`, `local
 * *name = ...`; Exporter importing into the script is not one), `undef`
 * of such a sub or glob, the runner's own install_code and
 * attach_symbols, and XS code known to set a glob's sub itself
 * (Package::Stash::XS, under Moose and namespace::clean); each marks the
 * packages touched, the walk clears the mark. Not seen: other
 * XS code doing so and an assignment through a copy of a glob kept in a
 * scalar, a script's write into the worker's packages by a way no CGI
 * script takes (the limit of what the worker owns, SPEC §3).
 */
#include "glue_internal.h"

typedef struct {
    HV *stash;   /* refcounted: a deleted package stays readable */
    STRLEN keys; /* HvUSEDKEYS when recorded */
    U32 gen;     /* its method generation when recorded */
    HV *subs;    /* name => RV to the CV the glob held */
} fs_code_record;

static fs_code_record *fs_code;
static size_t fs_code_count, fs_code_cap;
static STRLEN fs_code_inc_keys;
/* The recorded stashes, by address: a package is recorded once. */
static HV *fs_code_known;

/* The statics above belong to the interpreter that filled them; while
 * another one is current (a reload building the next generation in the
 * master) they are parked with their owner (glue.c). */
typedef struct {
    fs_code_record *code;
    size_t count, cap;
    STRLEN inc_keys;
    HV *known;
} fs_code_parked;

void *fs_code_park(void)
{
    fs_code_parked *p = (fs_code_parked *)calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->code = fs_code;
    p->count = fs_code_count;
    p->cap = fs_code_cap;
    p->inc_keys = fs_code_inc_keys;
    p->known = fs_code_known;
    fs_code = NULL;
    fs_code_count = fs_code_cap = 0;
    fs_code_inc_keys = 0;
    fs_code_known = NULL;
    return p;
}

void fs_code_unpark(void *parked, int keep)
{
    fs_code_parked *p = (fs_code_parked *)parked;
    if (!p)
        return;
    if (keep) {
        fs_code = p->code;
        fs_code_count = p->count;
        fs_code_cap = p->cap;
        fs_code_inc_keys = p->inc_keys;
        fs_code_known = p->known;
    } else {
        /* The owner is gone, and its SVs with it: only our array is ours. */
        Safefree(p->code);
    }
    free(p);
}

/* Set until a walk: the first request of a worker walks once. */
static int fs_code_touched = 1;
/* Set by script_compile_next: the next `do FILE` compiles a perlrun
 * script whose text names no package and no sub outside its own. */
static int fs_code_script_compile;

void fs_code_touch(void)
{
    fs_code_touched = 1;
}

/* Scripts' own packages (FCGI::Spawn::Sandbox and all in it): never
 * recorded, so what is done there changes no package of the worker's. */
static int fs_code_is_sandbox(const char *name)
{
    static const char sandbox[] = "FCGI::Spawn::Sandbox";
    const size_t len = sizeof sandbox - 1;
    return name && strnEQ(name, sandbox, len) && (name[len] == '\0' || name[len] == ':');
}

static int fs_code_is_script_stash(HV *stash)
{
    return stash && fs_code_is_sandbox(HvNAME_get(stash));
}

void fs_code_touch_unless_script(HV *stash)
{
    if (!fs_code_is_script_stash(stash))
        fs_code_touched = 1;
}

/* Perl's function of every op type, as it was before any was replaced:
 * what an op that marks runs after the mark (by its type, whatever code
 * did to the op since). */
static Perl_ppaddr_t fs_code_orig_pp[MAXO];

static OP *fs_pp_code_may_change(pTHX)
{
    switch (PL_op->op_type) {
    case OP_SASSIGN: {
        /* A glob of the script's own (Exporter importing into it) is
         * not the worker's; nor is a scalar that is no glob. */
        SV *target = PL_stack_sp[PL_op->op_private & OPpASSIGN_BACKWARDS ? -1 : 0];
        if (SvTYPE(target) == SVt_PVGV && isGV_with_GP(target))
            fs_code_touch_unless_script(GvSTASH((GV *)target));
        break;
    }
    case OP_DOFILE:
        /* A perlrun script's own compile, once its text was found to
         * define nothing elsewhere (what its BEGIN blocks and `use`
         * lines do is marked by their own ops). */
        if (fs_code_script_compile) {
            fs_code_script_compile = 0;
            break;
        }
        fs_code_touched = 1;
        break;
    default:
        fs_code_touched = 1;
    }
    return fs_code_orig_pp[PL_op->op_type](aTHX);
}

static Perl_check_t fs_code_orig_ck_sassign, fs_code_orig_ck_aassign;

static int fs_op_is_glob(const OP *o)
{
    return o && o->op_type == OP_RV2GV;
}

/* `*name = ...` (either side: with OPpASSIGN_BACKWARDS the target is
 * first); an assignment of anything else keeps perl's own function. */
static OP *fs_ck_sassign(pTHX_ OP *o)
{
    o = fs_code_orig_ck_sassign(aTHX_ o);
    if (o->op_type == OP_SASSIGN && (o->op_flags & OPf_KIDS)
        && (fs_op_is_glob(cBINOPo->op_first) || fs_op_is_glob(cBINOPo->op_last)))
        o->op_ppaddr = fs_pp_code_may_change;
    return o;
}

/* `(*a, *b) = ...`: a glob among the assigned. */
static OP *fs_ck_aassign(pTHX_ OP *o)
{
    o = fs_code_orig_ck_aassign(aTHX_ o);
    if (o->op_type == OP_AASSIGN && (o->op_flags & OPf_KIDS)) {
        OP *targets = cBINOPo->op_last;
        OP *kid = targets && (targets->op_flags & OPf_KIDS) ? cLISTOPx(targets)->op_first : NULL;
        for (; kid; kid = OpSIBLING(kid))
            if (fs_op_is_glob(kid)) {
                o->op_ppaddr = fs_pp_code_may_change;
                break;
            }
    }
    return o;
}

/* XS subs that put subs in globs themselves, past the ops above: each is
 * given a function that marks first, once its module is loaded (the
 * records are made or added to after every load). By position: the
 * original of each is the same function in every interpreter. */
static const char *const fs_code_installers[] = {
    "Package::Stash::XS::add_symbol",
    "Package::Stash::XS::remove_symbol",
    "Package::Stash::XS::remove_glob",
};
#define FS_CODE_INSTALLERS (sizeof fs_code_installers / sizeof fs_code_installers[0])
static XSUBADDR_t fs_code_installer_orig[FS_CODE_INSTALLERS];

#define FS_CODE_INSTALLER(i)                                                   \
    static XSPROTO(fs_code_installer_##i)                                      \
    {                                                                          \
        fs_code_touched = 1;                                                   \
        fs_code_installer_orig[i](aTHX_ cv);                                   \
    }
FS_CODE_INSTALLER(0)
FS_CODE_INSTALLER(1)
FS_CODE_INSTALLER(2)
static const XSUBADDR_t fs_code_installer_marking[FS_CODE_INSTALLERS] = {
    fs_code_installer_0,
    fs_code_installer_1,
    fs_code_installer_2,
};

static void fs_code_watch_installers(pTHX)
{
    size_t i;
    for (i = 0; i < FS_CODE_INSTALLERS; i++) {
        const char *name = fs_code_installers[i];
        CV *cv = get_cvn_flags(name, strlen(name), 0);
        if (!cv || !CvISXSUB(cv) || CvXSUB(cv) == fs_code_installer_marking[i])
            continue;
        fs_code_installer_orig[i] = CvXSUB(cv);
        CvXSUB(cv) = fs_code_installer_marking[i];
    }
}

/* Installed once per process (perl's op tables are global), before any
 * code is compiled: every op made afterwards carries it. */
static void fs_code_watch_ops(pTHX)
{
    static const int compiles[] = { OP_REQUIRE, OP_DOFILE, OP_ENTEREVAL };
    size_t i;
    if (fs_code_orig_ck_sassign)
        return;
    for (i = 0; i < MAXO; i++)
        fs_code_orig_pp[i] = PL_ppaddr[i];
    for (i = 0; i < sizeof compiles / sizeof compiles[0]; i++)
        PL_ppaddr[compiles[i]] = fs_pp_code_may_change;
    wrap_op_checker(OP_SASSIGN, fs_ck_sassign, &fs_code_orig_ck_sassign);
    wrap_op_checker(OP_AASSIGN, fs_ck_aassign, &fs_code_orig_ck_aassign);
}

static U32 fs_stash_gen(HV *stash)
{
    struct mro_meta *meta = SvOOK(stash) ? HvAUX(stash)->xhv_mro_meta : NULL;
    return meta ? meta->pkg_gen : 0;
}

static void fs_code_forget(pTHX)
{
    size_t i;
    for (i = 0; i < fs_code_count; i++) {
        SvREFCNT_dec((SV *)fs_code[i].stash);
        SvREFCNT_dec((SV *)fs_code[i].subs);
    }
    fs_code_count = 0;
    if (fs_code_known)
        hv_clear(fs_code_known);
}

/* Whether `name` is one of `skip` or inside one of them. */
static int fs_code_skipped(pTHX_ const char *name, SV **skip, I32 nskip)
{
    I32 i;
    for (i = 0; i < nskip; i++) {
        STRLEN len;
        const char *s = SvPV_const(skip[i], len);
        if (strnEQ(name, s, len) && (name[len] == '\0' || (name[len] == ':' && name[len + 1] == ':')))
            return 1;
    }
    return 0;
}

/* A new package's record: its size and generation now; its subs are
 * filled in by the caller's walk. */
static HV *fs_code_new_record(pTHX_ HV *stash)
{
    fs_code_record *rec;
    if (fs_code_count == fs_code_cap) {
        fs_code_cap = fs_code_cap ? 2 * fs_code_cap : 256;
        Renew(fs_code, fs_code_cap, fs_code_record);
    }
    rec = &fs_code[fs_code_count++];
    rec->stash = (HV *)SvREFCNT_inc_simple_NN((SV *)stash);
    rec->keys = HvUSEDKEYS(stash);
    rec->gen = fs_stash_gen(stash);
    rec->subs = newHV();
    return rec->subs;
}

/* Records `stash` if it is new, then the packages inside it. The running
 * script's packages (`skip`) are not the worker's: they are left out. */
static void fs_code_record_stash(pTHX_ HV *stash, int depth, SV **skip, I32 nskip)
{
    HE *he;
    HV *subs = NULL;
    const char *name = HvNAME_get(stash);
    char addr[2 * sizeof(void *) + 3];
    int addr_len;
    /* Scripts' own packages come and go with their requests. */
    if (fs_code_is_sandbox(name) || (name && fs_code_skipped(aTHX_ name, skip, nskip)))
        return;
    if (!fs_code_known)
        fs_code_known = newHV();
    addr_len = snprintf(addr, sizeof addr, "%p", (void *)stash);
    if (!hv_exists(fs_code_known, addr, addr_len)) {
        (void)hv_store(fs_code_known, addr, addr_len, newSViv(1), 0);
        subs = fs_code_new_record(aTHX_ stash);
    }
    hv_iterinit(stash);
    while ((he = hv_iternext(stash))) {
        GV *gv = (GV *)HeVAL(he);
        I32 klen;
        const char *key = hv_iterkey(he, &klen);
        if (SvTYPE(gv) != SVt_PVGV || !isGV_with_GP(gv))
            continue;
        if (subs && GvCV(gv) && !GvCVGEN(gv))
            (void)hv_store(subs, key, HeKUTF8(he) ? -klen : klen, newRV_inc((SV *)GvCV(gv)), 0);
        if (klen > 2 && key[klen - 1] == ':' && key[klen - 2] == ':' && GvHV(gv)
            && GvHV(gv) != stash && GvHV(gv) != PL_defstash && depth < 64)
            fs_code_record_stash(aTHX_ GvHV(gv), depth + 1, skip, nskip);
    }
}

/* FCGI::Spawn::Native::snapshot_code() — records the subs of every package
 * as they are now. */
XS(fs_xs_snapshot_code)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    fs_code_forget(aTHX);
    fs_code_record_stash(aTHX_ PL_defstash, 0, NULL, 0);
    fs_code_inc_keys = HvUSEDKEYS(GvHVn(PL_incgv));
    fs_code_watch_installers(aTHX);
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::record_new_code(SKIP...) — adds the packages made
 * since (a module loaded), leaving the recorded ones as recorded and the
 * packages named in SKIP (the running script's) out. */
XS(fs_xs_record_new_code)
{
    dXSARGS;
    fs_code_record_stash(aTHX_ PL_defstash, 0, &ST(0), items);
    fs_code_inc_keys = HvUSEDKEYS(GvHVn(PL_incgv));
    fs_code_watch_installers(aTHX);
    XSRETURN_EMPTY;
}

int fs_code_stale(pTHX)
{
    return HvUSEDKEYS(GvHVn(PL_incgv)) != fs_code_inc_keys;
}

int fs_code_is_workers(pTHX_ CV *cv)
{
    HV *stash = CvSTASH(cv);
    size_t i;
    if (!stash)
        return 0;
    for (i = 0; i < fs_code_count; i++) {
        HE *he;
        if (fs_code[i].stash != stash)
            continue;
        hv_iterinit(fs_code[i].subs);
        while ((he = hv_iternext(fs_code[i].subs)))
            if (SvROK(HeVAL(he)) && SvRV(HeVAL(he)) == (SV *)cv)
                return 1;
    }
    return 0;
}

/* FCGI::Spawn::Native::code_snapshot_stale() — modules were loaded since
 * the snapshot (%INC has another size): their packages are not in it. */
XS(fs_xs_code_snapshot_stale)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    ST(0) = boolSV(fs_code_stale(aTHX));
    XSRETURN(1);
}

static int fs_from_files(pTHX_ CV *cv, SV **files, I32 nfiles)
{
    I32 i;
    const char *file = CvFILE(cv);
    if (!file)
        return 0;
    for (i = 0; i < nfiles; i++)
        if (strEQ(file, SvPV_nolen(files[i])))
            return 1;
    return 0;
}

/* Walks the packages that changed since the snapshot, finding the subs the
 * request's files put there. With `undo`, puts back what was there; else
 * pushes (GLOB_REF, CODE_REF) pairs on `found`. Returns how many. */
static int fs_code_walk(pTHX_ SV **files, I32 nfiles, int undo, AV *found)
{
    size_t i;
    int count = 0;
    for (i = 0; i < fs_code_count; i++) {
        fs_code_record *rec = &fs_code[i];
        HE *he;
        int here = 0;
        if (SvREFCNT(rec->stash) == 1)
            continue; /* deleted since: nobody can reach it */
        if (HvUSEDKEYS(rec->stash) == rec->keys && fs_stash_gen(rec->stash) == rec->gen)
            continue;
        hv_iterinit(rec->stash);
        while ((he = hv_iternext(rec->stash))) {
            GV *gv = (GV *)HeVAL(he);
            CV *now;
            SV **was;
            I32 klen;
            const char *key;
            if (SvTYPE(gv) != SVt_PVGV || !isGV_with_GP(gv) || !(now = GvCV(gv)) || GvCVGEN(gv))
                continue;
            key = hv_iterkey(he, &klen);
            was = hv_fetch(rec->subs, key, HeKUTF8(he) ? -klen : klen, 0);
            if (was && (CV *)SvRV(*was) == now)
                continue;
            if (!fs_from_files(aTHX_ now, files, nfiles))
                continue;
            count++;
            here++;
            if (!undo) {
                av_push(found, newRV_inc((SV *)gv));
                av_push(found, newRV_inc((SV *)now));
                continue;
            }
            (void)fs_set_gv_code(aTHX_ gv, was ? (CV *)SvRV(*was) : NULL);
        }
        if (undo) {
            if (here)
                mro_method_changed_in(rec->stash);
            /* What modules changed meanwhile is the worker's now. */
            rec->keys = HvUSEDKEYS(rec->stash);
            rec->gen = fs_stash_gen(rec->stash);
        }
    }
    return count;
}

/* FCGI::Spawn::Native::restore_code(FILE...) — puts back the subs the
 * request's files (the script, the plain files it loaded) replaced or
 * added in the worker's packages; returns how many. */
XS(fs_xs_restore_code)
{
    dXSARGS;
    int count = 0;
    if (fs_code_touched || fs_code_stale(aTHX)) {
        count = fs_code_walk(aTHX_ &ST(0), items, 1, NULL);
        fs_code_touched = 0;
    }
    XSRETURN_IV(count);
}

/* FCGI::Spawn::Native::script_compile_next() — the next `do FILE` is a
 * perlrun script's compile that defines nothing outside its own package
 * (Compile::do_source): it does not mark the worker's packages. */
XS(fs_xs_script_compile_next)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    fs_code_script_compile = 1;
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::code_changes(FILE...) — (GLOB_REF, CODE_REF) pairs
 * of the subs these files put in the worker's packages, left in place. */
XS(fs_xs_code_changes)
{
    dXSARGS;
    AV *found = (AV *)sv_2mortal((SV *)newAV());
    (void)fs_code_walk(aTHX_ &ST(0), items, 0, found);
    FS_XSRETURN_AV(found);
}

/* FCGI::Spawn::Native::install_code(GLOB_REF, CODE_REF, ...) — a registry
 * script's subs in the worker's packages, back in place for its run. */
XS(fs_xs_install_code)
{
    dXSARGS;
    I32 i;
    if (items % 2)
        croak_xs_usage(cv, "glob_ref, code_ref, ...");
    fs_code_touch();
    for (i = 0; i < items; i += 2) {
        GV *gv;
        CV *sub;
        if (!SvROK(ST(i)) || SvTYPE(SvRV(ST(i))) != SVt_PVGV || !SvROK(ST(i + 1))
            || SvTYPE(SvRV(ST(i + 1))) != SVt_PVCV)
            continue;
        gv = (GV *)SvRV(ST(i));
        sub = (CV *)SvRV(ST(i + 1));
        if (fs_set_gv_code(aTHX_ gv, sub) && GvSTASH(gv))
            mro_method_changed_in(GvSTASH(gv));
    }
    XSRETURN_EMPTY;
}

static const fs_xsub fs_code_xsubs_table[] = {
    FS_XSUB("snapshot_code", fs_xs_snapshot_code),
    FS_XSUB("record_new_code", fs_xs_record_new_code),
    FS_XSUB("code_snapshot_stale", fs_xs_code_snapshot_stale),
    FS_XSUB("restore_code", fs_xs_restore_code),
    FS_XSUB("script_compile_next", fs_xs_script_compile_next),
    FS_XSUB("code_changes", fs_xs_code_changes),
    FS_XSUB("install_code", fs_xs_install_code),
};

void fs_register_code_xsubs(pTHX)
{
    fs_register_xsubs(aTHX_ fs_code_xsubs_table, sizeof fs_code_xsubs_table / sizeof fs_code_xsubs_table[0]);
    fs_code_watch_ops(aTHX);
}

/*
 * The request's frame: what a request may change of the interpreter's
 * process-like state, checked and put back in C, at a cost in proportion
 * to what it changed (SPEC §8).
 *
 * The Perl runner calls enter_request before the script and leave_request
 * after the response. A quiet request (the common case) is put back with a
 * handful of comparisons: the special variables, @INC, the std handles,
 * the selected handle, the main:: key count; umask and alarm with one
 * system call each; the working directory only when it has to move (perl's
 * chdir is watched); the module settings a script may set (Data::Dumper's
 * Indent and the like) only when they were written, which their set magic
 * tells. leave_request names what it could not put back itself, and the
 * runner's Perl parts do those: a request that changed little pays little.
 */
#include "glue_internal.h"
#include <perliol.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- per-interpreter state ---------------------------------------------- */

/* The special variables a request may change, with their values in a new
 * process (NULL: undef) and how a broken one is named. */
static const struct {
    const char *name;
    const char *value;
    STRLEN len;
    const char *shown;
} fs_specials[] = {
    { "/", "\n", 1, "$/" },       { "\\", NULL, 0, "$\\" },   { ",", NULL, 0, "$," },
    { "\"", " ", 1, "$\"" },       { ";", "\034", 1, "$;" },    { "\001", "", 0, "$^A" },
    { "\014", "\f", 1, "$^L" },    { ":", " \n-", 3, "$:" },    { "_", NULL, 0, "$_" },
    { "\022", NULL, 0, "$^R" },
};
#define FS_SPECIALS (sizeof fs_specials / sizeof fs_specials[0])

typedef struct {
    GV *gv;    /* the glob whose scalar is watched */
    SV *sv;    /* that scalar (refcounted), carrying the set magic */
    SV *saved; /* its value when watched */
    int dirty;
} fs_watched;

typedef struct {
    fs_watched *watched;
    size_t nwatched, capwatched;
    size_t *dirty; /* indices of dirty watched scalars */
    size_t ndirty, capdirty;
    AV *base_inc;       /* @INC between requests (copies) */
    Mode_t base_umask;
    SV *base_warnhook, *base_diehook;
    STRLEN owned_names; /* main:: keys that are the worker's */
    STRLEN core_global_keys; /* CORE::GLOBAL:: as the worker has it */
    U32 core_global_gen;
    char *cwd;          /* where the last request's chdir went */
    AV *base_env;       /* NAME, VALUE, ...: %ENV of every request */
    GV *special[FS_SPECIALS]; /* the globs of fs_specials, made once */
    GV *stdout_gv, *zero_gv;
    HV *core_global;
    int restoring;
    void *env_names;     /* fs_request_env's table of names, kept (fs_name) */
    size_t env_names_cap;
    SV *emptied_sub;     /* a worker's sub a script emptied (fs_pp_undef), named */
} fs_request_state;

static const char fs_request_key[] = "FCGI::Spawn::glue::request";

/* The state of the current interpreter (a reload's second interpreter has
 * its own). */
static fs_request_state *fs_rs(pTHX)
{
    return (fs_request_state *)fs_interp_state(aTHX_ fs_request_key, sizeof(fs_request_state));
}

/* perl's chdir, watched: the request's directory is entered again only
 * when something moved away from it. */
static int fs_cwd_moved = 1;
static Perl_ppaddr_t fs_orig_pp_chdir;

static OP *fs_pp_chdir(pTHX)
{
    fs_cwd_moved = 1;
    return fs_orig_pp_chdir(aTHX);
}

/* perl's undef, watched for `undef &CGI::escapeHTML`: it frees the body of
 * one of the worker's subs and leaves the CV in its glob, where the check
 * of the worker's subs (code.c) finds the same CV. Nothing can put the
 * body back: the worker says so after the request and is replaced. (A
 * registry script's own subs are its snapshot's: compiled again.) */
static Perl_ppaddr_t fs_orig_pp_undef;

static OP *fs_pp_undef(pTHX)
{
    SV *sv = PL_op->op_private ? *PL_stack_sp : NULL;
    /* A sub or glob of the worker's emptied: its packages are looked at
     * (a script's own, perlrun's sandbox dropped, are not the worker's). */
    if (sv && SvTYPE(sv) == SVt_PVCV)
        fs_code_touch_unless_script(CvSTASH((CV *)sv));
    else if (sv && SvTYPE(sv) == SVt_PVGV && isGV_with_GP(sv))
        fs_code_touch_unless_script(GvSTASH((GV *)sv));
    else if (sv && SvTYPE(sv) == SVt_PVGV)
        fs_code_touch();
    if (sv && SvTYPE(sv) == SVt_PVCV && fs_code_is_workers(aTHX_ (CV *)sv)) {
        fs_request_state *rs = fs_rs(aTHX);
        CV *cv = (CV *)sv;
        if (!rs->emptied_sub)
            rs->emptied_sub = !CvNAMED(cv) && CvGV(cv)
                ? newSVpvf("the worker's sub &%s::%s, emptied by undef", HvNAME_get(CvSTASH(cv)), GvNAME(CvGV(cv)))
                : newSVpvs("a sub of the worker's, emptied by undef");
    }
    return fs_orig_pp_undef(aTHX);
}

/* --- watched scalars ----------------------------------------------------- */

static int fs_watch_set(pTHX_ SV *sv, MAGIC *mg)
{
    fs_request_state *rs = fs_rs(aTHX);
    size_t i = (size_t)mg->mg_len;
    PERL_UNUSED_ARG(sv);
    if (rs->restoring || i >= rs->nwatched || rs->watched[i].dirty)
        return 0;
    rs->watched[i].dirty = 1;
    if (rs->ndirty == rs->capdirty) {
        rs->capdirty = rs->capdirty ? 2 * rs->capdirty : 16;
        Renew(rs->dirty, rs->capdirty, size_t);
    }
    rs->dirty[rs->ndirty++] = i;
    return 0;
}

static MGVTBL fs_watch_vtbl = { NULL, fs_watch_set, NULL, NULL, NULL, NULL, NULL, NULL };

/* FCGI::Spawn::Native::watch_scalars(GLOB_REF...) — the scalars of these
 * globs, with their values now, are put back (leave_request) whenever
 * a request wrote them. */
XS(fs_xs_watch_scalars)
{
    dXSARGS;
    fs_request_state *rs = fs_rs(aTHX);
    I32 i;
    for (i = 0; i < items; i++) {
        GV *gv;
        SV *sv;
        fs_watched *w;
        if (!SvROK(ST(i)) || SvTYPE(SvRV(ST(i))) != SVt_PVGV)
            croak("fcgi-spawn: watch_scalars: not a glob reference");
        gv = (GV *)SvRV(ST(i));
        /* A glob with no scalar (a sub's, a handle's) is left so: a
         * scalar made for every glob would be memory for nothing. */
        if (!isGV_with_GP(gv) || !(sv = GvSV(gv)))
            continue;
        if (SvMAGICAL(sv) && mg_findext(sv, PERL_MAGIC_ext, &fs_watch_vtbl))
            continue;
        if (rs->nwatched == rs->capwatched) {
            rs->capwatched = rs->capwatched ? 2 * rs->capwatched : 64;
            Renew(rs->watched, rs->capwatched, fs_watched);
        }
        w = &rs->watched[rs->nwatched];
        w->gv = (GV *)SvREFCNT_inc_simple_NN((SV *)gv);
        w->sv = SvREFCNT_inc_simple_NN(sv);
        w->saved = newSVsv(sv);
        w->dirty = 0;
        sv_magicext(sv, NULL, PERL_MAGIC_ext, &fs_watch_vtbl, NULL, (I32)rs->nwatched);
        rs->nwatched++;
    }
    XSRETURN_EMPTY;
}

/* The watched scalars a request wrote, back to their values; and any whose
 * glob a request pointed at another scalar (`*X::y = \$z`). */
static int fs_restore_watched(pTHX_ fs_request_state *rs)
{
    size_t i;
    int restored = 0;
    rs->restoring = 1;
    for (i = 0; i < rs->ndirty; i++) {
        fs_watched *w = &rs->watched[rs->dirty[i]];
        sv_setsv_mg(w->sv, w->saved);
        w->dirty = 0;
        restored++;
    }
    rs->ndirty = 0;
    for (i = 0; i < rs->nwatched; i++) {
        fs_watched *w = &rs->watched[i];
        if (GvSV(w->gv) != w->sv && isGV_with_GP(w->gv)) {
            SV *old = GvSV(w->gv);
            GvSV(w->gv) = SvREFCNT_inc_simple_NN(w->sv);
            SvREFCNT_dec(old);
            restored++;
        }
    }
    rs->restoring = 0;
    return restored;
}

/* FCGI::Spawn::Native::plain_scalars(PACKAGE...) — NAME => VALUE of the
 * packages' defined, non-reference scalars ("CGI::NOSTICKY" => 1): where
 * `use CGI qw(-nosticky)` and its like leave their mark. Read without
 * writing to what a worker shares with the master: a glob without a
 * scalar is not given one (a Perl walk would make one for each), the stash
 * is read from its buckets (no iteration state written into it), and a
 * string value is copied, not shared (sharing raises a count kept in the
 * string's own buffer). */
XS(fs_xs_plain_scalars)
{
    dXSARGS;
    HV *values = newHV();
    I32 i;
    /* Its keys stay out of perl's shared string table, which a worker
     * shares with the master. */
    HvSHAREKEYS_off(values);
    for (i = 0; i < items; i++) {
        STRLEN plen, b;
        const char *package = SvPV_const(ST(i), plen);
        HV *stash = fs_find_stash(aTHX_ package, plen);
        if (!stash || !HvARRAY(stash))
            continue;
        for (b = 0; b <= HvMAX(stash); b++) {
            HE *he;
            for (he = HvARRAY(stash)[b]; he; he = HeNEXT(he)) {
                GV *gv = (GV *)HeVAL(he);
                I32 klen = HeKLEN(he);
                const char *key = HeKEY(he);
                SV *sv, *copy;
                if (SvTYPE(gv) != SVt_PVGV || !isGV_with_GP(gv) || !(sv = GvSV(gv)))
                    continue;
                if (klen > 2 && key[klen - 1] == ':' && key[klen - 2] == ':')
                    continue;
                if (!SvOK(sv) || SvROK(sv))
                    continue;
                copy = SvPOK(sv) && !SvGMAGICAL(sv)
                           ? newSVpvn_flags(SvPVX_const(sv), SvCUR(sv), SvUTF8(sv))
                           : newSVsv(sv);
                (void)hv_store_ent(values, sv_2mortal(newSVpvf("%s::%.*s", package, (int)klen, key)),
                                   copy, 0);
            }
        }
    }
    ST(0) = sv_2mortal(newRV_noinc((SV *)values));
    XSRETURN(1);
}

/* --- the worker's base ----------------------------------------------------- */

/* CORE::GLOBAL's size and method generation: a sub put there or replaced
 * moves one of them. */
static void fs_core_global(pTHX_ STRLEN *keys, U32 *gen)
{
    fs_request_state *rs = fs_rs(aTHX);
    HV *stash;
    /* Found once: it is made before any request (the runner's require). */
    if (!rs->core_global)
        rs->core_global = (HV *)SvREFCNT_inc(fs_find_stash(aTHX_ "CORE::GLOBAL", 12));
    stash = rs->core_global;
    struct mro_meta *meta = stash && SvOOK(stash) ? HvAUX(stash)->xhv_mro_meta : NULL;
    *keys = stash ? HvUSEDKEYS(stash) : 0;
    *gen = meta ? meta->pkg_gen : 0;
}

/* FCGI::Spawn::Native::request_base() — what leave_request puts back:
 * @INC, umask, the warn and die hooks, as they are now. */
XS(fs_xs_request_base)
{
    dXSARGS;
    fs_request_state *rs = fs_rs(aTHX);
    AV *inc = GvAVn(PL_incgv);
    SSize_t i;
    PERL_UNUSED_VAR(items);
    SvREFCNT_dec((SV *)rs->base_inc);
    rs->base_inc = newAV();
    for (i = 0; i <= AvFILL(inc); i++) {
        SV **e = av_fetch(inc, i, 0);
        av_push(rs->base_inc, e ? newSVsv(*e) : newSV(0));
    }
    rs->base_umask = umask(0);
    (void)umask(rs->base_umask);
    SvREFCNT_dec(rs->base_warnhook);
    SvREFCNT_dec(rs->base_diehook);
    rs->base_warnhook = PL_warnhook ? SvREFCNT_inc_simple_NN(PL_warnhook) : NULL;
    rs->base_diehook = PL_diehook ? SvREFCNT_inc_simple_NN(PL_diehook) : NULL;
    fs_core_global(aTHX_ &rs->core_global_keys, &rs->core_global_gen);
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::owned_names(N) — how many main:: keys the worker
 * owns (FCGI::Spawn::Symbols keeps the list). */
XS(fs_xs_owned_names)
{
    dXSARGS;
    if (items != 1)
        croak_xs_usage(cv, "count");
    fs_rs(aTHX)->owned_names = (STRLEN)SvUV(ST(0));
    XSRETURN_EMPTY;
}

/* --- %ENV --------------------------------------------------------------------- */

/* Whether the list on the stack is what `base` holds already. */
static int fs_same_list(pTHX_ AV *base, SV **items, I32 count)
{
    I32 i;
    if (!base || av_count(base) != (Size_t)count)
        return 0;
    for (i = 0; i < count; i++) {
        SV **have = av_fetch(base, i, 0);
        if (!have || !sv_eq(*have, items[i]))
            return 0;
    }
    return 1;
}

/* FCGI::Spawn::Native::request_env_base(NAME, VALUE, ...) — the variables
 * every request's %ENV starts with (the request's params come on top).
 * The same list as the master's is kept: freeing the master's copy in a
 * worker would write to the pages the two share. */
XS(fs_xs_request_env_base)
{
    dXSARGS;
    fs_request_state *rs = fs_rs(aTHX);
    I32 i;
    if (items % 2)
        croak_xs_usage(cv, "NAME, VALUE, ...");
    if (fs_same_list(aTHX_ rs->base_env, &ST(0), items))
        XSRETURN_EMPTY;
    SvREFCNT_dec((SV *)rs->base_env);
    rs->base_env = newAV();
    for (i = 0; i < items; i++)
        av_push(rs->base_env, newSVsv(ST(i)));
    XSRETURN_EMPTY;
}

/* A set of names (pointer and length), for one sync: open addressing. */
typedef struct {
    const char *name;
    size_t len;
} fs_name;

static size_t fs_name_hash(const char *p, size_t len)
{
    size_t h = 1469598103934665603ULL;
    while (len--)
        h = (h ^ (unsigned char)*p++) * 1099511628211ULL;
    return h;
}

/* Adds `name` unless there; returns 1 when it was added. */
static int fs_name_add(fs_name *set, size_t cap, const char *name, size_t len)
{
    size_t i = fs_name_hash(name, len) & (cap - 1);
    while (set[i].name) {
        if (set[i].len == len && memEQ(set[i].name, name, len))
            return 0;
        i = (i + 1) & (cap - 1);
    }
    set[i].name = name;
    set[i].len = len;
    return 1;
}

static int fs_name_has(const fs_name *set, size_t cap, const char *name, size_t len)
{
    size_t i = fs_name_hash(name, len) & (cap - 1);
    while (set[i].name) {
        if (set[i].len == len && memEQ(set[i].name, name, len))
            return 1;
        i = (i + 1) & (cap - 1);
    }
    return 0;
}

/* One variable of %ENV as wanted (through the element's magic, so environ
 * follows), unless it already is. */
static void fs_env_set(pTHX_ HV *env, const char *name, size_t nlen, const char *value, size_t vlen)
{
    SV **svp = hv_fetch(env, name, (I32)nlen, 0);
    STRLEN have;
    const char *p;
    if (svp && SvOK(*svp) && !SvROK(*svp)) {
        p = SvPV_const(*svp, have);
        if (have == vlen && memEQ(p, value, vlen))
            return;
    }
    svp = hv_fetch(env, name, (I32)nlen, 1);
    sv_setpvn(*svp, value, vlen);
    SvSETMAGIC(*svp);
}

/* A new, empty %ENV for a process just forked. The inherited hash holds
 * the master's whole environment, most of which no request keeps: deleting
 * it entry by entry would free each entry, writing to the pages the
 * process shares with the master (about 50 of them for a shell's 35
 * variables). The old hash is left as it is, unreferenced and never freed;
 * code always reaches %ENV through its glob, so nothing sees it again
 * (a reference to it a preloaded module took would, as after `*ENV = {}`). */
static HV *fs_env_of_own(pTHX)
{
    HV *env = newHV();
    hv_magic(env, NULL, PERL_MAGIC_env);
    GvHV(PL_envgv) = env;
    return env;
}

extern char **environ;

/* environ's variables that %ENV no longer has, unset (after fs_env_of_own:
 * the new hash holds only what a request keeps). */
static void fs_environ_follow(pTHX_ const fs_name *seen, size_t cap)
{
    AV *gone = newAV();
    SSize_t k;
    char **e;
    for (e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq && !fs_name_has(seen, cap, *e, (size_t)(eq - *e)))
            av_push(gone, newSVpvn(*e, eq - *e));
    }
    for (k = 0; k <= AvFILLp(gone); k++)
        my_setenv(SvPVX(AvARRAY(gone)[k]), NULL);
    SvREFCNT_dec((SV *)gone);
}

/* %ENV (and so environ) exactly the base variables and then `pairs`
 * (NAME, VALUE, ...; a later one wins), touching only what differs from
 * what is there: most of a request's params are the previous request's. */
void fs_request_env(const char *const *ptrs, const size_t *lens, size_t count)
{
    dTHX;
    fs_request_state *rs = fs_rs(aTHX);
    int own = fs_env_inherited;
    HV *env = own ? fs_env_of_own(aTHX) : GvHVn(PL_envgv);
    size_t nbase = rs->base_env ? (size_t)(AvFILL(rs->base_env) + 1) : 0;
    size_t cap = 64, unique = 0, i;
    fs_name *seen;
    fs_env_inherited = 0;
    /* Twice as many slots as names, at least. */
    while (cap < count + nbase + 16)
        cap *= 2;
    /* The table is kept from request to request: zeroed, not allocated. */
    if (rs->env_names_cap < cap) {
        Renew(rs->env_names, cap, fs_name);
        rs->env_names_cap = cap;
    }
    seen = (fs_name *)rs->env_names;
    Zero(seen, cap, fs_name);
    /* Latest first: the first time a name is seen is the value it gets. */
    for (i = count; i >= 2; i -= 2) {
        if (fs_name_add(seen, cap, ptrs[i - 2], lens[i - 2])) {
            unique++;
            fs_env_set(aTHX_ env, ptrs[i - 2], lens[i - 2], ptrs[i - 1], lens[i - 1]);
        }
    }
    for (i = nbase; i >= 2; i -= 2) {
        STRLEN nlen, vlen;
        const char *name = SvPV_const(*av_fetch(rs->base_env, i - 2, 0), nlen);
        const char *value = SvPV_const(*av_fetch(rs->base_env, i - 1, 0), vlen);
        if (fs_name_add(seen, cap, name, nlen)) {
            unique++;
            fs_env_set(aTHX_ env, name, nlen, value, vlen);
        }
    }
    if (HvUSEDKEYS(env) != unique) {
        AV *gone = newAV();
        HE *he;
        SSize_t k;
        hv_iterinit(env);
        while ((he = hv_iternext(env))) {
            I32 klen;
            const char *key = hv_iterkey(he, &klen);
            if (!fs_name_has(seen, cap, key, (size_t)klen))
                av_push(gone, newSVpvn(key, klen));
        }
        for (k = 0; k <= AvFILLp(gone); k++)
            (void)hv_delete_ent(env, AvARRAY(gone)[k], G_DISCARD, 0);
        SvREFCNT_dec((SV *)gone);
    }
    if (own)
        fs_environ_follow(aTHX_ seen, cap);
}

/* --- the std handles ------------------------------------------------------ */

static GV *fs_std_gv(pTHX_ int which)
{
    fs_request_state *rs;
    if (which != 1)
        return which == 0 ? PL_stdingv : PL_stderrgv;
    rs = fs_rs(aTHX);
    if (!rs->stdout_gv)
        rs->stdout_gv = (GV *)SvREFCNT_inc_simple_NN((SV *)gv_fetchpvs("STDOUT", GV_ADD, SVt_PVIO));
    return rs->stdout_gv;
}

static PerlIO *fs_gv_fp(pTHX_ GV *gv, int out)
{
    IO *io = gv && isGV_with_GP(gv) ? GvIOp(gv) : NULL;
    return io ? (out ? IoOFP(io) : IoIFP(io)) : NULL;
}

/* A handle's layers are exactly `unix perlio` (and `extra`, if given, on
 * top), with no UTF-8 or CRLF translation switched on. */
static int fs_plain_layers(pTHX_ PerlIO *f, const PerlIO_funcs *extra)
{
    const PerlIO_funcs *want[3];
    int n = 0, i = 0;
    PerlIO *t;
    if (!PerlIOValid(f))
        return 0;
    if (extra)
        want[n++] = extra;
    want[n++] = PERLIO_FUNCS_CAST(&PerlIO_perlio);
    want[n++] = PERLIO_FUNCS_CAST(&PerlIO_unix);
    for (t = f; PerlIOValid(t); t = PerlIONext(t), i++) {
        if (i >= n || (*t)->tab != want[i])
            return 0;
        if (PerlIOBase(t)->flags & (PERLIO_F_UTF8 | PERLIO_F_CRLF))
            return 0;
    }
    return i == n;
}

static int fs_tied(pTHX_ GV *gv)
{
    IO *io = gv && isGV_with_GP(gv) ? GvIOp(gv) : NULL;
    return io && SvRMAGICAL(io) && mg_find((SV *)io, PERL_MAGIC_tiedscalar);
}

static int fs_fileno_is(pTHX_ PerlIO *f, int fd)
{
    return PerlIOValid(f) && PerlIO_fileno(f) == fd;
}

/* STDIN and STDOUT as the runner binds them: on fds 0 and 1, perl's
 * layers (and the output layer on STDOUT), nothing buffered. */
static int fs_std_handles_pristine(pTHX)
{
    PerlIO *in = fs_gv_fp(aTHX_ fs_std_gv(aTHX_ 0), 0);
    PerlIO *out = fs_gv_fp(aTHX_ fs_std_gv(aTHX_ 1), 1);
    return fs_fileno_is(aTHX_ in, 0) && fs_fileno_is(aTHX_ out, 1)
        && fs_plain_layers(aTHX_ in, NULL) && fs_plain_layers(aTHX_ out, fs_output_funcs())
        && !PerlIO_get_cnt(in);
}

static void fs_select(pTHX_ GV *gv)
{
    if (PL_defoutgv != gv)
        setdefout(gv);
}

/* STDIN and STDOUT bound: the output layer on STDOUT, every std handle's
 * state fresh, STDOUT selected and buffered. */
static void fs_std_handles_ready(pTHX)
{
    GV *out = fs_std_gv(aTHX_ 1);
    fs_output_capture(aTHX);
    fs_reset_handles(aTHX);
    fs_select(aTHX_ out);
    IoFLAGS(GvIOp(out)) &= ~IOf_FLUSH;
}

/* --- entering a request ---------------------------------------------------- */

/* A std handle kept open from the last request, closed as process exit
 * would close it but with its descriptor left as the runner set it (a body
 * on 0, the response on 1), so that the runner opens it again on a closed
 * handle: perl's open of STDIN or STDOUT while it is open keeps the old
 * PerlIO and leaks the new one's layers (about 170 bytes an open, perl
 * 5.36; bench/soak saw a worker grow 6 MB over 90,000 requests mixing
 * GETs and POSTs). */
static void fs_release_std_handle(pTHX_ GV *gv, int fd)
{
    int keep;
    if (!gv || !GvIOp(gv) || !IoIFP(GvIOp(gv)))
        return;
    keep = PerlLIO_dup(fd);
    (void)do_close(gv, FALSE);
    if (keep >= 0) {
        PerlLIO_dup2(keep, fd);
        PerlLIO_close(keep);
    }
}

/* FCGI::Spawn::Native::enter_request(DIR, FRESH_STDIN) — the request's
 * process facts: $^T now, rand unseeded, the script's directory as cwd.
 * Returns true when STDIN and STDOUT are ready as they are (bound to fds
 * 0 and 1 by an earlier request and untouched), false when the runner
 * must open them again (FRESH_STDIN: a request body) and then call
 * std_handles_bound. */
XS(fs_xs_enter_request)
{
    dXSARGS;
    fs_request_state *rs = fs_rs(aTHX);
    const char *dir;
    if (items != 2)
        croak_xs_usage(cv, "dir, fresh_stdin");
    dir = SvPV_nolen(ST(0));
    PL_basetime = time(NULL);
    PL_srand_called = FALSE;
    if (fs_cwd_moved || !rs->cwd || strNE(rs->cwd, dir)) {
        if (PerlDir_chdir(dir) != 0)
            Perl_warn(aTHX_ "fcgi-spawn: cannot chdir to %s: %s\n", dir, Strerror(errno));
        Safefree(rs->cwd);
        rs->cwd = savepv(dir);
        fs_cwd_moved = 0;
    }
    if (!fs_std_handles_pristine(aTHX))
        XSRETURN_NO;
    if (SvTRUE(ST(1))) {
        fs_release_std_handle(aTHX_ fs_std_gv(aTHX_ 0), 0);
        fs_release_std_handle(aTHX_ fs_std_gv(aTHX_ 1), 1);
        XSRETURN_NO;
    }
    fs_std_handles_ready(aTHX);
    XSRETURN_YES;
}

/* FCGI::Spawn::Native::std_handles_bound() — after the runner opened
 * STDIN and STDOUT on fds 0 and 1: the output layer on, handle state
 * fresh, STDOUT selected and buffered. */
XS(fs_xs_std_handles_bound)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    fs_std_handles_ready(aTHX);
    XSRETURN_EMPTY;
}

/* --- after the script -------------------------------------------------------- */

/* FCGI::Spawn::Native::finish_std_handles() — the script is over: STDOUT
 * selected again. Returns true when a std handle is tied (the runner
 * unties it, so that the tie's last words are written). */
XS(fs_xs_finish_std_handles)
{
    dXSARGS;
    int i;
    PERL_UNUSED_VAR(items);
    fs_select(aTHX_ fs_std_gv(aTHX_ 1));
    for (i = 0; i < 3; i++)
        if (fs_tied(aTHX_ fs_std_gv(aTHX_ i)))
            XSRETURN_YES;
    XSRETURN_NO;
}

/* FCGI::Spawn::Native::close_std_handles(FRESH_STDIN) — as process exit:
 * STDOUT flushed; STDIN and STDOUT closed when they are not as bound or a
 * body was read (kept otherwise: the next request needs them as they are). */
XS(fs_xs_close_std_handles)
{
    dXSARGS;
    GV *in_gv = fs_std_gv(aTHX_ 0), *out_gv = fs_std_gv(aTHX_ 1);
    PerlIO *out;
    if (items != 1)
        croak_xs_usage(cv, "fresh_stdin");
    out = fs_gv_fp(aTHX_ out_gv, 1);
    if (PerlIOValid(out))
        PerlIO_flush(out);
    if (SvTRUE(ST(0)) || !fs_std_handles_pristine(aTHX)) {
        if (GvIOp(in_gv))
            (void)do_close(in_gv, FALSE);
        if (GvIOp(out_gv))
            (void)do_close(out_gv, FALSE);
    }
    XSRETURN_EMPTY;
}

static int fs_sv_is(pTHX_ SV *sv, const char *want, STRLEN len)
{
    STRLEN have;
    const char *p;
    if (!sv || !SvOK(sv) || SvROK(sv))
        return 0;
    p = SvPV_const(sv, have);
    return have == len && memEQ(p, want, len);
}

/* A special variable's glob, made once (so is the variable: perl makes
 * them on first use anyway). */
static SV *fs_special_sv(pTHX_ fs_request_state *rs, size_t i)
{
    SV *sv;
    if (!rs->special[i])
        rs->special[i] = (GV *)SvREFCNT_inc_simple_NN((SV *)gv_fetchpv(fs_specials[i].name, GV_ADD, SVt_PV));
    sv = GvSVn(rs->special[i]);
    SvGETMAGIC(sv);
    return sv;
}

/* Whether special variable `i` has its value in a new process. */
static int fs_special_is(pTHX_ fs_request_state *rs, size_t i)
{
    SV *sv = fs_special_sv(aTHX_ rs, i);
    return fs_specials[i].value ? fs_sv_is(aTHX_ sv, fs_specials[i].value, fs_specials[i].len) : !SvOK(sv);
}

/* Special variable `i` back to its value in a new process, touched only
 * when it differs. Returns 0 when it cannot be (a script made it
 * read-only): the runner's Perl part then tries, and fails with perl's
 * own message. */
static int fs_special_back(pTHX_ fs_request_state *rs, size_t i)
{
    SV *sv;
    if (fs_special_is(aTHX_ rs, i))
        return 1;
    sv = GvSVn(rs->special[i]);
    if (SvREADONLY(sv))
        return 0;
    if (fs_specials[i].value)
        sv_setpvn_mg(sv, fs_specials[i].value, fs_specials[i].len);
    else
        sv_setsv_mg(sv, &PL_sv_undef);
    return 1;
}

/* $0, through its glob, made once. */
static SV *fs_zero(pTHX_ fs_request_state *rs)
{
    if (!rs->zero_gv)
        rs->zero_gv = (GV *)SvREFCNT_inc_simple_NN((SV *)gv_fetchpvs("0", GV_ADD, SVt_PV));
    return GvSVn(rs->zero_gv);
}

/* Whether @INC is the worker's (values compared: an element may have been
 * changed in place). */
static int fs_inc_is_base(pTHX_ fs_request_state *rs)
{
    AV *inc = GvAVn(PL_incgv);
    SSize_t i;
    if (!rs->base_inc || AvFILL(inc) != AvFILL(rs->base_inc))
        return 0;
    for (i = 0; i <= AvFILL(inc); i++) {
        SV **now = av_fetch(inc, i, 0);
        SV **was = av_fetch(rs->base_inc, i, 0);
        if (!now || !was || SvROK(*now) != SvROK(*was))
            return 0;
        if (SvROK(*now) ? SvRV(*now) != SvRV(*was) : !sv_eq(*now, *was))
            return 0;
    }
    return 1;
}

static void fs_inc_back(pTHX_ fs_request_state *rs)
{
    AV *inc = GvAVn(PL_incgv);
    SSize_t i;
    av_clear(inc);
    for (i = 0; rs->base_inc && i <= AvFILL(rs->base_inc); i++)
        av_push(inc, newSVsv(*av_fetch(rs->base_inc, i, 0)));
}

static int fs_hook_is(SV *now, SV *was)
{
    if (!now || !was)
        return now == was;
    if (SvROK(now) || SvROK(was))
        return SvROK(now) && SvROK(was) && SvRV(now) == SvRV(was);
    return now == was;
}

/* The std handles on their descriptors and STDERR selected (unless a Perl
 * part is still to put STDERR back). */
static int fs_invariants_hold(pTHX_ fs_request_state *rs, int stderr_pending)
{
    int i;
    PERL_UNUSED_ARG(rs);
    if (!stderr_pending && PL_defoutgv != fs_std_gv(aTHX_ 2))
        return 0;
    if (!fs_fileno_is(aTHX_ fs_gv_fp(aTHX_ fs_std_gv(aTHX_ 2), 1), 2))
        return 0;
    for (i = 0; i < 2; i++) {
        PerlIO *f = fs_gv_fp(aTHX_ fs_std_gv(aTHX_ i), i);
        if (PerlIOValid(f) && PerlIO_fileno(f) != i)
            return 0;
    }
    return 1;
}

#define FS_PUSH_PART(name)                                                     \
    STMT_START {                                                               \
        XPUSHs(sv_2mortal(newSVpvs(name)));                                    \
        n++;                                                                   \
    } STMT_END

/* FCGI::Spawn::Native::leave_request(PROGRAM_NAME, END_COUNT) — after the
 * response: puts back in C what a request may change of the interpreter
 * (special variables, @ARGV, $0, @INC, umask, pending alarm, watched
 * module settings, STDERR selected) and checks the rest. Returns the
 * names of what needs the runner's Perl parts: 'end_blocks' (the script
 * left END blocks to take), 'stderr' (STDERR re-layered or moved),
 * 'signals' (%SIG changed), 'main' (names left in main::), 'code' (modules
 * were loaded: the worker's subs to record), 'core_global' (a sub put in
 * CORE::GLOBAL or replaced there), 'special' (a special variable, @ARGV
 * or @INC made read-only: the Perl part fails the worker with perl's
 * message), 'invariants' (names left in main::, a std handle moved: the
 * runner checks again after its parts, and names what broke). */
XS(fs_xs_leave_request)
{
    dXSARGS;
    fs_request_state *rs = fs_rs(aTHX);
    int n = 0;
    GV *err_gv = fs_std_gv(aTHX_ 2);
    PerlIO *err;
    AV *argv;
    SV *zero;
    STRLEN name_len;
    const char *name;
    size_t i;
    int special_ok = 1, stderr_pending;
    if (items != 2)
        croak_xs_usage(cv, "program_name, end_count");
    name = SvPV_const(ST(0), name_len);
    SP -= items;

    if (PL_endav && av_count(PL_endav) != (Size_t)SvIV(ST(1)))
        FS_PUSH_PART("end_blocks");

    err = fs_gv_fp(aTHX_ err_gv, 1);
    stderr_pending = !fs_fileno_is(aTHX_ err, 2) || !fs_plain_layers(aTHX_ err, NULL)
        || !(PerlIOBase(err)->flags & PERLIO_F_UNBUF);
    if (stderr_pending)
        FS_PUSH_PART("stderr");
    else
        fs_select(aTHX_ err_gv);

    argv = GvAVn(PL_argvgv);
    zero = fs_zero(aTHX_ rs);
    for (i = 0; i < FS_SPECIALS; i++)
        special_ok &= fs_special_back(aTHX_ rs, i);
    if (!special_ok || SvREADONLY(argv) || SvREADONLY(GvAVn(PL_incgv)) || SvREADONLY(zero)) {
        FS_PUSH_PART("special");
    } else {
        if (AvFILLp(argv) >= 0)
            av_clear(argv);
        if (!fs_sv_is(aTHX_ zero, name, name_len))
            sv_setpvn_mg(zero, name, name_len);
        if (!fs_inc_is_base(aTHX_ rs))
            fs_inc_back(aTHX_ rs);
    }
    PL_dowarn &= ~G_WARN_ON; /* $^W */

    (void)umask(rs->base_umask);
    (void)alarm(0);
    fs_restore_watched(aTHX_ rs);

    if (!fs_hook_is(PL_warnhook, rs->base_warnhook) || !fs_hook_is(PL_diehook, rs->base_diehook)
        || fs_signals_changed(aTHX))
        FS_PUSH_PART("signals");
    /* What the Perl parts cannot change, checked here; the runner names
     * what broke (request_invariants) when it hears of it. */
    if (HvUSEDKEYS(PL_defstash) != rs->owned_names || !fs_invariants_hold(aTHX_ rs, stderr_pending)
        || rs->emptied_sub)
        FS_PUSH_PART("invariants");
    if (fs_code_stale(aTHX))
        FS_PUSH_PART("code");
    {
        STRLEN keys;
        U32 gen;
        fs_core_global(aTHX_ &keys, &gen);
        if (keys != rs->core_global_keys || gen != rs->core_global_gen)
            FS_PUSH_PART("core_global");
    }
    PUTBACK;
    XSRETURN(n);
}

/* FCGI::Spawn::Native::request_invariants() — the worker's state as a
 * request must leave it, the parts that broke named. */
XS(fs_xs_request_invariants)
{
    dXSARGS;
    fs_request_state *rs = fs_rs(aTHX);
    int n = 0;
    size_t i;
    int fd;
    PERL_UNUSED_VAR(items);
    SP -= items;
    for (i = 0; i < 5; i++) /* $/ $\ $, $" $; */
        if (!fs_special_is(aTHX_ rs, i)) {
            XPUSHs(sv_2mortal(newSVpv(fs_specials[i].shown, 0)));
            n++;
        }
    if (PL_defoutgv != fs_std_gv(aTHX_ 2))
        FS_PUSH_PART("the selected handle");
    if (!fs_fileno_is(aTHX_ fs_gv_fp(aTHX_ fs_std_gv(aTHX_ 2), 1), 2))
        FS_PUSH_PART("STDERR on fd 2");
    for (fd = 0; fd < 2; fd++) {
        PerlIO *f = fs_gv_fp(aTHX_ fs_std_gv(aTHX_ fd), fd);
        if (PerlIOValid(f) && PerlIO_fileno(f) != fd) {
            XPUSHs(sv_2mortal(newSVpvf("%s on fd %d", fd ? "STDOUT" : "STDIN", fd)));
            n++;
        }
    }
    if (!fs_inc_is_base(aTHX_ rs))
        FS_PUSH_PART("@INC");
    if (rs->emptied_sub) {
        XPUSHs(sv_2mortal(newSVsv(rs->emptied_sub)));
        n++;
    }
    PUTBACK;
    XSRETURN(n);
}

static const fs_xsub fs_request_xsubs_table[] = {
    FS_XSUB("watch_scalars", fs_xs_watch_scalars),
    FS_XSUB("plain_scalars", fs_xs_plain_scalars),
    FS_XSUB("request_base", fs_xs_request_base),
    FS_XSUB("owned_names", fs_xs_owned_names),
    FS_XSUB("request_env_base", fs_xs_request_env_base),
    FS_XSUB("enter_request", fs_xs_enter_request),
    FS_XSUB("std_handles_bound", fs_xs_std_handles_bound),
    FS_XSUB("finish_std_handles", fs_xs_finish_std_handles),
    FS_XSUB("close_std_handles", fs_xs_close_std_handles),
    FS_XSUB("leave_request", fs_xs_leave_request),
    FS_XSUB("request_invariants", fs_xs_request_invariants),
};

void fs_register_request_xsubs(pTHX)
{
    fs_register_xsubs(aTHX_ fs_request_xsubs_table, sizeof fs_request_xsubs_table / sizeof fs_request_xsubs_table[0]);
    if (!fs_orig_pp_chdir) {
        fs_orig_pp_chdir = PL_ppaddr[OP_CHDIR];
        PL_ppaddr[OP_CHDIR] = fs_pp_chdir;
    }
    if (!fs_orig_pp_undef) {
        fs_orig_pp_undef = PL_ppaddr[OP_UNDEF];
        PL_ppaddr[OP_UNDEF] = fs_pp_undef;
    }
}

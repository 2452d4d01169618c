/*
 * Interpreter state a request may change and the runner puts back: the
 * script's END blocks, %SIG, %ENV, and the format state of the std handles.
 * Each is a short C loop the Perl runner (perl/FCGI/Spawn/) calls
 * instead of a slower or impossible pure-Perl equivalent.
 */
#include "glue_internal.h"
#include <perliol.h>

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
        /* An unchanged one is kept: in a worker, the master's copy (a new
         * one would free it, writing to pages the two share). */
        if (fs_same_handler(aTHX_ now, fs_signal_snapshot[i]))
            continue;
        SvREFCNT_dec(fs_signal_snapshot[i]);
        fs_signal_snapshot[i] = now ? newSVsv(now) : NULL;
    }
    XSRETURN_EMPTY;
}

int fs_signals_changed(pTHX)
{
    int i;
    for (i = 1; i < SIG_SIZE; i++)
        if (!fs_same_handler(aTHX_ PL_psig_ptr ? PL_psig_ptr[i] : NULL, fs_signal_snapshot[i]))
            return 1;
    return 0;
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

/* --- formats ----------------------------------------------------------------
 *
 * Each handle carries its own format state ($~ $^ $= $- $%), and `format
 * STDOUT =` in any package defines the format of main::STDOUT: names such
 * as STDOUT are forced into main. A new process starts with no formats and
 * with fresh handles; so must a request. IoTOP_GV/IoFMT_GV are weak
 * pointers to globs: one left pointing into a deleted sandbox is a use of
 * freed memory at the next `write`. */

/* The globs whose formats a script defines whatever its package. */
static const char *const fs_forced_main[] = {
    "STDOUT", "STDERR", "STDIN", "ARGV", "ARGVOUT", "ENV", "INC", "SIG",
};
#define FS_FORCED_MAIN_COUNT (sizeof(fs_forced_main) / sizeof(fs_forced_main[0]))
#define FS_FORCED_MAIN_STDERR 1 /* its index above */

/* Those globs (they live as long as main::), and the formats they had
 * when the worker started (normally none). */
static GV *fs_forced_main_gv[FS_FORCED_MAIN_COUNT];
static CV *fs_base_formats[FS_FORCED_MAIN_COUNT];

static void fs_reset_io_format(pTHX_ IO *io)
{
    Safefree(IoTOP_NAME(io));
    IoTOP_NAME(io) = NULL;
    Safefree(IoFMT_NAME(io));
    IoFMT_NAME(io) = NULL;
    Safefree(IoBOTTOM_NAME(io));
    IoBOTTOM_NAME(io) = NULL;
    IoTOP_GV(io) = NULL;
    IoFMT_GV(io) = NULL;
    IoBOTTOM_GV(io) = NULL;
    IoPAGE(io) = 0;
    IoPAGE_LEN(io) = 60;
    IoLINES_LEFT(io) = 0;
    IoFLAGS(io) &= ~IOf_DIDTOP;
}

static void fs_set_form(pTHX_ GV *gv, CV *form)
{
    CV *old = GvFORM(gv);
    if (old == form)
        return;
    GvFORM(gv) = form ? (CV *)SvREFCNT_inc_simple_NN(form) : NULL;
    SvREFCNT_dec(old);
}

/* The snapshots above belong to the interpreter that took them; parked
 * with it while another one is current (glue.c). */
typedef struct {
    SV *signals[SIG_SIZE];
    GV *gv[FS_FORCED_MAIN_COUNT];
    CV *formats[FS_FORCED_MAIN_COUNT];
} fs_state_parked;

void *fs_state_park(void)
{
    fs_state_parked *p = (fs_state_parked *)calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->signals, fs_signal_snapshot, sizeof p->signals);
    memcpy(p->gv, fs_forced_main_gv, sizeof p->gv);
    memcpy(p->formats, fs_base_formats, sizeof p->formats);
    memset(fs_signal_snapshot, 0, sizeof fs_signal_snapshot);
    memset(fs_forced_main_gv, 0, sizeof fs_forced_main_gv);
    memset(fs_base_formats, 0, sizeof fs_base_formats);
    return p;
}

void fs_state_unpark(void *parked, int keep)
{
    fs_state_parked *p = (fs_state_parked *)parked;
    if (!p)
        return;
    if (keep) {
        memcpy(fs_signal_snapshot, p->signals, sizeof p->signals);
        memcpy(fs_forced_main_gv, p->gv, sizeof p->gv);
        memcpy(fs_base_formats, p->formats, sizeof p->formats);
    }
    free(p);
}

/* FCGI::Spawn::Native::snapshot_formats() — once per worker. */
XS(fs_xs_snapshot_formats)
{
    dXSARGS;
    size_t i;
    PERL_UNUSED_VAR(items);
    for (i = 0; i < FS_FORCED_MAIN_COUNT; i++) {
        GV *gv = gv_fetchpv(fs_forced_main[i], GV_ADD, SVt_PVFM);
        SvREFCNT_dec(fs_forced_main_gv[i]);
        fs_forced_main_gv[i] = (GV *)SvREFCNT_inc_simple_NN(gv);
        SvREFCNT_dec(fs_base_formats[i]);
        fs_base_formats[i] = GvFORM(gv) ? (CV *)SvREFCNT_inc_simple_NN(GvFORM(gv)) : NULL;
    }
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::take_formats() — the formats scripts defined on the
 * forced-main globs, as (NAME, CODEREF) pairs, and those globs back to the
 * worker's base: what a registry script compiled is kept with it and
 * installed again before each of its runs (install_formats). */
XS(fs_xs_take_formats)
{
    dXSARGS;
    size_t i;
    int pushed = 0;
    PERL_UNUSED_VAR(items);
    SP -= items;
    for (i = 0; i < FS_FORCED_MAIN_COUNT; i++) {
        GV *gv = fs_forced_main_gv[i];
        if (!gv || !GvFORM(gv) || GvFORM(gv) == fs_base_formats[i])
            continue;
        XPUSHs(sv_2mortal(newSVpv(fs_forced_main[i], 0)));
        XPUSHs(sv_2mortal(newRV_inc((SV *)GvFORM(gv))));
        fs_set_form(aTHX_ gv, fs_base_formats[i]);
        pushed += 2;
    }
    PUTBACK;
    XSRETURN(pushed);
}

/* FCGI::Spawn::Native::install_formats(NAME, CODEREF, ...) */
XS(fs_xs_install_formats)
{
    dXSARGS;
    I32 i;
    if (items % 2)
        croak_xs_usage(cv, "NAME, FORMAT_REF, ...");
    for (i = 0; i < items; i += 2) {
        GV *gv = gv_fetchsv(ST(i), GV_ADD, SVt_PVFM);
        SV *ref = ST(i + 1);
        if (!SvROK(ref) || SvTYPE(SvRV(ref)) != SVt_PVFM)
            croak("fcgi-spawn: install_formats: not a format reference");
        fs_set_form(aTHX_ gv, (CV *)SvRV(ref));
    }
    XSRETURN_EMPTY;
}

/* A new process's STDERR is unbuffered: perl marks its buffering layer so.
 * A script that re-layers it (Capture::Tiny does, as does binmode STDERR,
 * ':perlio') leaves a buffered one, which would hold back what the next
 * request prints to STDERR until after its end (and past a `2>&1` it made
 * into the page). Flushed first: what is held is this request's. */
static void fs_unbuffer(pTHX_ PerlIO *f)
{
    PerlIO *t;
    if (!PerlIOValid(f))
        return;
    PerlIO_flush(f);
    for (t = f; t && *t; t = PerlIONext(t))
        if ((*t)->tab && ((*t)->tab->kind & PERLIO_K_BUFFERED))
            (*t)->flags |= PERLIO_F_UNBUF;
}

/* FCGI::Spawn::Native::reset_handles() — every request starts as a new
 * process would: no formats on the forced-main globs (but the worker's
 * own), fresh format state on every handle among them (an explicit
 * `close STDOUT` leaves $- at the page length, for one), and no handle
 * read yet. Reopening a handle keeps its line count (perlvar on $.), and
 * a GET's STDIN is never reopened: a script that read it would leave
 * `$.`, and the ", <STDIN> line 1." perl adds to every die and warn
 * message, to the next request; and one that read a GET's empty STDIN in
 * slurp mode would get nothing, not one empty string, from it next time
 * (IOf_NOLINE). STDERR is unbuffered again (fs_unbuffer). */
void fs_reset_handles(pTHX)
{
    size_t i;
    SV *dot;
    for (i = 0; i < FS_FORCED_MAIN_COUNT; i++) {
        GV *gv = fs_forced_main_gv[i];
        if (!gv || !isGV_with_GP(gv))
            continue;
        if (GvFORM(gv) != fs_base_formats[i])
            fs_set_form(aTHX_ gv, fs_base_formats[i]);
        if (GvIOp(gv)) {
            fs_reset_io_format(aTHX_ GvIOp(gv));
            IoLINES(GvIOp(gv)) = 0;
            IoFLAGS(GvIOp(gv)) &= ~(IOf_NOLINE | IOf_FLUSH); /* and $| off */
        }
    }
    {
        GV *gv = fs_forced_main_gv[FS_FORCED_MAIN_STDERR];
        IO *err = gv && isGV_with_GP(gv) ? GvIOp(gv) : NULL;
        if (err) {
            fs_unbuffer(aTHX_ IoOFP(err));
            if (IoIFP(err) != IoOFP(err))
                fs_unbuffer(aTHX_ IoIFP(err));
        }
    }
    /* $. reads the last-read handle's count, and keeps its old value when
     * there is none. */
    PL_last_in_gv = NULL;
    if ((dot = get_sv(".", 0)))
        SvOK_off(dot);
}

XS(fs_xs_reset_handles)
{
    dXSARGS;
    PERL_UNUSED_VAR(items);
    fs_reset_handles(aTHX);
    XSRETURN_EMPTY;
}

static const fs_xsub fs_state_xsubs_table[] = {
    FS_XSUB("end_block_count", fs_xs_end_block_count),
    FS_XSUB("take_end_blocks", fs_xs_take_end_blocks),
    FS_XSUB("snapshot_signals", fs_xs_snapshot_signals),
    FS_XSUB("changed_signals", fs_xs_changed_signals),
    FS_XSUB("snapshot_formats", fs_xs_snapshot_formats),
    FS_XSUB("take_formats", fs_xs_take_formats),
    FS_XSUB("install_formats", fs_xs_install_formats),
    FS_XSUB("reset_handles", fs_xs_reset_handles),
};

void fs_register_state_xsubs(pTHX)
{
    fs_register_xsubs(aTHX_ fs_state_xsubs_table, sizeof fs_state_xsubs_table / sizeof fs_state_xsubs_table[0]);
}

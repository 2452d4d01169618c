/*
 * A registry script's package, put back before each run to what it was
 * right after the script was compiled.
 *
 * mod_perl's Registry leaves a script's package globals as the previous
 * request left them: an `our $user` set on a logged-in request is still set
 * for the next anonymous one. Here the runner snapshots the package (and
 * the packages nested in it) once, after compiling, and restores it before
 * every run: scalars, arrays and hashes get their post-compile values back
 * (shallow copies: usually undef and empty, or what a BEGIN block or `use
 * vars` put there), subs and formats the run defined or replaced go back,
 * symbols the run created go, handles the run opened on package globs are
 * closed (untied first, so a tie's CLOSE/DESTROY still writes its last
 * bytes). All in C: it runs on every registry request.
 *
 * Also here: the check that keeps such scripts out of the registry when
 * they cannot run there correctly (named subs capturing file lexicals), the
 * reset of match-once (/o) patterns, and the stamp that tells when a
 * compiled script's file changed.
 */
#include "glue_internal.h"
#include <sys/stat.h>

HV *fs_find_stash(pTHX_ const char *name, STRLEN len)
{
    return gv_stashpvn(name, (U32)len, 0);
}

/* --- what a run changed --------------------------------------------------
 *
 * A snapshot taken to be restored after every run (a registry script's
 * packages) watches what it recorded: the package's scalars and the
 * elements of its arrays and hashes get set magic, and free magic (an
 * element a run removes or replaces is freed), which flags their record
 * when a run writes them. The restore copies back only what is flagged,
 * or a container whose shape moved (an array's element pointers, a hash's
 * key count) or that was swapped for another: a run that changed nothing
 * costs a few pointer compares per symbol, whatever the size of the
 * tables it keeps (AWStats' lib/*.pm: thousands of entries, read on every
 * page). What is shallow stays shallow: the contents of a structure a
 * kept value refers to are the script's own business, as under mod_perl. */

typedef struct {
    U8 *flags; /* what each record's run wrote (FS_DIRTY_*), by record id */
    size_t n, cap;
    int restoring; /* our own writes are not the run's */
    AV *lost;      /* during a restore_package: the symbols it cannot put back */
} fs_watch_state;

static const char fs_watch_key[] = "FCGI::Spawn::glue::watch";
#define FS_DIRTY_SCALAR 1
#define FS_DIRTY_ARRAY 2
#define FS_DIRTY_HASH 4
#define FS_RETIRED 0x80 /* its snapshot is gone: its magic may be reused */

static fs_watch_state *fs_ws(pTHX)
{
    return (fs_watch_state *)fs_interp_state(aTHX_ fs_watch_key, sizeof(fs_watch_state));
}

/* A record's id: its flags' index. Ids are never reused, so magic left on
 * an SV that outlived its record flags nothing that matters. */
static IV fs_watch_id(pTHX)
{
    fs_watch_state *ws = fs_ws(aTHX);
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 1024;
        Renew(ws->flags, ws->cap, U8);
    }
    ws->flags[ws->n] = 0;
    return (IV)ws->n++;
}

static int fs_watch_mark(pTHX_ SV *sv, MAGIC *mg)
{
    fs_watch_state *ws = fs_ws(aTHX);
    size_t id = (size_t)mg->mg_len;
    PERL_UNUSED_ARG(sv);
    if (!ws->restoring && id < ws->n && !(ws->flags[id] & FS_RETIRED))
        ws->flags[id] |= (U8)mg->mg_private;
    return 0;
}

/* set and free */
static MGVTBL fs_watch_vtbl = { NULL, fs_watch_mark, NULL, NULL, fs_watch_mark, NULL, NULL, NULL };

/* One SV can be in several records: a package's scalar imported into the
 * script's package (Exporter's `*main::x = \$Lib::x`), or the same name in
 * a snapshot and in one nested in it. Each record gets magic of its own on
 * it, so a write flags them all, and a record dropped with its snapshot
 * (retire_snapshot) leaves its magic for the next record to reuse. */
static void fs_watch_sv(pTHX_ SV *sv, IV id, U8 what)
{
    fs_watch_state *ws;
    MAGIC *mg, *reusable = NULL;
    if (!sv || SvREADONLY(sv) || SvTYPE(sv) >= SVt_PVAV || SvTYPE(sv) == SVt_PVGV)
        return;
    ws = fs_ws(aTHX);
    for (mg = SvMAGICAL(sv) ? SvMAGIC(sv) : NULL; mg; mg = mg->mg_moremagic) {
        if (mg->mg_type != PERL_MAGIC_ext || mg->mg_virtual != &fs_watch_vtbl)
            continue;
        if (mg->mg_len == (I32)id) {
            mg->mg_private = what;
            return;
        }
        if (!reusable && (size_t)mg->mg_len < ws->n && (ws->flags[mg->mg_len] & FS_RETIRED))
            reusable = mg;
    }
    mg = reusable ? reusable : sv_magicext(sv, NULL, PERL_MAGIC_ext, &fs_watch_vtbl, NULL, 0);
    mg->mg_len = (I32)id;
    mg->mg_private = what;
}

/* An array's element pointers: its shape, which a push, a splice or an
 * in-place sort changes without writing any element. */
static SV *fs_av_shape(pTHX_ AV *av)
{
    return newSVpvn(AvARRAY(av) ? (const char *)AvARRAY(av) : "", (AvFILLp(av) + 1) * sizeof(SV *));
}

static int fs_av_same_shape(pTHX_ AV *av, SV *shape)
{
    STRLEN len;
    const char *p = SvPV_const(shape, len);
    return len == (STRLEN)((AvFILLp(av) + 1) * sizeof(SV *)) && (!len || memEQ(p, AvARRAY(av), len));
}

static void fs_watch_av(pTHX_ AV *av, IV id)
{
    SSize_t i;
    for (i = 0; i <= AvFILLp(av); i++)
        fs_watch_sv(aTHX_ AvARRAY(av)[i], id, FS_DIRTY_ARRAY);
}

static void fs_watch_hv(pTHX_ HV *hv, IV id)
{
    HE *he;
    hv_iterinit(hv);
    while ((he = hv_iternext(hv)))
        fs_watch_sv(aTHX_ HeVAL(he), id, FS_DIRTY_HASH);
}

/* A snapshot of one stash: an AV of [RV to the stash, RV to an HV mapping
 * each symbol name to its record, the stash's key count after the last
 * restore, the stash's image after the last restore (see "the image of a
 * clean stash")]. A record is an AV indexed by these: */
enum {
    REC_ENTRY,  /* the stash value itself (RV to the GV, or a copy of a stub) */
    REC_SCALAR, /* copy of GvSV, or undef */
    REC_ARRAY,  /* RV to a shallow copy of GvAV, or undef */
    REC_HASH,   /* RV to a shallow copy of GvHV, or undef */
    REC_CODE,   /* RV to GvCV, or undef */
    REC_FORMAT, /* RV to GvFORM, or undef */
    REC_IO_OPEN,/* true if GvIO was open */
    REC_NESTED, /* snapshot of the nested package (name ending in ::), or undef */
    REC_GP,     /* the glob's GP (its address, as an IV) */
    REC_BODY,   /* the body of the sub (REC_CODE, or a stub's): see fs_cv_body */
    /* a watched record only: */
    REC_ID,       /* its flags' index */
    REC_LIVE_SV,  /* RV to the glob's scalar, its array, its hash: the */
    REC_LIVE_AV,  /* containers that stay the glob's (a run that swaps */
    REC_LIVE_HV,  /* one gets it back) */
    REC_AV_SHAPE, /* the live array's element pointers when last clean */
    REC_HV_KEYS,  /* the live hash's key count when last clean */
    REC_SIZE
};

static int fs_is_stash_name(const char *key, I32 len)
{
    return len > 2 && key[len - 1] == ':' && key[len - 2] == ':';
}

static SV *fs_snapshot_stash(pTHX_ HV *stash, int depth, int watch);

/* A shallow copy of an array: a hole (`$a[3] = 1` leaves 0 to 2 unset)
 * becomes an undef element; av_make would read through it. */
static AV *fs_av_copy(pTHX_ AV *from)
{
    AV *copy = newAV();
    SSize_t i;
    av_extend(copy, AvFILLp(from));
    for (i = 0; i <= AvFILLp(from); i++)
        av_push(copy, AvARRAY(from)[i] ? newSVsv(AvARRAY(from)[i]) : newSV(0));
    return copy;
}

/* An array or a hash back to a shallow copy (fs_av_copy, newHVhv) taken
 * earlier: its elements copied again, one level deep. */
static void fs_av_back(pTHX_ AV *to, AV *from)
{
    SSize_t i;
    av_clear(to);
    for (i = 0; i <= AvFILLp(from); i++)
        av_push(to, AvARRAY(from)[i] ? newSVsv(AvARRAY(from)[i]) : newSV(0));
}

static void fs_hv_back(pTHX_ HV *to, HV *from)
{
    HE *he;
    hv_clear(to);
    hv_iterinit(from);
    while ((he = hv_iternext(from)))
        (void)hv_store_ent(to, hv_iterkeysv(he), newSVsv(HeVAL(he)), 0);
}

/* The live containers of a watched record (as they are now) and their
 * elements watched. */
static void fs_watch_record(pTHX_ AV *rec, GV *gv)
{
    IV id = SvIV(*av_fetch(rec, REC_ID, 0));
    av_store(rec, REC_LIVE_SV, GvSV(gv) ? newRV_inc(GvSV(gv)) : newSV(0));
    av_store(rec, REC_LIVE_AV, GvAV(gv) ? newRV_inc((SV *)GvAV(gv)) : newSV(0));
    av_store(rec, REC_LIVE_HV, GvHV(gv) && !HvNAME_get(GvHV(gv)) ? newRV_inc((SV *)GvHV(gv)) : newSV(0));
    av_store(rec, REC_AV_SHAPE, GvAV(gv) ? fs_av_shape(aTHX_ GvAV(gv)) : newSV(0));
    av_store(rec, REC_HV_KEYS, newSViv(GvHV(gv) ? (IV)HvUSEDKEYS(GvHV(gv)) : 0));
    if (GvSV(gv))
        fs_watch_sv(aTHX_ GvSV(gv), id, FS_DIRTY_SCALAR);
    if (GvAV(gv))
        fs_watch_av(aTHX_ GvAV(gv), id);
    if (GvHV(gv) && !HvNAME_get(GvHV(gv)))
        fs_watch_hv(aTHX_ GvHV(gv), id);
}

/* What a sub runs: its op tree, or its C function. `undef &name` frees it
 * and leaves the CV in place, empty: nothing a restore can put back. */
static IV fs_cv_body(CV *cv)
{
    return CvISXSUB(cv) ? PTR2IV(CvXSUB(cv)) : PTR2IV(CvROOT(cv));
}

static AV *fs_record(pTHX_ SV *entry, const char *key, I32 klen, int depth, int watch)
{
    AV *rec = newAV();
    GV *gv;
    av_extend(rec, REC_SIZE - 1);
    av_store(rec, REC_ENTRY, SvTYPE(entry) == SVt_PVGV ? newRV_inc(entry) : newSVsv(entry));
    if (SvROK(entry) && SvTYPE(SvRV(entry)) == SVt_PVCV)
        av_store(rec, REC_BODY, newSViv(fs_cv_body((CV *)SvRV(entry))));
    if (SvTYPE(entry) != SVt_PVGV || !isGV_with_GP(entry))
        return rec;
    gv = (GV *)entry;
    av_store(rec, REC_GP, newSViv(PTR2IV(GvGP(gv))));
    if (GvSV(gv) && SvOK(GvSV(gv)))
        av_store(rec, REC_SCALAR, newSVsv(GvSV(gv)));
    if (GvAV(gv) && AvFILLp(GvAV(gv)) >= 0)
        av_store(rec, REC_ARRAY, newRV_noinc((SV *)fs_av_copy(aTHX_ GvAV(gv))));
    if (fs_is_stash_name(key, klen)) {
        if (GvHV(gv) && depth < 32)
            av_store(rec, REC_NESTED, fs_snapshot_stash(aTHX_ GvHV(gv), depth + 1, watch));
    } else if (GvHV(gv) && HvUSEDKEYS(GvHV(gv)) > 0) {
        av_store(rec, REC_HASH, newRV_noinc((SV *)newHVhv(GvHV(gv))));
    }
    if (GvCV(gv)) {
        av_store(rec, REC_CODE, newRV_inc((SV *)GvCV(gv)));
        av_store(rec, REC_BODY, newSViv(fs_cv_body(GvCV(gv))));
    }
    if (GvFORM(gv))
        av_store(rec, REC_FORMAT, newRV_inc((SV *)GvFORM(gv)));
    if (GvIOp(gv) && (IoIFP(GvIOp(gv)) || IoDIRP(GvIOp(gv))))
        av_store(rec, REC_IO_OPEN, newSViv(1));
    if (watch) {
        av_store(rec, REC_ID, newSViv(fs_watch_id(aTHX)));
        fs_watch_record(aTHX_ rec, gv);
    }
    return rec;
}

static SV *fs_snapshot_stash(pTHX_ HV *stash, int depth, int watch)
{
    AV *snap = newAV();
    HV *records = newHV();
    HE *he;
    av_push(snap, newRV_inc((SV *)stash));
    av_push(snap, newRV_noinc((SV *)records));
    hv_iterinit(stash);
    while ((he = hv_iternext(stash))) {
        I32 klen;
        const char *key = hv_iterkey(he, &klen);
        AV *rec = fs_record(aTHX_ HeVAL(he), key, klen, depth, watch);
        (void)hv_store(records, key, HeKUTF8(he) ? -klen : klen, newRV_noinc((SV *)rec), 0);
    }
    av_push(snap, newSViv(-1)); /* no restore yet: look at every key */
    av_push(snap, newSV(0));    /* and no image */
    return newRV_noinc((SV *)snap);
}

/* A record's slot, or NULL when unset or undef. Records are plain arrays
 * only this file makes (never tied or magical), read straight from their
 * storage: a restore reads a dozen slots of every symbol of a package on
 * every run (a 5,000-line script's 420 symbols: 5,900 reads a request,
 * 200,000 instructions through av_fetch). */
static SV *fs_rec_get(pTHX_ AV *rec, int index)
{
    SV *sv = index <= AvFILLp(rec) ? AvARRAY(rec)[index] : NULL;
    PERL_UNUSED_CONTEXT;
    return sv && SvOK(sv) ? sv : NULL;
}

/* A handle the run opened on a package glob: as process exit would, flush
 * and close it, and close a directory it opened there (`opendir DIR`); a
 * tie over it goes first, so the tie's object still gets to write its
 * last bytes (a gzip trailer) from UNTIE/DESTROY. */
static void fs_close_handle(pTHX_ GV *gv)
{
    IO *io = GvIOp(gv);
    if (SvRMAGICAL(io) && mg_find((SV *)io, PERL_MAGIC_tiedscalar))
        sv_unmagic((SV *)io, PERL_MAGIC_tiedscalar);
    if (IoIFP(io))
        (void)Perl_io_close(aTHX_ io, gv, FALSE, FALSE);
    if (IoDIRP(io)) {
        (void)PerlDir_close(IoDIRP(io));
        IoDIRP(io) = NULL;
    }
    /* As a new process has it: compiled code keeps the glob, and opening
     * it again would count $. on from here. */
    IoLINES(io) = 0;
    IoFLAGS(io) &= ~IOf_NOLINE;
}

int fs_set_gv_code(pTHX_ GV *gv, CV *cv)
{
    CV *old = GvCV(gv);
    if (old == cv && !GvCVGEN(gv))
        return 0;
    GvCV_set(gv, cv ? (CV *)SvREFCNT_inc_simple_NN(cv) : NULL);
    GvCVGEN(gv) = 0;
    SvREFCNT_dec(old);
    return 1;
}

static void fs_restore_slot_cv(pTHX_ HV *stash, GV *gv, SV *saved, int format)
{
    CV *want = saved ? (CV *)SvRV(saved) : NULL;
    if (format) {
        CV *now = GvFORM(gv);
        if (now == want)
            return;
        GvFORM(gv) = want ? (CV *)SvREFCNT_inc_simple_NN(want) : NULL;
        SvREFCNT_dec(now);
    } else if (fs_set_gv_code(aTHX_ gv, want)) {
        mro_method_changed_in(stash);
    }
}

static void fs_restore_stash(pTHX_ SV *snapshot);

/* Puts `live` back in a glob slot a run pointed elsewhere (`*x = \\@y`);
 * returns whether it had to. */
static int fs_slot_back(pTHX_ SV **slot, SV *live_ref)
{
    SV *live = live_ref && SvROK(live_ref) ? SvRV(live_ref) : NULL;
    SV *old;
    if (!live || *slot == live)
        return 0;
    old = *slot;
    *slot = SvREFCNT_inc_simple_NN(live);
    SvREFCNT_dec(old);
    return 1;
}

/* Whether a run did to a symbol what no restore undoes: emptied its sub
 * (`undef &name`: the CV stays, its body is freed), or made its glob share
 * another's GP (`*name = *other`: writing the slots back would write into
 * the other glob; a GP of its own, `undef *name`, is put back as usual,
 * but for a handle open when snapshotted, which went with the old GP).
 * The name joins ws->lost: the script is compiled again (Registry.pm). */
static int fs_symbol_lost(pTHX_ fs_watch_state *ws, SV *value, AV *rec, const char *key, I32 len)
{
    SV *gp = fs_rec_get(aTHX_ rec, REC_GP);
    SV *code = fs_rec_get(aTHX_ rec, REC_CODE);
    SV *body = fs_rec_get(aTHX_ rec, REC_BODY);
    SV *entry = AvARRAY(rec)[REC_ENTRY];
    int lost = 0;
    if (!code && SvROK(entry) && SvTYPE(SvRV(entry)) == SVt_PVCV)
        code = entry;
    if (code && body && fs_cv_body((CV *)SvRV(code)) != SvIV(body))
        lost = 1;
    if (gp && SvTYPE(value) == SVt_PVGV && isGV_with_GP(value) && PTR2IV(GvGP(value)) != SvIV(gp)
        && (GvGP(value)->gp_refcnt > 1 || fs_rec_get(aTHX_ rec, REC_IO_OPEN)))
        lost = 1;
    if (lost && ws->lost)
        av_push(ws->lost, newSVpvn_flags(key, len < 0 ? -len : len, len < 0 ? SVf_UTF8 : 0));
    return lost;
}

/* What a record's slot refers to (a live container, a sub), or NULL. */
static SV *fs_rec_ref(pTHX_ AV *rec, int index)
{
    SV *live = fs_rec_get(aTHX_ rec, index);
    return live ? SvRV(live) : NULL;
}

/* What of `gv`'s scalar, array and hash a run changed (FS_DIRTY_*), by its
 * record, changing nothing: written (the watch's flags), swapped for
 * another container or made, an array's shape or a hash's key count
 * moved. All three for a record that is not watched. */
static U8 fs_glob_dirt(pTHX_ fs_watch_state *ws, GV *gv, AV *rec)
{
    SV *id_sv = fs_rec_get(aTHX_ rec, REC_ID);
    SV *shape = fs_rec_get(aTHX_ rec, REC_AV_SHAPE);
    SV *keys = fs_rec_get(aTHX_ rec, REC_HV_KEYS);
    U8 dirty = FS_DIRTY_SCALAR | FS_DIRTY_ARRAY | FS_DIRTY_HASH;
    if (!id_sv)
        return dirty;
    if ((size_t)SvIV(id_sv) < ws->n)
        dirty = ws->flags[SvIV(id_sv)];
    if ((SV *)GvSV(gv) != fs_rec_ref(aTHX_ rec, REC_LIVE_SV))
        dirty |= FS_DIRTY_SCALAR;
    if ((SV *)GvAV(gv) != fs_rec_ref(aTHX_ rec, REC_LIVE_AV)
        || (GvAV(gv) && (!shape || !fs_av_same_shape(aTHX_ GvAV(gv), shape))))
        dirty |= FS_DIRTY_ARRAY;
    if (!fs_rec_get(aTHX_ rec, REC_NESTED)
        && ((SV *)GvHV(gv) != fs_rec_ref(aTHX_ rec, REC_LIVE_HV)
            || (GvHV(gv) && (!keys || (IV)HvUSEDKEYS(GvHV(gv)) != SvIV(keys)))))
        dirty |= FS_DIRTY_HASH;
    return dirty;
}

static void fs_restore_glob(pTHX_ fs_watch_state *ws, HV *stash, GV *gv, AV *rec)
{
    SV *scalar = fs_rec_get(aTHX_ rec, REC_SCALAR);
    SV *array = fs_rec_get(aTHX_ rec, REC_ARRAY);
    SV *hash = fs_rec_get(aTHX_ rec, REC_HASH);
    SV *nested = fs_rec_get(aTHX_ rec, REC_NESTED);
    SV *id_sv = fs_rec_get(aTHX_ rec, REC_ID);
    U8 dirty = fs_glob_dirt(aTHX_ ws, gv, rec);
    IV id = -1;
    int rewatch = 0;

    if (id_sv) {
        /* Watched: what the run did not write (and left in place) stays;
         * a container it swapped for another is the glob's again. */
        id = SvIV(id_sv);
        (void)fs_slot_back(aTHX_ (SV **)&GvSV(gv), fs_rec_get(aTHX_ rec, REC_LIVE_SV));
        (void)fs_slot_back(aTHX_ (SV **)&GvAV(gv), fs_rec_get(aTHX_ rec, REC_LIVE_AV));
        if (!nested)
            (void)fs_slot_back(aTHX_ (SV **)&GvHV(gv), fs_rec_get(aTHX_ rec, REC_LIVE_HV));
        ws->restoring = 1;
    }

    if (GvIOp(gv) && !fs_rec_get(aTHX_ rec, REC_IO_OPEN))
        fs_close_handle(aTHX_ gv);
    if (dirty & FS_DIRTY_SCALAR) {
        if (scalar)
            sv_setsv_mg(GvSVn(gv), scalar);
        else if (GvSV(gv) && SvOK(GvSV(gv)))
            sv_setsv_mg(GvSV(gv), &PL_sv_undef);
        rewatch = 1;
    }
    if (dirty & FS_DIRTY_ARRAY) {
        if (array) {
            fs_av_back(aTHX_ GvAVn(gv), (AV *)SvRV(array));
        } else if (GvAV(gv) && AvFILLp(GvAV(gv)) >= 0) {
            av_clear(GvAV(gv));
        }
        rewatch = 1;
    }
    if (nested) {
        fs_restore_stash(aTHX_ nested);
    } else if (dirty & FS_DIRTY_HASH) {
        if (hash) {
            fs_hv_back(aTHX_ GvHVn(gv), (HV *)SvRV(hash));
        } else if (GvHV(gv) && !HvNAME_get(GvHV(gv)) && HvUSEDKEYS(GvHV(gv)) > 0) {
            hv_clear(GvHV(gv));
        }
        rewatch = 1;
    }
    fs_restore_slot_cv(aTHX_ stash, gv, fs_rec_get(aTHX_ rec, REC_CODE), 0);
    fs_restore_slot_cv(aTHX_ stash, gv, fs_rec_get(aTHX_ rec, REC_FORMAT), 1);

    if (id >= 0) {
        /* The containers put back are what the next run is compared with. */
        if (rewatch)
            fs_watch_record(aTHX_ rec, gv);
        if ((size_t)id < ws->n)
            ws->flags[id] = 0;
        ws->restoring = 0;
    }
}

/* A glob perl made to cache a method lookup (found elsewhere, or not
 * found: an AUTOLOAD lookup for DESTROY leaves one): perl's own, and
 * harmless to keep; the method generation makes it stale when it must. */
static int fs_is_method_cache(pTHX_ SV *entry)
{
    GV *gv = (GV *)entry;
    if (SvTYPE(entry) != SVt_PVGV || !isGV_with_GP(gv))
        return 0;
    if (GvCVGEN(gv))
        return 1;
    return !GvCV(gv) && !GvAV(gv) && !GvHV(gv) && !GvIOp(gv) && !GvFORM(gv)
        && (!GvSV(gv) || !SvOK(GvSV(gv)));
}

/* --- the image of a clean stash ------------------------------------------
 *
 * A full restore leaves a stash clean: every recorded symbol in place, no
 * other (but perl's method caches), each glob as recorded. The next
 * restore needs only what moved since, so the full one ends by taking the
 * stash's image: its entries in bucket order (the HE, its key, its value)
 * and, for each recorded glob, its GP and the GP's slots. The next restore
 * walks the live buckets against it: the same entries in the same places
 * mean no symbol came, went or was replaced. Then a glob whose GP, slots,
 * watch flags, array shape, hash key count and handle are as imaged is as
 * the restore left it, and is skipped; only the others go through
 * fs_restore_glob. A few pointer compares per symbol instead of a record
 * lookup and a dozen record reads (a 5,000-line script's 420 symbols:
 * 220,000 instructions a request). Any doubt (a symbol added or deleted,
 * a stub made a glob, a glob that lost its GP) is the full restore's. */
enum {
    IMG_FOREIGN,    /* not recorded: a method cache perl made */
    IMG_STUB,       /* a sub stub or constant: clean while not a glob */
    IMG_BARE_GLOB,  /* a glob without a GP: clean while it has none */
    IMG_GLOB,       /* a watched glob: clean while as imaged */
    IMG_ALWAYS      /* a glob the restore touches every time (unwatched...) */
};

typedef struct {
    HE *he;       /* the stash entry, its key and its value, as the */
    HEK *key;     /* restore left them */
    SV *value;
    U8 kind;
    U8 io_open;   /* the record's: its handle was open when snapshotted */
    AV *rec;      /* its record, or NULL */
    SV *nested;   /* the nested package's snapshot, or NULL */
    SV *shape;    /* the record's array shape */
    IV hv_keys;   /* the record's hash key count */
    size_t id;    /* the record's watch id */
    IV body;      /* the record's sub body (REC_BODY) */
    GP *gp;       /* an IMG_GLOB's GP and its slots, as left */
    SV *sv;
    AV *av;
    HV *hv;
    CV *cv;
    CV *form;
    IO *io;
} fs_image_entry;

/* A handle as fs_close_handle leaves one: nothing for it to do. */
static int fs_handle_closed(IO *io)
{
    return !IoIFP(io) && !IoDIRP(io) && !IoLINES(io) && !(IoFLAGS(io) & IOf_NOLINE) && !SvRMAGICAL(io);
}

/* Whether fs_restore_glob would change anything of `gv` if called now,
 * without changing anything itself: its tests (fs_glob_dirt, the handle,
 * the sub and the format). */
static int fs_glob_moved(pTHX_ fs_watch_state *ws, GV *gv, AV *rec)
{
    if (!fs_rec_get(aTHX_ rec, REC_ID) || fs_glob_dirt(aTHX_ ws, gv, rec))
        return 1;
    if (GvIOp(gv) && !fs_rec_get(aTHX_ rec, REC_IO_OPEN) && !fs_handle_closed(GvIOp(gv)))
        return 1;
    return (SV *)GvCV(gv) != fs_rec_ref(aTHX_ rec, REC_CODE) || GvCVGEN(gv)
        || (SV *)GvFORM(gv) != fs_rec_ref(aTHX_ rec, REC_FORMAT);
}

/* A recorded glob's part of the image, as it is now. */
static void fs_image_glob(pTHX_ fs_watch_state *ws, fs_image_entry *e)
{
    GV *gv = (GV *)e->value;
    SV *keys;
    if (!isGV_with_GP(gv)) {
        e->kind = IMG_BARE_GLOB;
        return;
    }
    if (fs_glob_moved(aTHX_ ws, gv, e->rec)) {
        e->kind = IMG_ALWAYS;
        return;
    }
    e->kind = IMG_GLOB;
    e->io_open = fs_rec_get(aTHX_ e->rec, REC_IO_OPEN) != NULL;
    e->nested = fs_rec_get(aTHX_ e->rec, REC_NESTED);
    e->shape = fs_rec_get(aTHX_ e->rec, REC_AV_SHAPE);
    keys = fs_rec_get(aTHX_ e->rec, REC_HV_KEYS);
    e->hv_keys = keys ? SvIV(keys) : 0;
    e->id = (size_t)SvIV(fs_rec_get(aTHX_ e->rec, REC_ID));
    keys = fs_rec_get(aTHX_ e->rec, REC_BODY);
    e->body = keys ? SvIV(keys) : 0;
    e->gp = GvGP(gv);
    e->sv = GvSV(gv);
    e->av = GvAV(gv);
    e->hv = GvHV(gv);
    e->cv = GvCV(gv);
    e->form = GvFORM(gv);
    e->io = GvIOp(gv);
}

/* An IMG_GLOB entry's glob as the image has it. */
static int fs_glob_as_imaged(pTHX_ fs_watch_state *ws, const fs_image_entry *e)
{
    GV *gv = (GV *)e->value;
    GP *gp = GvGP(gv);
    return gp == e->gp && isGV_with_GP(gv) && !ws->flags[e->id]
        && gp->gp_sv == e->sv && gp->gp_av == e->av && gp->gp_hv == e->hv
        && gp->gp_cv == e->cv && !gp->gp_cvgen && gp->gp_form == e->form && gp->gp_io == e->io
        && (!e->cv || fs_cv_body(e->cv) == e->body)
        && (!e->av || fs_av_same_shape(aTHX_ e->av, e->shape))
        && (!e->hv || e->nested || (IV)HvUSEDKEYS(e->hv) == e->hv_keys)
        && (!e->io || e->io_open || fs_handle_closed(e->io));
}

/* The stash's image, taken after a full restore; none (the full restore
 * every time) when a record is not watched or the stash is not as the
 * restore should have left it. */
static void fs_take_image(pTHX_ AV *snap, HV *stash, HV *records)
{
    SV *image = AvFILLp(snap) >= 3 ? AvARRAY(snap)[3] : NULL;
    fs_watch_state *ws = fs_ws(aTHX);
    size_t n = HvUSEDKEYS(stash), k = 0, recorded = 0;
    fs_image_entry *entries;
    STRLEN i;
    HE *he;
    if (!image)
        return;
    SvOK_off(image);
    if (!HvARRAY(stash))
        return;
    SvUPGRADE(image, SVt_PV);
    entries = (fs_image_entry *)SvGROW(image, n * sizeof(fs_image_entry) + 1);
    for (i = 0; i <= HvMAX(stash); i++) {
        for (he = HvARRAY(stash)[i]; he; he = HeNEXT(he)) {
            fs_image_entry *e;
            SV **rec, *want;
            if (k == n || HeKLEN(he) == HEf_SVKEY)
                return;
            e = &entries[k++];
            Zero(e, 1, fs_image_entry);
            e->he = he;
            e->key = HeKEY_hek(he);
            e->value = HeVAL(he);
            rec = (SV **)hv_common_key_len(records, HeKEY(he), HeKUTF8(he) ? -HeKLEN(he) : HeKLEN(he),
                                           HV_FETCH_JUST_SV, NULL, HeKUTF8(he) ? 0 : HeHASH(he));
            if (!rec) {
                e->kind = IMG_FOREIGN;
                continue;
            }
            recorded++;
            e->rec = (AV *)SvRV(*rec);
            want = AvARRAY(e->rec)[REC_ENTRY];
            if (!SvROK(want) || SvTYPE(SvRV(want)) != SVt_PVGV) {
                SV *body = fs_rec_get(aTHX_ e->rec, REC_BODY);
                if (SvTYPE(e->value) == SVt_PVGV)
                    return;
                e->kind = IMG_STUB;
                if (body && SvROK(want) && SvTYPE(SvRV(want)) == SVt_PVCV) {
                    e->cv = (CV *)SvRV(want);
                    e->body = SvIV(body);
                }
            } else if (SvRV(want) != e->value) {
                return;
            } else {
                fs_image_glob(aTHX_ ws, e);
            }
        }
    }
    if (k != n || recorded != HvUSEDKEYS(records))
        return;
    SvCUR_set(image, n * sizeof(fs_image_entry));
    SvPOK_only(image);
}

/* The restore by the image: 1 when done, 0 when the stash moved and needs
 * the full restore (which may come after part of this one: a glob put
 * back is put back, the full restore finds nothing to do there). */
static int fs_restore_by_image(pTHX_ AV *snap, HV *stash)
{
    SV *image = AvFILLp(snap) >= 3 ? AvARRAY(snap)[3] : NULL;
    fs_watch_state *ws = fs_ws(aTHX);
    fs_image_entry *entries;
    size_t n, k = 0;
    STRLEN i;
    HE *he;
    int lost = 0;
    if (!image || !SvPOK(image) || !HvARRAY(stash))
        return 0;
    entries = (fs_image_entry *)SvPVX(image);
    n = SvCUR(image) / sizeof(fs_image_entry);
    if (HvUSEDKEYS(stash) != n)
        return 0;
    for (i = 0; i <= HvMAX(stash); i++)
        for (he = HvARRAY(stash)[i]; he; he = HeNEXT(he), k++)
            if (k >= n || he != entries[k].he || HeKEY_hek(he) != entries[k].key || HeVAL(he) != entries[k].value)
                return 0;
    if (k != n)
        return 0;
    for (k = 0; k < n; k++) {
        fs_image_entry *e = &entries[k];
        switch (e->kind) {
        case IMG_FOREIGN:
            break;
        case IMG_STUB:
            if (SvTYPE(e->value) == SVt_PVGV || (e->cv && fs_cv_body(e->cv) != e->body))
                return 0;
            break;
        case IMG_BARE_GLOB:
            if (isGV_with_GP(e->value))
                return 0;
            break;
        case IMG_GLOB:
            if (fs_glob_as_imaged(aTHX_ ws, e)) {
                if (e->nested)
                    fs_restore_stash(aTHX_ e->nested);
                break;
            }
            /* FALLTHROUGH */
        default:
            if (!isGV_with_GP(e->value))
                return 0;
            if (fs_symbol_lost(aTHX_ ws, e->value, e->rec, HEK_KEY(e->key),
                               HEK_UTF8(e->key) ? -HEK_LEN(e->key) : HEK_LEN(e->key))) {
                lost = 1;
                break;
            }
            fs_restore_glob(aTHX_ ws, stash, (GV *)e->value, e->rec);
            fs_image_glob(aTHX_ ws, e);
        }
    }
    /* What a restore ran (a DESTROY) added or deleted, or a symbol lost:
     * seen by the full restore, next time. */
    if (HvUSEDKEYS(stash) != n || lost)
        SvOK_off(image);
    return 1;
}

static void fs_restore_stash(pTHX_ SV *snapshot)
{
    AV *snap = (AV *)SvRV(snapshot);
    HV *stash = (HV *)SvRV(AvARRAY(snap)[0]);
    HV *records = (HV *)SvRV(AvARRAY(snap)[1]);
    SV *keys_after = AvFILLp(snap) >= 2 ? AvARRAY(snap)[2] : NULL;
    AV *added = (AV *)sv_2mortal((SV *)newAV());
    fs_watch_state *ws = fs_ws(aTHX);
    HE *he;
    SSize_t i;

    if (fs_restore_by_image(aTHX_ snap, stash))
        return;

    /* The same key count as after the last restore: no symbol came (a
     * run that adds one and deletes another is seen by its records). */
    if (keys_after && SvIV(keys_after) == (IV)HvUSEDKEYS(stash))
        goto records;

    /* Symbols the run created go. Their globs may still be held by code
     * compiled at run time, which is itself going: a run-time `require`d
     * library's subs live in those globs. Keys are copied as plain strings:
     * deleting with an SV sharing the stash's own key corrupted refcounts. */
    hv_iterinit(stash);
    while ((he = hv_iternext(stash))) {
        I32 klen;
        const char *key = hv_iterkey(he, &klen);
        if (!hv_exists(records, key, HeKUTF8(he) ? -klen : klen)
            && !fs_is_method_cache(aTHX_ HeVAL(he)))
            av_push(added, newSVpvn_flags(key, klen, HeKUTF8(he) ? SVf_UTF8 : 0));
    }
    for (i = 0; i <= AvFILLp(added); i++) {
        STRLEN klen;
        const char *key = SvPV_const(AvARRAY(added)[i], klen);
        I32 len = SvUTF8(AvARRAY(added)[i]) ? -(I32)klen : (I32)klen;
        SV **entry = hv_fetch(stash, key, len, 0);
        SV *value = entry ? *entry : NULL;
        if (value && SvTYPE(value) == SVt_PVGV && isGV_with_GP(value) && GvIOp((GV *)value))
            fs_close_handle(aTHX_ (GV *)value);
        (void)hv_delete(stash, key, len, G_DISCARD);
    }

records:
    /* Each recorded symbol back to its glob and its glob's contents. */
    hv_iterinit(records);
    while ((he = hv_iternext(records))) {
        AV *rec = (AV *)SvRV(HeVAL(he));
        SV *want = AvARRAY(rec)[REC_ENTRY];
        I32 klen;
        const char *key = hv_iterkey(he, &klen);
        I32 len = HeKUTF8(he) ? -klen : klen;
        /* The records' key hashes are the stash's (one hash function per
         * interpreter): the lookup need not hash the name again. */
        SV **now = (SV **)hv_common_key_len(stash, key, len, HV_FETCH_JUST_SV, NULL,
                                             HeKUTF8(he) ? 0 : HeHASH(he));
        if (SvROK(want) && SvTYPE(SvRV(want)) == SVt_PVGV) {
            GV *gv = (GV *)SvRV(want);
            if (!now || *now != (SV *)gv)
                (void)hv_store(stash, key, len, SvREFCNT_inc_simple_NN((SV *)gv), 0);
            if (isGV_with_GP(gv) && !fs_symbol_lost(aTHX_ ws, (SV *)gv, rec, key, len))
                fs_restore_glob(aTHX_ ws, stash, gv, rec);
        } else {
            /* A sub stub or constant that a run turned into a glob. */
            if (!now || SvTYPE(*now) == SVt_PVGV)
                (void)hv_store(stash, key, len, newSVsv(want), 0);
            (void)fs_symbol_lost(aTHX_ ws, want, rec, key, len);
        }
    }
    if (keys_after)
        sv_setiv(keys_after, (IV)HvUSEDKEYS(stash));
    fs_take_image(aTHX_ snap, stash, records);
}

/* FCGI::Spawn::Native::snapshot_package(NAME [, WATCH]) — the package as it
 * is now, or undef when there is no such package; with WATCH, restored
 * after every run at the cost of what the run changed (see "what a run
 * changed"). */
XS(fs_xs_snapshot_package)
{
    dXSARGS;
    STRLEN len;
    const char *name;
    HV *stash;
    if (items != 1 && items != 2)
        croak_xs_usage(cv, "package, watch");
    name = SvPV_const(ST(0), len);
    stash = fs_find_stash(aTHX_ name, len);
    ST(0) = stash ? sv_2mortal(fs_snapshot_stash(aTHX_ stash, 0, items == 2 && SvTRUE(ST(1))))
                  : &PL_sv_undef;
    XSRETURN(1);
}

/* FCGI::Spawn::Native::restore_package(SNAPSHOT) — returns the names of
 * the symbols it could not put back (fs_symbol_lost), usually none. */
XS(fs_xs_restore_package)
{
    dXSARGS;
    fs_watch_state *ws = fs_ws(aTHX);
    AV *lost, *outer = ws->lost; /* a restore a DESTROY ran during this one */
    if (items != 1 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVAV)
        croak_xs_usage(cv, "snapshot");
    lost = ws->lost = (AV *)sv_2mortal((SV *)newAV());
    fs_restore_stash(aTHX_ ST(0));
    ws->lost = outer;
    FS_XSRETURN_AV(lost);
}

/* Whether two records of one symbol hold the same values: the scalar, the
 * array's and the hash's elements (compared as strings, references by
 * address), the sub and the format. */
static int fs_same_value(pTHX_ SV *a, SV *b)
{
    if (!a || !b)
        return !a == !b;
    if (SvROK(a) || SvROK(b))
        return SvROK(a) && SvROK(b) && SvRV(a) == SvRV(b);
    if (SvOK(a) != SvOK(b))
        return 0;
    return !SvOK(a) || sv_eq(a, b);
}

static int fs_same_record(pTHX_ AV *a, AV *b)
{
    SV *x, *y;
    SSize_t i;
    HE *he;
    if (!fs_same_value(aTHX_ fs_rec_get(aTHX_ a, REC_SCALAR), fs_rec_get(aTHX_ b, REC_SCALAR)))
        return 0;
    x = fs_rec_get(aTHX_ a, REC_ARRAY);
    y = fs_rec_get(aTHX_ b, REC_ARRAY);
    if (!x != !y)
        return 0;
    if (x) {
        AV *p = (AV *)SvRV(x), *q = (AV *)SvRV(y);
        if (AvFILLp(p) != AvFILLp(q))
            return 0;
        for (i = 0; i <= AvFILLp(p); i++)
            if (!fs_same_value(aTHX_ AvARRAY(p)[i], AvARRAY(q)[i]))
                return 0;
    }
    x = fs_rec_get(aTHX_ a, REC_HASH);
    y = fs_rec_get(aTHX_ b, REC_HASH);
    if (!x != !y)
        return 0;
    if (x) {
        HV *p = (HV *)SvRV(x), *q = (HV *)SvRV(y);
        if (HvUSEDKEYS(p) != HvUSEDKEYS(q))
            return 0;
        hv_iterinit(p);
        while ((he = hv_iternext(p))) {
            HE *other = hv_fetch_ent(q, hv_iterkeysv(he), 0, 0);
            if (!other || !fs_same_value(aTHX_ HeVAL(he), HeVAL(other)))
                return 0;
        }
    }
    x = fs_rec_get(aTHX_ a, REC_CODE);
    y = fs_rec_get(aTHX_ b, REC_CODE);
    if (!fs_same_value(aTHX_ x, y))
        return 0;
    return fs_same_value(aTHX_ fs_rec_get(aTHX_ a, REC_FORMAT), fs_rec_get(aTHX_ b, REC_FORMAT));
}

/* FCGI::Spawn::Native::merge_loaded(SNAPSHOT, BEFORE, AFTER) — a plain
 * file a registry script's run loaded into one of its packages is kept
 * with the script: the symbols it made or set (AFTER differs from BEFORE,
 * two unwatched snapshots taken around the load) become part of
 * SNAPSHOT, with their values as loaded, watched, and put back by the
 * next restore_package. */
XS(fs_xs_merge_loaded)
{
    dXSARGS;
    AV *snap, *before, *after;
    HV *records, *was, *now;
    HE *he;
    fs_watch_state *ws = fs_ws(aTHX);
    if (items != 3 || !SvROK(ST(0)) || !SvROK(ST(1)) || !SvROK(ST(2)))
        croak_xs_usage(cv, "snapshot, before, after");
    snap = (AV *)SvRV(ST(0));
    before = (AV *)SvRV(ST(1));
    after = (AV *)SvRV(ST(2));
    records = (HV *)SvRV(AvARRAY(snap)[1]);
    was = (HV *)SvRV(AvARRAY(before)[1]);
    now = (HV *)SvRV(AvARRAY(after)[1]);
    hv_iterinit(now);
    while ((he = hv_iternext(now))) {
        AV *rec = (AV *)SvRV(HeVAL(he));
        HE *old = hv_fetch_ent(was, hv_iterkeysv(he), 0, 0);
        SV *entry = AvARRAY(rec)[REC_ENTRY];
        IV id;
        if (old && fs_same_record(aTHX_ (AV *)SvRV(HeVAL(old)), rec))
            continue;
        if (!SvROK(entry) || SvTYPE(SvRV(entry)) != SVt_PVGV || !isGV_with_GP(SvRV(entry)))
            continue;
        id = fs_watch_id(aTHX);
        av_store(rec, REC_ID, newSViv(id));
        fs_watch_record(aTHX_ rec, (GV *)SvRV(entry));
        /* What the rest of the run did to it goes at the next restore. */
        ws->flags[id] = FS_DIRTY_SCALAR | FS_DIRTY_ARRAY | FS_DIRTY_HASH;
        (void)hv_store_ent(records, hv_iterkeysv(he), SvREFCNT_inc_simple_NN(HeVAL(he)), 0);
    }
    if (AvFILLp(snap) >= 2)
        sv_setiv(AvARRAY(snap)[2], -1);
    if (AvFILLp(snap) >= 3)
        SvOK_off(AvARRAY(snap)[3]); /* its records changed: the next restore is a full one */
    XSRETURN_EMPTY;
}

/* Marks the records of a snapshot, and of those nested in it except the
 * `keep` ones, retired: nothing restores them any more. */
static void fs_retire_stash(pTHX_ SV *snapshot, SV **keep, I32 nkeep)
{
    fs_watch_state *ws = fs_ws(aTHX);
    HV *records = (HV *)SvRV(AvARRAY((AV *)SvRV(snapshot))[1]);
    HE *he;
    I32 i;
    for (i = 0; i < nkeep; i++)
        if (SvROK(keep[i]) && SvRV(keep[i]) == SvRV(snapshot))
            return;
    hv_iterinit(records);
    while ((he = hv_iternext(records))) {
        AV *rec = (AV *)SvRV(HeVAL(he));
        SV *id = fs_rec_get(aTHX_ rec, REC_ID);
        SV *nested = fs_rec_get(aTHX_ rec, REC_NESTED);
        if (id && (size_t)SvIV(id) < ws->n)
            ws->flags[SvIV(id)] = FS_RETIRED;
        if (nested)
            fs_retire_stash(aTHX_ nested, keep, nkeep);
    }
}

/* FCGI::Spawn::Native::retire_snapshot(SNAPSHOT, KEEP...) — SNAPSHOT (a
 * watched one) is dropped, but for the nested snapshots KEEP: the magic
 * its records left on the scalars they watched is free for others. */
XS(fs_xs_retire_snapshot)
{
    dXSARGS;
    if (items < 1 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVAV)
        croak_xs_usage(cv, "snapshot, keep...");
    fs_retire_stash(aTHX_ ST(0), &ST(1), items - 1);
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::nested_snapshot(SNAPSHOT, LEAF) — the snapshot of
 * the package LEAF:: nested in SNAPSHOT's (taken with it), or undef. A
 * package a script declares inside one it made (My::Decl in My::) is in
 * both: what merge_loaded adds must reach each. */
XS(fs_xs_nested_snapshot)
{
    dXSARGS;
    HV *records;
    HE *he;
    SV *key, *nested;
    if (items != 2 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVAV)
        croak_xs_usage(cv, "snapshot, leaf");
    records = (HV *)SvRV(AvARRAY((AV *)SvRV(ST(0)))[1]);
    key = sv_2mortal(newSVpvf("%" SVf "::", SVfARG(ST(1))));
    he = hv_fetch_ent(records, key, 0, 0);
    nested = he ? fs_rec_get(aTHX_ (AV *)SvRV(HeVAL(he)), REC_NESTED) : NULL;
    ST(0) = nested ? nested : &PL_sv_undef;
    XSRETURN(1);
}

/* Pushes "NAME (\$var, ...)" for a sub or format compiled inside `outer`
 * that closed over one of its lexicals. */
static int fs_check_capture(pTHX_ CV *cv, CV *outer, const char *what, SV *label, AV *found)
{
    PADNAMELIST *names;
    SV *vars;
    SSize_t i;
    int any = 0;
    if (!cv || CvISXSUB(cv) || CvOUTSIDE(cv) != outer || !CvPADLIST(cv))
        return 0;
    names = PadlistNAMES(CvPADLIST(cv));
    vars = sv_2mortal(newSVpvs(""));
    for (i = 1; i <= PadnamelistMAX(names); i++) {
        PADNAME *pn = PadnamelistARRAY(names)[i];
        if (!pn || !PadnameLEN(pn) || !PadnameOUTER(pn) || PadnameIsOUR(pn))
            continue;
        sv_catpvf(vars, "%s%s", any ? ", " : "", PadnamePV(pn));
        any = 1;
    }
    if (any)
        av_push(found, newSVpvf("%s %" SVf " (%" SVf ")", what, SVfARG(label), SVfARG(vars)));
    return any;
}

static void fs_find_captures(pTHX_ HV *stash, CV *outer, SV *prefix, AV *found, int depth)
{
    HE *he;
    hv_iterinit(stash);
    while ((he = hv_iternext(stash))) {
        GV *gv = (GV *)HeVAL(he);
        I32 klen;
        const char *key = hv_iterkey(he, &klen);
        SV *label;
        if (SvTYPE(gv) != SVt_PVGV || !isGV_with_GP(gv))
            continue;
        label = sv_2mortal(newSVpvf("%" SVf "%.*s", SVfARG(prefix), (int)klen, key));
        fs_check_capture(aTHX_ GvCV(gv), outer, "sub", label, found);
        fs_check_capture(aTHX_ GvFORM(gv), outer, "format", label, found);
        if (fs_is_stash_name(key, klen) && GvHV(gv) && GvHV(gv) != stash && depth < 32)
            fs_find_captures(aTHX_ GvHV(gv), outer, label, found, depth + 1);
    }
}

/* FCGI::Spawn::Native::captured_lexicals(PACKAGE, HANDLER, END_BLOCK...) —
 * the named subs and formats of PACKAGE (and the packages in it), the
 * forced-main formats and the script's END blocks, compiled inside HANDLER
 * that keep one of its lexicals: in a registry each would see the first
 * run's variable forever ("Variable will not stay shared"). Empty when the
 * script is safe to reuse. */
XS(fs_xs_captured_lexicals)
{
    dXSARGS;
    STRLEN len;
    const char *name;
    HV *stash;
    CV *outer;
    AV *found;
    SSize_t i;
    static const char *const forced[] = { "STDOUT", "STDERR" };
    if (items < 2 || !SvROK(ST(1)) || SvTYPE(SvRV(ST(1))) != SVt_PVCV)
        croak_xs_usage(cv, "package, handler, end_block...");
    name = SvPV_const(ST(0), len);
    outer = (CV *)SvRV(ST(1));
    found = (AV *)sv_2mortal((SV *)newAV());
    stash = fs_find_stash(aTHX_ name, len);
    if (stash)
        fs_find_captures(aTHX_ stash, outer, sv_2mortal(newSVpvs("")), found, 0);
    for (i = 0; i < 2; i++) {
        GV *gv = gv_fetchpv(forced[i], 0, SVt_PVFM);
        if (gv && GvFORM(gv))
            fs_check_capture(aTHX_ GvFORM(gv), outer, "format",
                             sv_2mortal(newSVpv(forced[i], 0)), found);
    }
    for (i = 2; i < items; i++)
        if (SvROK(ST(i)) && SvTYPE(SvRV(ST(i))) == SVt_PVCV)
            fs_check_capture(aTHX_ (CV *)SvRV(ST(i)), outer, "END block",
                             sv_2mortal(newSVpvf("%d", (int)(i - 1))), found);
    FS_XSRETURN_AV(found);
}

/* --- file lexicals set while compiling ----------------------------------------
 *
 * A registry script's file-scoped `my` variables are lexicals of the sub
 * it becomes. One that a BEGIN block sets (`my $dir; BEGIN { $dir = ... }
 * use lib "$dir/lib";`) holds that value when the sub first runs, and perl
 * clears it when the run ends: under CGI every run is a first run. The
 * runner keeps what those lexicals held after the compile and puts it back
 * before each run; a script without such lexicals keeps nothing. */

/* The handler's pad at depth 1 (where its runs are), its names, and the
 * last index both have. */
static SV **fs_handler_pad(pTHX_ CV *handler, PADNAMELIST **names, SSize_t *last)
{
    PADLIST *padlist = CvPADLIST(handler);
    PAD *pad;
    if (CvISXSUB(handler) || !padlist || PadlistMAX(padlist) < 1 || !(pad = PadlistARRAY(padlist)[1]))
        return NULL;
    *names = PadlistNAMES(padlist);
    *last = PadnamelistMAX(*names) < AvFILLp(pad) ? PadnamelistMAX(*names) : AvFILLp(pad);
    return PadARRAY(pad);
}

/* A variable emptied in place (what it held goes; an object's DESTROY
 * runs); whoever else holds it sees it empty, as at process exit. */
static void fs_empty_variable(pTHX_ SV *sv)
{
    if (SvTYPE(sv) == SVt_PVAV)
        av_clear((AV *)sv);
    else if (SvTYPE(sv) == SVt_PVHV)
        hv_clear((HV *)sv);
    else if (SvTYPE(sv) <= SVt_PVMG && !SvREADONLY(sv) && (SvOK(sv) || SvROK(sv)))
        sv_set_undef(sv);
}

/* A copy of what a lexical holds (shallow, as a package snapshot's
 * record), or NULL when it holds nothing. */
static SV *fs_lexical_copy(pTHX_ SV *sv)
{
    if (SvTYPE(sv) == SVt_PVAV)
        return AvFILLp((AV *)sv) >= 0 ? newRV_noinc((SV *)fs_av_copy(aTHX_ (AV *)sv)) : NULL;
    if (SvTYPE(sv) == SVt_PVHV)
        return HvUSEDKEYS((HV *)sv) ? newRV_noinc((SV *)newHVhv((HV *)sv)) : NULL;
    if (SvTYPE(sv) > SVt_PVMG || !SvOK(sv))
        return NULL;
    return newSVsv(sv);
}

/* FCGI::Spawn::Native::compiled_lexicals(HANDLER) — what HANDLER's own
 * `my` lexicals (not `our`, `state` or lexical subs) hold right after its
 * compile, as an opaque list for lexicals_back; undef when none holds
 * anything. */
XS(fs_xs_compiled_lexicals)
{
    dXSARGS;
    PADNAMELIST *names;
    SV **pad;
    AV *kept;
    SSize_t i, last = 0;
    if (items != 1 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVCV)
        croak_xs_usage(cv, "handler");
    pad = fs_handler_pad(aTHX_ (CV *)SvRV(ST(0)), &names, &last);
    kept = (AV *)sv_2mortal((SV *)newAV());
    for (i = 1; pad && i <= last; i++) {
        PADNAME *pn = PadnamelistARRAY(names)[i];
        SV *copy;
        if (!pn || !PadnameLEN(pn) || PadnameOUTER(pn) || PadnameIsOUR(pn) || PadnameIsSTATE(pn)
            || PadnamePV(pn)[0] == '&' || !pad[i])
            continue;
        if ((copy = fs_lexical_copy(aTHX_ pad[i]))) {
            av_push(kept, newSViv(i));
            av_push(kept, copy);
        }
    }
    ST(0) = AvFILLp(kept) >= 0 ? sv_2mortal(newRV_inc((SV *)kept)) : &PL_sv_undef;
    XSRETURN(1);
}

/* FCGI::Spawn::Native::lexicals_back(HANDLER, KEPT) — before a run: the
 * lexicals compiled_lexicals kept hold that again. */
XS(fs_xs_lexicals_back)
{
    dXSARGS;
    PADNAMELIST *names;
    SV **pad;
    AV *kept;
    SSize_t i, last = 0;
    if (items != 2 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVCV || !SvROK(ST(1))
        || SvTYPE(SvRV(ST(1))) != SVt_PVAV)
        croak_xs_usage(cv, "handler, kept");
    pad = fs_handler_pad(aTHX_ (CV *)SvRV(ST(0)), &names, &last);
    kept = (AV *)SvRV(ST(1));
    for (i = 0; pad && i + 1 <= AvFILLp(kept); i += 2) {
        SSize_t at = SvIV(AvARRAY(kept)[i]);
        SV *copy = AvARRAY(kept)[i + 1];
        SV *sv = at <= last ? pad[at] : NULL;
        if (!sv)
            continue;
        if (SvTYPE(sv) == SVt_PVAV && SvROK(copy)) {
            fs_av_back(aTHX_ (AV *)sv, (AV *)SvRV(copy));
        } else if (SvTYPE(sv) == SVt_PVHV && SvROK(copy)) {
            fs_hv_back(aTHX_ (HV *)sv, (HV *)SvRV(copy));
        } else if (SvTYPE(sv) <= SVt_PVMG && !SvREADONLY(sv)) {
            sv_setsv_mg(sv, copy);
        }
    }
    XSRETURN_EMPTY;
}

/* --- match-once patterns -----------------------------------------------------
 *
 * m/$var/o compiles its pattern the first time it runs and keeps it for the
 * life of the compiled code: per process under CGI, per worker in the
 * registry, where the next request would match what the first one built.
 * The runner finds those patterns in a script's subs once, after the
 * compile, and forgets what they compiled after every run. */

/* Collects the PMOPs of /o patterns compiled in a regcomp under `o`. */
static void fs_collect_once(pTHX_ OP *o, AV *found)
{
    OP *kid;
    if (o->op_type == OP_REGCOMP) {
        PMOP *pm = (PMOP *)cLOGOPo->op_other;
        if (pm && (pm->op_pmflags & PMf_KEEP)) {
#ifdef USE_ITHREADS
            av_push(found, newSViv(PTR2IV(pm)));
#else
            /* perl skips the regcomp by patching the op before it; the
             * runner puts the link back */
            av_push(found, newSViv(PTR2IV(cLOGOPo->op_first)));
            av_push(found, newSViv(PTR2IV(cLOGOPo->op_first->op_next)));
#endif
        }
    }
    if (o->op_flags & OPf_KIDS)
        for (kid = cUNOPo->op_first; kid; kid = OpSIBLING(kid))
            fs_collect_once(aTHX_ kid, found);
}

/* The sub an argument names, when it is Perl code compiled from `file`
 * (a script's own subs: not those it imported). */
static CV *fs_sub_of_file(pTHX_ SV *arg, const char *file)
{
    CV *sub;
    if (!SvROK(arg) || SvTYPE(SvRV(arg)) != SVt_PVCV)
        return NULL;
    sub = (CV *)SvRV(arg);
    if (CvISXSUB(sub) || !CvROOT(sub) || !CvFILE(sub) || strNE(CvFILE(sub), file))
        return NULL;
    return sub;
}

/* An opaque list for the runner: undef when empty (nothing to do after a
 * run, and nothing kept). */
static SV *fs_list_or_undef(pTHX_ AV *list)
{
    if (AvFILLp(list) >= 0)
        return sv_2mortal(newRV_noinc((SV *)list));
    SvREFCNT_dec((SV *)list);
    return &PL_sv_undef;
}

/* FCGI::Spawn::Native::once_patterns(FILE, CODEREF...) — the /o patterns
 * of these subs that were compiled from FILE, as an opaque list for
 * forget_once_patterns; undef when there are none. */
XS(fs_xs_once_patterns)
{
    dXSARGS;
    AV *found;
    I32 i;
    const char *file;
    if (items < 1)
        croak_xs_usage(cv, "file, code...");
    file = SvPV_nolen(ST(0));
    found = newAV();
    for (i = 1; i < items; i++) {
        CV *sub = fs_sub_of_file(aTHX_ ST(i), file);
        if (sub)
            fs_collect_once(aTHX_ CvROOT(sub), found);
    }
    ST(0) = fs_list_or_undef(aTHX_ found);
    XSRETURN(1);
}

/* FCGI::Spawn::Native::forget_once_patterns(LIST) */
XS(fs_xs_forget_once_patterns)
{
    dXSARGS;
    AV *list;
    SSize_t i;
    if (items != 1 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVAV)
        croak_xs_usage(cv, "list");
    list = (AV *)SvRV(ST(0));
#ifdef USE_ITHREADS
    for (i = 0; i <= AvFILLp(list); i++) {
        PMOP *pm = INT2PTR(PMOP *, SvIV(AvARRAY(list)[i]));
        REGEXP *re = PM_GETRE(pm);
        if (re) {
            /* What the slot holds before a pattern's first compile. */
            PL_regex_pad[pm->op_pmoffset] = &PL_sv_undef;
            ReREFCNT_dec(re);
        }
    }
#else
    for (i = 0; i + 1 <= AvFILLp(list); i += 2) {
        OP *first = INT2PTR(OP *, SvIV(AvARRAY(list)[i]));
        first->op_next = INT2PTR(OP *, SvIV(AvARRAY(list)[i + 1]));
    }
#endif
    XSRETURN_EMPTY;
}

/* --- state variables ---------------------------------------------------------
 *
 * `state $n = 0` is set up once for the life of the compiled code: once per
 * process under CGI, once per worker in the registry, where the next
 * request would go on from what the last one left. The runner finds the
 * state variables of a script's subs once, after the compile, and after
 * every run empties them and marks their initialisation as not done: perl
 * keeps that mark in a pad entry of its own named "$" (OP_ONCE tests its
 * PADSTALE flag). */

/* FCGI::Spawn::Native::state_vars(FILE, CODEREF...) — the state variables
 * of these subs compiled from FILE, and their initialisation marks, as an
 * opaque list for forget_state_vars; undef when there are none. */
XS(fs_xs_state_vars)
{
    dXSARGS;
    AV *vars, *marks, *found;
    I32 i;
    const char *file;
    if (items < 1)
        croak_xs_usage(cv, "file, code...");
    file = SvPV_nolen(ST(0));
    vars = newAV();
    marks = newAV();
    for (i = 1; i < items; i++) {
        PADNAMELIST *names;
        SV **pad;
        SSize_t at, last = 0;
        CV *sub = fs_sub_of_file(aTHX_ ST(i), file);
        if (!sub)
            continue;
        pad = fs_handler_pad(aTHX_ sub, &names, &last);
        for (at = 1; pad && at <= last; at++) {
            PADNAME *pn = PadnamelistARRAY(names)[at];
            if (!pn || !PadnameLEN(pn) || !PadnameIsSTATE(pn) || PadnameOUTER(pn) || !pad[at])
                continue;
            /* The mark's name is the bare sigil. */
            av_push(PadnameLEN(pn) == 1 ? marks : vars, newRV_inc(pad[at]));
        }
    }
    found = newAV();
    if (AvFILLp(vars) >= 0 || AvFILLp(marks) >= 0) {
        av_push(found, newRV_noinc((SV *)vars));
        av_push(found, newRV_noinc((SV *)marks));
    } else {
        SvREFCNT_dec((SV *)vars);
        SvREFCNT_dec((SV *)marks);
    }
    ST(0) = fs_list_or_undef(aTHX_ found);
    XSRETURN(1);
}

/* FCGI::Spawn::Native::forget_state_vars(LIST) — after a run: the state
 * variables empty and set up again by the next run, as in a new process.
 * What they held goes now (an object's DESTROY runs), as at process exit. */
XS(fs_xs_forget_state_vars)
{
    dXSARGS;
    AV *list, *vars, *marks;
    SSize_t i;
    if (items != 1 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVAV
        || AvFILLp((AV *)SvRV(ST(0))) != 1)
        croak_xs_usage(cv, "list");
    list = (AV *)SvRV(ST(0));
    vars = (AV *)SvRV(AvARRAY(list)[0]);
    marks = (AV *)SvRV(AvARRAY(list)[1]);
    for (i = 0; i <= AvFILLp(vars); i++)
        fs_empty_variable(aTHX_ SvRV(AvARRAY(vars)[i]));
    for (i = 0; i <= AvFILLp(marks); i++)
        SvPADSTALE_on(SvRV(AvARRAY(marks)[i]));
    XSRETURN_EMPTY;
}

/* --- what a script holds, at the end of its request ---------------------------
 *
 * What the script's packages hold goes, as at a CGI process's exit (each
 * object's DESTROY runs: CGI::Session writes its data there), but not its
 * code: global destruction frees no code, so a DESTROY finds its class
 * whatever order things go in. perlrun frees this first and deletes the
 * packages after. A fork-mode request's child deletes nothing: freeing the
 * globs, subs, pads and op trees wrote to every page they sit on, each a
 * copy from the worker (a 5,000-line script's child: 1,200 pages, 7 ms a
 * request) for a process that exits next. */

/* Whether the stash under key KEY (ending in "::") of PARENT is the
 * package nested there (Foo::Bar under Foo::), not another one aliased in. */
static int fs_is_nested_stash(HV *parent, const char *key, I32 klen, HV *nested)
{
    const char *outer = HvNAME(parent), *inner = HvNAME(nested);
    STRLEN olen = outer ? strlen(outer) : 0;
    return inner && strlen(inner) == olen + (STRLEN)klen && memEQ(inner, outer, olen)
        && memEQ(inner + olen, "::", 2) && memEQ(inner + olen + 2, key, (STRLEN)klen - 2);
}

/* A named sub's (or format's) captured and `state` variables that hold
 * something: what its file's lexicals held, which freeing the sub would
 * have released. Its own `my` variables were emptied as its calls left. */
static void fs_take_sub_variables(pTHX_ CV *sub, AV *to_empty)
{
    PADNAMELIST *names;
    SSize_t at, last = 0;
    SV **pad = fs_handler_pad(aTHX_ sub, &names, &last);
    for (at = 1; pad && at <= last; at++) {
        PADNAME *pn = PadnamelistARRAY(names)[at];
        SV *var = pad[at];
        /* A bare sigil is a state variable's initialisation mark. */
        if (!pn || PadnameLEN(pn) < 2 || PadnameIsOUR(pn) || !(PadnameOUTER(pn) || PadnameIsSTATE(pn)) || !var)
            continue;
        if (SvTYPE(var) == SVt_PVAV ? AvFILLp((AV *)var) >= 0
            : SvTYPE(var) == SVt_PVHV ? HvUSEDKEYS((HV *)var) > 0
            : SvOK(var) || SvROK(var))
            av_push(to_empty, SvREFCNT_inc_simple_NN(var));
    }
}

/* A glob's slot emptied, what it held kept in `to_free`: a later use of
 * the name gets a new, empty one, as after gp_free. */
#define FS_TAKE_SLOT(slot, to_free)                    \
    do {                                               \
        av_push((to_free), (SV *)(slot));              \
        (slot) = NULL;                                 \
    } while (0)

/* Takes out of a glob what it holds: its scalar, array, hash and handle
 * (into `to_free`), and with `to_empty`, the variables of its sub and
 * format when compiled in `stash` (the script's: not one it imported). A
 * glob sharing its slots with another (`*OUT = *STDOUT`) keeps them, as
 * `undef *glob` leaves them to the other. */
static void fs_take_glob_data(pTHX_ GV *gv, HV *stash, AV *to_free, AV *to_empty)
{
    if (GvGP(gv)->gp_refcnt != 1)
        return;
    if (GvSV(gv) && (SvOK(GvSV(gv)) || SvROK(GvSV(gv)) || SvMAGICAL(GvSV(gv))))
        FS_TAKE_SLOT(GvSV(gv), to_free);
    if (GvAV(gv) && (AvFILLp(GvAV(gv)) >= 0 || SvMAGICAL(GvAV(gv))))
        FS_TAKE_SLOT(GvAV(gv), to_free);
    if (GvHV(gv) && !HvNAME(GvHV(gv)) && (HvUSEDKEYS(GvHV(gv)) || SvMAGICAL(GvHV(gv))))
        FS_TAKE_SLOT(GvHV(gv), to_free);
    if (GvIOp(gv))
        FS_TAKE_SLOT(GvIOp(gv), to_free);
    if (!to_empty)
        return;
    if (GvCV(gv) && !CvISXSUB(GvCV(gv)) && CvSTASH(GvCV(gv)) == stash)
        fs_take_sub_variables(aTHX_ GvCV(gv), to_empty);
    if (GvFORM(gv) && CvSTASH(GvFORM(gv)) == stash)
        fs_take_sub_variables(aTHX_ GvFORM(gv), to_empty);
}

/* Takes out of the package's globs (and its nested packages') what they
 * hold. Nothing runs meanwhile: an object's DESTROY, which may change the
 * package, runs once the walk is over. */
static void fs_take_stash_data(pTHX_ HV *stash, AV *to_free, AV *to_empty, int depth)
{
    HE **buckets = HvARRAY(stash);
    STRLEN i;
    for (i = 0; buckets && i <= HvMAX(stash); i++) {
        HE *he;
        for (he = buckets[i]; he; he = HeNEXT(he)) {
            GV *gv = (GV *)HeVAL(he);
            I32 klen = HeKLEN(he);
            if (SvTYPE(gv) != SVt_PVGV || !isGV_with_GP(gv))
                continue;
            if (fs_is_stash_name(HeKEY(he), klen)) {
                if (GvHV(gv) && fs_is_nested_stash(stash, HeKEY(he), klen, GvHV(gv)) && depth < 32)
                    fs_take_stash_data(aTHX_ GvHV(gv), to_free, to_empty, depth + 1);
                continue;
            }
            fs_take_glob_data(aTHX_ gv, stash, to_free, to_empty);
        }
    }
}

/* Takes out of a registry snapshot's records (and its nested packages')
 * the copies of what the compile left in the package's variables, and the
 * references to the variables themselves, which would keep them alive. */
static void fs_take_snapshot_data(pTHX_ SV *snapshot, AV *to_free, int depth)
{
    static const int data_slots[] = { REC_SCALAR, REC_ARRAY, REC_HASH, REC_LIVE_SV, REC_LIVE_AV, REC_LIVE_HV };
    HV *records = (HV *)SvRV(AvARRAY((AV *)SvRV(snapshot))[1]);
    HE **buckets = HvARRAY(records);
    STRLEN i;
    size_t k;
    for (i = 0; buckets && i <= HvMAX(records); i++) {
        HE *he;
        for (he = buckets[i]; he; he = HeNEXT(he)) {
            AV *rec = (AV *)SvRV(HeVAL(he));
            SV *nested = fs_rec_get(aTHX_ rec, REC_NESTED);
            for (k = 0; k < sizeof data_slots / sizeof data_slots[0]; k++) {
                SV **slot = data_slots[k] <= AvFILLp(rec) ? &AvARRAY(rec)[data_slots[k]] : NULL;
                if (slot && *slot && (SvOK(*slot) || SvROK(*slot))) {
                    av_push(to_free, *slot);
                    *slot = NULL;
                }
            }
            if (nested && SvROK(nested) && depth < 32)
                fs_take_snapshot_data(aTHX_ nested, to_free, depth + 1);
        }
    }
}

/* FCGI::Spawn::Native::release_snapshot_data(SNAPSHOT) — in a request's
 * child about to exit, before release_package_data: what a registry
 * snapshot (snapshot_package) holds of its package's variables goes; its
 * records of the package's globs and subs stay. */
XS(fs_xs_release_snapshot_data)
{
    dXSARGS;
    AV *to_free;
    if (items != 1 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVAV)
        croak_xs_usage(cv, "snapshot");
    to_free = (AV *)sv_2mortal((SV *)newAV());
    fs_take_snapshot_data(aTHX_ ST(0), to_free, 0);
    av_clear(to_free);
    XSRETURN_EMPTY;
}

/* Empties what fs_take_* took: variables emptied in place, the rest freed
 * (DESTROY runs here, after the walk). */
static void fs_release_taken(pTHX_ AV *to_free, AV *to_empty)
{
    SSize_t i;
    for (i = 0; to_empty && i <= AvFILLp(to_empty); i++)
        fs_empty_variable(aTHX_ AvARRAY(to_empty)[i]);
    av_clear(to_free);
}

/* FCGI::Spawn::Native::release_glob_data(GLOB_REF...) — what these globs
 * (the script's top-level names) hold goes, as release_package_data does
 * for a package's. */
XS(fs_xs_release_glob_data)
{
    dXSARGS;
    AV *to_free = (AV *)sv_2mortal((SV *)newAV());
    I32 i;
    for (i = 0; i < items; i++) {
        GV *gv = SvROK(ST(i)) ? (GV *)SvRV(ST(i)) : NULL;
        if (gv && SvTYPE(gv) == SVt_PVGV && isGV_with_GP(gv))
            fs_take_glob_data(aTHX_ gv, NULL, to_free, NULL);
    }
    fs_release_taken(aTHX_ to_free, NULL);
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::release_package_data(NAME, SUBS) — what package
 * NAME and the packages in it hold goes, their subs and globs stay (see
 * above). SUBS: their subs may hold
 * variables too (captured file lexicals, `state` variables), which go as
 * well; each sub's pad is read for them, the costliest part of the walk. */
XS(fs_xs_release_package_data)
{
    dXSARGS;
    STRLEN len;
    const char *name;
    HV *stash;
    AV *to_free, *to_empty;
    if (items != 2)
        croak_xs_usage(cv, "package, subs");
    name = SvPV_const(ST(0), len);
    if (!(stash = fs_find_stash(aTHX_ name, len)))
        XSRETURN_EMPTY;
    to_free = (AV *)sv_2mortal((SV *)newAV());
    to_empty = SvTRUE(ST(1)) ? (AV *)sv_2mortal((SV *)newAV()) : NULL;
    fs_take_stash_data(aTHX_ stash, to_free, to_empty, 0);
    fs_release_taken(aTHX_ to_free, to_empty);
    XSRETURN_EMPTY;
}

/* --- reading a shared hash without writing to it ------------------------------ */

/* FCGI::Spawn::Native::plain_keys(HASH_REF) — the hash's keys, as `keys`
 * gives them, but read from its buckets: `keys` would start an iteration
 * (written into the hash) and return each key sharing perl's copy of the
 * string, whose reference count it raises. In a worker both are pages it
 * shares with the master (a walk of main:: or %INC wrote to some 40 of
 * them); these keys are copies. */
XS(fs_xs_plain_keys)
{
    dXSARGS;
    HV *hv;
    HE **buckets;
    STRLEN i;
    if (items != 1 || !SvROK(ST(0)) || SvTYPE(SvRV(ST(0))) != SVt_PVHV)
        croak_xs_usage(cv, "hash_ref");
    hv = (HV *)SvRV(ST(0));
    SP -= items;
    buckets = HvARRAY(hv);
    if (buckets && HvUSEDKEYS(hv)) {
        EXTEND(SP, (SSize_t)HvUSEDKEYS(hv));
        for (i = 0; i <= HvMAX(hv); i++) {
            HE *he;
            for (he = buckets[i]; he; he = HeNEXT(he)) {
                if (HeVAL(he) == &PL_sv_placeholder)
                    continue;
                if (HeKLEN(he) == HEf_SVKEY)
                    mPUSHs(newSVsv(HeKEY_sv(he)));
                else
                    mPUSHs(newSVpvn_flags(HeKEY(he), HeKLEN(he), HeKUTF8(he) ? SVf_UTF8 : 0));
            }
        }
    }
    PUTBACK;
}

/* --- a registry script's names, out of sight between its runs ----------------
 *
 * What a registry script's compile adds to shared symbol tables (a $main::x,
 * a package Foo it names or declares) would stay visible to every other
 * script of the worker, which under CGI runs in a process of its own. The
 * runner takes those symbols out of their table after each run of the
 * script and puts them back before its next run; its compiled code holds
 * the globs themselves and never notices. */

/* FCGI::Spawn::Native::detach_symbols(PACKAGE, NAME...) — removes these
 * symbols from PACKAGE's table; returns (NAME, GLOB_REF) for each that was
 * there. */
XS(fs_xs_detach_symbols)
{
    dXSARGS;
    STRLEN len;
    const char *pkg;
    HV *stash;
    I32 i;
    int stashes = 0;
    AV *out;
    if (items < 1)
        croak_xs_usage(cv, "package, name...");
    pkg = SvPV_const(ST(0), len);
    stash = fs_find_stash(aTHX_ pkg, len);
    out = (AV *)sv_2mortal((SV *)newAV());
    for (i = 1; stash && i < items; i++) {
        HE *he = hv_fetch_ent(stash, ST(i), 0, 0);
        SV *value;
        if (!he)
            continue;
        value = HeVAL(he);
        av_push(out, newSVsv(ST(i)));
        av_push(out, SvTYPE(value) == SVt_PVGV ? newRV_inc(value) : newSVsv(value));
        if (SvTYPE(value) == SVt_PVGV && isGV_with_GP(value) && GvHV((GV *)value)
            && HvNAME_get(GvHV((GV *)value)))
            stashes = 1;
        (void)hv_delete_ent(stash, ST(i), G_DISCARD, 0);
    }
    /* Class-name lookups (Foo->method) cache the stash of a name. */
    if (stashes && PL_stashcache)
        hv_clear(PL_stashcache);
    FS_XSRETURN_AV(out);
}

/* FCGI::Spawn::Native::attach_symbols(PACKAGE, NAME, GLOB_REF, ...) — puts
 * detached symbols back, where nothing else took their name meanwhile. */
XS(fs_xs_attach_symbols)
{
    dXSARGS;
    STRLEN len;
    const char *pkg;
    HV *stash;
    I32 i;
    if (items < 1 || items % 2 != 1)
        croak_xs_usage(cv, "package, name, glob_ref, ...");
    fs_code_touch();
    pkg = SvPV_const(ST(0), len);
    stash = fs_find_stash(aTHX_ pkg, len);
    for (i = 1; stash && i + 1 < items; i += 2) {
        SV *ref = ST(i + 1);
        if (hv_exists_ent(stash, ST(i), 0))
            continue;
        if (SvROK(ref) && SvTYPE(SvRV(ref)) == SVt_PVGV) {
            GV *gv = (GV *)SvRV(ref);
            (void)hv_store_ent(stash, ST(i), SvREFCNT_inc_simple_NN((SV *)gv), 0);
            /* A package back in the tree gets its names (and isa caches)
             * back, as perl gives them to a stash assigned to a glob; its
             * removal took them (hv_delete does that for packages). */
            if (isGV_with_GP(gv) && GvHV(gv) && HvNAME_get(GvHV(gv)))
                Perl_mro_package_moved(aTHX_ GvHV(gv), NULL, gv, 1);
        } else
            (void)hv_store_ent(stash, ST(i), newSVsv(ref), 0);
    }
    if (PL_stashcache)
        hv_clear(PL_stashcache);
    XSRETURN_EMPTY;
}

/* FCGI::Spawn::Native::file_stamp(PATH) — the file's mtime, size and
 * inode as one opaque string, only ever compared with another: what a
 * compiled script is compiled again on when it changes; undef with $! set
 * when it cannot be stat()ed. Checked on every registry request: in C, a
 * stat and the three numbers' bytes (perl's stat builds 13 values; a
 * formatted string cost 1,800 instructions), and perl's `_` left alone,
 * as the script's own first `-e _` would find it. */
XS(fs_xs_file_stamp)
{
    dXSARGS;
    Stat_t st;
    IV stamp[3];
    if (items != 1)
        croak_xs_usage(cv, "path");
    if (PerlLIO_stat(SvPV_nolen(ST(0)), &st) != 0)
        XSRETURN_UNDEF;
    stamp[0] = (IV)st.st_mtime;
    stamp[1] = (IV)st.st_size;
    stamp[2] = (IV)st.st_ino;
    ST(0) = sv_2mortal(newSVpvn((const char *)stamp, sizeof stamp));
    XSRETURN(1);
}

static const fs_xsub fs_package_xsubs_table[] = {
    FS_XSUB("file_stamp", fs_xs_file_stamp),
    FS_XSUB("plain_keys", fs_xs_plain_keys),
    FS_XSUB("detach_symbols", fs_xs_detach_symbols),
    FS_XSUB("attach_symbols", fs_xs_attach_symbols),
    FS_XSUB("once_patterns", fs_xs_once_patterns),
    FS_XSUB("forget_once_patterns", fs_xs_forget_once_patterns),
    FS_XSUB("state_vars", fs_xs_state_vars),
    FS_XSUB("forget_state_vars", fs_xs_forget_state_vars),
    FS_XSUB("release_snapshot_data", fs_xs_release_snapshot_data),
    FS_XSUB("release_package_data", fs_xs_release_package_data),
    FS_XSUB("release_glob_data", fs_xs_release_glob_data),
    FS_XSUB("snapshot_package", fs_xs_snapshot_package),
    FS_XSUB("restore_package", fs_xs_restore_package),
    FS_XSUB("retire_snapshot", fs_xs_retire_snapshot),
    FS_XSUB("merge_loaded", fs_xs_merge_loaded),
    FS_XSUB("nested_snapshot", fs_xs_nested_snapshot),
    FS_XSUB("captured_lexicals", fs_xs_captured_lexicals),
    FS_XSUB("compiled_lexicals", fs_xs_compiled_lexicals),
    FS_XSUB("lexicals_back", fs_xs_lexicals_back),
};

void fs_register_package_xsubs(pTHX)
{
    fs_register_xsubs(aTHX_ fs_package_xsubs_table, sizeof fs_package_xsubs_table / sizeof fs_package_xsubs_table[0]);
}

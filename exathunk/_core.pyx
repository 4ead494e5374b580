# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The graph-reduction engine: runs a verified Program in C memory, call-by-need.

Values are 16-byte tagged cells (Int, Double, Bool and nullary constructors unboxed);
heap objects (thunks, black holes, indirections, cons cells, partial applications,
strings, constructors with fields) live in a copying (Cheney) heap.  The engine keeps
its own value stack and control stack of frames (code, update, over-application, stop,
and the native frames that force to normal form, compare structures and call host
functions), so program depth never becomes C recursion.  A thunk is black-holed on
entry and overwritten with an indirection to its value on return; the collector
short-circuits indirections.  Pure code runs without the GIL; it is taken only around
host calls, showing Doubles, %parse-int's error message and building results.

Data values: a nullary constructor is the immediate K_CON (its constructor index), a
constructor with fields a T_DATA object (fn = constructor index, n = arity, the fields
lazy).  The image keeps each constructor's arity, tag (its position in its type, which
Ord compares first) and name.  Comparisons of lists and data run in the F_EQ frame
(pairs on the value stack, the next on top), stopping at the first difference.
"""

from libc.stdlib cimport malloc, free, realloc
from libc.string cimport memcpy, memmove, memset
from libc.stdint cimport int64_t, int32_t, uint32_t, intptr_t
from libc.stdio cimport snprintf
from libc.math cimport fabs
from cpython.unicode cimport PyUnicode_FromKindAndData, PyUnicode_4BYTE_KIND
import time as _time
from threading import get_ident as _get_ident

include "_opcodes.pxi"

cdef enum:
    # Superinstructions: never on the wire nor in a Program, only in an Image's copy of
    # the code, where quicken() writes one over the opcode word of the first instruction
    # of a sequence it stands for.  The sequence's own words stay in place (only that
    # one word changes), so a jump into the middle of it, or a resumption after a thunk
    # entry, runs the original instructions; each QOP does exactly what running the
    # sequence would.  Picked from bench/profile_instructions.py's commonest sequences.
    QOP_LOCAL2 = 240           # LOCAL a; LOCAL b
    QOP_STORE_DROP = 241       # STORE n; LOCAL n; POP   (the push and pop cancel)
    QOP_LOCAL_HEAD_EVAL = 242  # LOCAL n; HEAD; EVAL
    QOP_LOCAL_TAIL_EVAL = 243  # LOCAL n; TAIL; EVAL
    QOP_BR_LOCAL_CONS = 244    # LOCAL n; NULLP; JUMPF t   (to t when the list is a cons)
    QOP_EVAL_STORE = 245       # EVAL; STORE n

cdef extern from *:
    """
    #include <stdint.h>
    static inline int xt_add(int64_t a, int64_t b, int64_t *r) { return __builtin_add_overflow(a, b, r); }
    static inline int xt_sub(int64_t a, int64_t b, int64_t *r) { return __builtin_sub_overflow(a, b, r); }
    static inline int xt_mul(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }
    #include <time.h>
    /* The cancellation flag is written by any thread and read by the running one. */
    static inline int xt_flag_get(int *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void xt_flag_set(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline int64_t xt_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    static int xt_never_cancelled = 0;
    /* A cache of released blocks of the usual sizes (the default semispace, the
       initial value and control stacks), shared by the runs of every thread: a run
       takes its spaces from it at start and gives them back at its end (and a
       collection reuses its own spare space), so that the kernel need not fault in
       and zero fresh pages on every run and every collection.  At most XT_CACHE_SLOTS
       blocks per size are kept; the rest are freed.  A spin lock guards it: it is
       held only for a few loads and stores.  Semispaces of the cached size (class 0)
       are mapped directly, never malloc'd, so that a cached one cannot pin the
       allocator's memory around it (its arenas can still shrink) and a surplus one
       goes straight back to the system; the stacks (which realloc may grow) are
       malloc'd. */
    #include <sys/mman.h>
    #if defined(__x86_64__) || defined(__i386__)
    #define XT_PAUSE() __builtin_ia32_pause()
    #else
    #define XT_PAUSE() ((void)0)
    #endif
    #define XT_CACHE_CLASSES 3
    #define XT_CACHE_SLOTS 4
    static void *xt_cache[XT_CACHE_CLASSES][XT_CACHE_SLOTS];
    static int xt_cache_n[XT_CACHE_CLASSES];
    static const size_t xt_cache_size[XT_CACHE_CLASSES] = {
        (size_t)4 << 20, (size_t)4096 * 16, (size_t)1024 * 32};
    static int xt_cache_lock = 0;
    /* kind: XT_HEAP (a semispace), XT_STACK (the value stack), XT_FRAMES (the control
       stack); a block is cached only when it has its kind's usual size, so a stack
       grown by realloc to the semispace's size is never taken for a mapped one */
    #define XT_HEAP 0
    #define XT_STACK 1
    #define XT_FRAMES 2
    static inline int xt_cache_class(int kind, size_t size) {
        return xt_cache_size[kind] == size ? kind : -1;
    }
    static inline void xt_lock(void) {
        while (__atomic_exchange_n(&xt_cache_lock, 1, __ATOMIC_ACQUIRE))
            while (__atomic_load_n(&xt_cache_lock, __ATOMIC_RELAXED))
                XT_PAUSE();
    }
    static inline void xt_unlock(void) { __atomic_store_n(&xt_cache_lock, 0, __ATOMIC_RELEASE); }
    static void *xt_block_get(int kind, size_t size) {
        void *p = NULL;
        int c = xt_cache_class(kind, size);
        if (c >= 0) {
            xt_lock();
            if (xt_cache_n[c] > 0) p = xt_cache[c][--xt_cache_n[c]];
            xt_unlock();
            if (p != NULL) return p;
        }
        if (c == 0) {
            p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            return p == MAP_FAILED ? NULL : p;
        }
        return malloc(size);
    }
    /* The old space: mapped directly (its pages are touched only as it fills, and an
       unmapped one goes straight back to the system), never cached. */
    static void *xt_old_get(size_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
    #ifdef MADV_HUGEPAGE
        /* promotion fills it sequentially: huge pages fault in 512 times less often */
        madvise(p, size, MADV_HUGEPAGE);
    #endif
        return p;
    }
    static void xt_old_put(void *p, size_t size) {
        if (p != NULL) munmap(p, size);
    }
    static void xt_block_put(int kind, void *p, size_t size) {
        int c;
        if (p == NULL) return;
        c = xt_cache_class(kind, size);
        if (c >= 0) {
            xt_lock();
            if (xt_cache_n[c] < XT_CACHE_SLOTS) {
                xt_cache[c][xt_cache_n[c]++] = p;
                p = NULL;
            }
            xt_unlock();
        }
        if (p == NULL) return;
        if (c == 0) munmap(p, size);
        else free(p);
    }
    """
    int xt_add(int64_t a, int64_t b, int64_t *r) noexcept nogil
    int xt_sub(int64_t a, int64_t b, int64_t *r) noexcept nogil
    int xt_mul(int64_t a, int64_t b, int64_t *r) noexcept nogil
    const int64_t INT64_MIN_V "INT64_MIN"
    const int64_t INT64_MAX_V "INT64_MAX"
    int xt_flag_get(int *p) noexcept nogil
    void xt_flag_set(int *p, int v) noexcept nogil
    int64_t xt_now_ns() noexcept nogil
    int xt_never_cancelled
    enum: XT_HEAP
    enum: XT_STACK
    enum: XT_FRAMES
    void* xt_block_get(int kind, size_t size) noexcept nogil
    void xt_block_put(int kind, void* p, size_t size) noexcept nogil
    void* xt_old_get(size_t size) noexcept nogil
    void xt_old_put(void* p, size_t size) noexcept nogil


cdef extern from *:
    """
    /* The instruction profile: counts of dispatched opcodes, of pairs and triples of
       opcodes dispatched one after the other in one stretch of straight execution (a
       thunk entry, a return or an unknown application breaks the chain), and of mode
       switches.  Only a build with the C macro EXATHUNK_PROFILE (setup.py reads the
       environment variable EXATHUNK_PROFILE=1) counts; in the normal build the hooks
       are empty, so the dispatch loop pays nothing.  The counters are process-wide and
       unsynchronised: profile one run at a time. */
    #define XT_PROF_NOPS 128
    #define XT_PROF_NMODES 8
    #ifdef EXATHUNK_PROFILE
    #include <stdlib.h>
    #include <string.h>
    #define XT_PROFILED 1
    static uint64_t xt_prof_ops[XT_PROF_NOPS];
    static uint64_t xt_prof_pairs[XT_PROF_NOPS * XT_PROF_NOPS];
    static uint64_t *xt_prof_triples = NULL;     /* NOPS^3, allocated on first use */
    static uint64_t xt_prof_modes[XT_PROF_NMODES];
    static int xt_prof_p1 = -1, xt_prof_p2 = -1;
    static inline void xt_prof_op(int op) {
        if (op < 0 || op >= XT_PROF_NOPS) { xt_prof_p1 = xt_prof_p2 = -1; return; }
        xt_prof_ops[op]++;
        if (xt_prof_p1 >= 0) {
            xt_prof_pairs[xt_prof_p1 * XT_PROF_NOPS + op]++;
            if (xt_prof_p2 >= 0) {
                if (xt_prof_triples == NULL)
                    xt_prof_triples = (uint64_t*)calloc(
                        (size_t)XT_PROF_NOPS * XT_PROF_NOPS * XT_PROF_NOPS, sizeof(uint64_t));
                if (xt_prof_triples != NULL)
                    xt_prof_triples[((size_t)xt_prof_p2 * XT_PROF_NOPS + xt_prof_p1)
                                    * XT_PROF_NOPS + op]++;
            }
        }
        xt_prof_p2 = xt_prof_p1;
        xt_prof_p1 = op;
    }
    static inline void xt_prof_mode(int mode) {
        if (mode >= 0 && mode < XT_PROF_NMODES) xt_prof_modes[mode]++;
        xt_prof_p1 = xt_prof_p2 = -1;
    }
    static void xt_prof_reset(void) {
        memset(xt_prof_ops, 0, sizeof xt_prof_ops);
        memset(xt_prof_pairs, 0, sizeof xt_prof_pairs);
        memset(xt_prof_modes, 0, sizeof xt_prof_modes);
        if (xt_prof_triples != NULL)
            memset(xt_prof_triples, 0,
                   (size_t)XT_PROF_NOPS * XT_PROF_NOPS * XT_PROF_NOPS * sizeof(uint64_t));
        xt_prof_p1 = xt_prof_p2 = -1;
    }
    static inline uint64_t xt_prof_op_count(int a) { return xt_prof_ops[a]; }
    static inline uint64_t xt_prof_pair_count(int a, int b) {
        return xt_prof_pairs[a * XT_PROF_NOPS + b];
    }
    static inline uint64_t xt_prof_triple_count(int a, int b, int c) {
        return xt_prof_triples == NULL ? 0
            : xt_prof_triples[((size_t)a * XT_PROF_NOPS + b) * XT_PROF_NOPS + c];
    }
    static inline uint64_t xt_prof_mode_count(int a) { return xt_prof_modes[a]; }
    #else
    #define XT_PROFILED 0
    #define xt_prof_op(op) ((void)0)
    #define xt_prof_mode(mode) ((void)0)
    static void xt_prof_reset(void) {}
    static inline uint64_t xt_prof_op_count(int a) { return 0; }
    static inline uint64_t xt_prof_pair_count(int a, int b) { return 0; }
    static inline uint64_t xt_prof_triple_count(int a, int b, int c) { return 0; }
    static inline uint64_t xt_prof_mode_count(int a) { return 0; }
    #endif
    """
    enum: XT_PROFILED
    enum: XT_PROF_NOPS
    enum: XT_PROF_NMODES
    void xt_prof_op(int op) noexcept nogil
    void xt_prof_mode(int mode) noexcept nogil
    void xt_prof_reset() noexcept nogil
    unsigned long long xt_prof_op_count(int a) noexcept nogil
    unsigned long long xt_prof_pair_count(int a, int b) noexcept nogil
    unsigned long long xt_prof_triple_count(int a, int b, int c) noexcept nogil
    unsigned long long xt_prof_mode_count(int a) noexcept nogil

cdef enum:
    K_INT = 0
    K_DBL = 1
    K_BOOL = 2
    K_NIL = 3
    K_FUN = 4
    K_PTR = 5
    K_UNSET = 6
    K_CLOSE = 7      # render markers (never in the heap)
    K_SPACE = 8
    K_CON = 9        # a nullary constructor: u.i is its constructor index

cdef enum:
    T_THUNK = 1
    T_BH = 2
    T_IND = 3
    T_CONS = 4
    T_PAP = 5
    T_STR = 6
    T_FWD = 7
    T_DATA = 8       # a constructor with fields: fn = constructor index, n = arity

cdef enum:
    F_CODE = 0
    F_UPDATE = 1
    F_APPLY = 2
    F_STOP = 3
    F_NF = 4
    F_EQ = 5         # compare pairs of values (EQ NEQ LT LE GT GE: fn is the opcode)
    F_HOST = 6

cdef enum:
    M_EXEC = 0
    M_RETURN = 1
    M_APPLY = 2
    M_ENTER = 3
    M_NATIVE = 4
    M_RESUME = 5
    M_FAIL = 6

cdef enum:
    E_NONE = 0
    E_EVAL = 1
    E_STEPS = 2
    E_HEAP = 3
    E_DEPTH = 4
    E_PY = 5
    E_CANCEL = 6     # the run's CancelToken was cancelled
    E_TIMEOUT = 7    # the wall-clock deadline passed

cdef enum:
    NF_VALUE = 0
    NF_SHOW = 1
    NF_JOIN = 2      # the separator at base, the list at base + 1

cdef struct Obj:
    uint32_t tag
    uint32_t n
    int32_t fn
    int32_t pad

cdef union VU:
    int64_t i
    double d
    Obj* p

cdef struct Val:
    int64_t k
    VU u

cdef struct Frame:
    int32_t kind
    int32_t fn
    int32_t wb           # code frames: local slot to overwrite with the value returned
    int32_t pad
    int64_t pc
    int64_t base

cdef struct FnInfo:
    int32_t arity
    int32_t nlocals
    int32_t maxstack
    int32_t direct       # where direct calls start: after the strict-parameter prologue
    int64_t off

cdef struct Machine:
    int32_t* code
    FnInfo* fns
    int32_t nfns
    int64_t* ints
    double* dbls
    Obj** strs
    uint32_t* host_strict     # per host: bit mask of strict parameters (first 32)
    char** host_strict_flags
    int32_t* host_arity
    char* heap
    char* hp
    char* hlim
    size_t cap
    char* old            # the old space: objects that survived a collection
    char* old_top
    char* old_scanned    # old objects from here on may point into the nursery
    size_t old_cap
    size_t major_at      # a major collection once the old space holds more than this
    int64_t majors
    Obj** rem            # the remembered set: old objects given a pointer since the
    int64_t nrem         # last collection (see remember)
    int64_t remcap
    int rem_lost         # the remembered set could not grow: collect all next time
    size_t max_heap
    size_t peak
    int64_t gcs
    int64_t gc_ns        # time spent collecting (CLOCK_MONOTONIC ns), for the run stats
    Val* S
    int64_t sp
    int64_t scap
    int64_t smax
    Frame* F
    int64_t fp
    int64_t fcap
    int64_t fmax
    Val* cafs
    Val* tmp
    int64_t tmpcap
    int64_t steps
    int64_t max_steps
    int64_t next_check   # the step count past which step_check runs (<= max_steps)
    int64_t next_signal  # the step count from which step_check looks at signals
    int* cancel          # the CancelToken's flag (xt_never_cancelled without one)
    int64_t deadline     # CLOCK_MONOTONIC ns; INT64_MAX_V: none
    int err
    char errmsg[512]
    Val result
    void* run            # the Python Run object (borrowed) for host calls
    int failed
    int32_t err_fn       # the code running when the run failed (for the line table)
    int64_t err_pc
    int32_t ncons
    int32_t* con_arity   # per constructor index: its number of fields
    int32_t* con_tag     # its position within its data type (Ord compares it first)
    Obj** con_names      # its name as a static string (for show)

DEF_OBJ = 16

cdef inline Val* FLD(Obj* o) noexcept nogil:
    return <Val*>((<char*>o) + sizeof(Obj))

cdef inline uint32_t* CHARS(Obj* o) noexcept nogil:
    return <uint32_t*>((<char*>o) + sizeof(Obj))

cdef inline size_t str_bytes(size_t n) noexcept nogil:
    cdef size_t b = n * 4
    if b < 16:
        b = 16
    return sizeof(Obj) + ((b + 15) & ~(<size_t>15))

cdef inline size_t obj_bytes(Obj* o) noexcept nogil:
    if o.tag == T_STR:
        return str_bytes(o.n)
    cdef size_t n = o.n
    if n == 0:
        n = 1
    return sizeof(Obj) + 16 * n

cdef inline Val resolve(Val v) noexcept nogil:
    """Follow indirections."""
    while v.k == K_PTR and v.u.p.tag == T_IND:
        v = FLD(v.u.p)[0]
    return v

cdef inline Val mk_int(int64_t i) noexcept nogil:
    cdef Val v
    v.k = K_INT
    v.u.i = i
    return v

cdef inline Val mk_bool(bint b) noexcept nogil:
    cdef Val v
    v.k = K_BOOL
    v.u.i = 1 if b else 0
    return v

cdef inline Val mk_ptr(Obj* o) noexcept nogil:
    cdef Val v
    v.k = K_PTR
    v.u.p = o
    return v

cdef inline bint is_str(Val v) noexcept nogil:
    return v.k == K_PTR and v.u.p.tag == T_STR

cdef inline bint is_cons(Val v) noexcept nogil:
    return v.k == K_PTR and v.u.p.tag == T_CONS

cdef inline int forcing(Machine* m, Val v) noexcept nogil:
    """What evaluating v (already resolved) takes: 1 entering it (a thunk), 0 nothing (a
    value in WHNF), -1 nothing more: the run fails (a black hole depends on itself)."""
    if v.k != K_PTR:
        return 0
    if v.u.p.tag == T_THUNK:
        return 1
    if v.u.p.tag == T_BH:
        return fail(m, E_EVAL, "a value depends on itself (infinite loop)")
    return 0

cdef inline bint is_data(Val v) noexcept nogil:
    return v.k == K_PTR and v.u.p.tag == T_DATA

cdef inline int64_t con_of(Val v) noexcept nogil:
    """The constructor index of a data value in WHNF, or -1."""
    if v.k == K_CON:
        return v.u.i
    if v.k == K_PTR and v.u.p.tag == T_DATA:
        return v.u.p.fn
    return -1

cdef inline bint cmp_holds(int op, int c) noexcept nogil:
    """Whether comparison op holds for the outcome c (-1, 0, 1, or 3 unordered)."""
    if op == OP_EQ:
        return c == 0
    if op == OP_NEQ:
        return c != 0
    if op == OP_LT:
        return c == -1
    if op == OP_LE:
        return c == -1 or c == 0
    if op == OP_GT:
        return c == 1
    return c == 1 or c == 0


cdef inline int dbl_cmp(double x, double y) noexcept nogil:
    """-1, 0, 1, or 3 when unordered (a NaN)."""
    if x < y:
        return -1
    if x > y:
        return 1
    if x == y:
        return 0
    return 3


cdef int fail(Machine* m, int code, const char* msg) noexcept nogil:
    if m.err == E_NONE:
        m.err = code
        snprintf(m.errmsg, sizeof(m.errmsg), "%s", msg)
    return -1


cdef int poll(Machine* m) noexcept nogil:
    """Whether the run must stop now: -1 (error set) when its CancelToken was cancelled
    or its deadline has passed, else 0.  Cheap (a load, and a vDSO clock read when
    there is a deadline); called every POLL_EVERY steps, at every collection, before
    every host call and inside the long loops of built-ins, never in the middle of a
    host call."""
    if xt_flag_get(m.cancel):
        return fail(m, E_CANCEL, "the run was cancelled")
    if m.deadline != INT64_MAX_V and xt_now_ns() >= m.deadline:
        return fail(m, E_TIMEOUT, "the time limit (timeout) was exceeded")
    return 0


cdef enum:
    COPY_CHUNK = 1 << 22       # bytes copied between polls (about a millisecond)


cdef int copy_chunked(Machine* m, char* dst, const char* src, size_t size) noexcept nogil:
    """memcpy of a big object (a long string), polling every COPY_CHUNK bytes: 0, or
    -1 when the run must stop (error set; the run is marked failed, as the copy is left
    half done)."""
    while size > COPY_CHUNK:
        memcpy(dst, src, COPY_CHUNK)
        dst += COPY_CHUNK
        src += COPY_CHUNK
        size -= COPY_CHUNK
        if poll(m) < 0:
            m.failed = 1
            return -1
    memcpy(dst, src, size)
    return 0


cdef inline int copy_chars(Machine* m, uint32_t* dst, const uint32_t* src, size_t n) noexcept nogil:
    """Copy n code points (see copy_chunked): 0, or -1 when the run must stop."""
    if n * 4 > COPY_CHUNK:
        return copy_chunked(m, <char*>dst, <const char*>src, n * 4)
    if n:
        memcpy(dst, src, n * 4)
    return 0


# ---- the heap and the collector -------------------------------------------------------

ctypedef int (*copy_op)(Machine*, char*, const char*, size_t) noexcept nogil
cdef copy_op p_copy_chunked = NULL      # not inlined into the collector's loops


cdef inline void evacuate(Machine* m, Val* v, char* lo, char* hi, char* lo2, char* hi2,
                         char** top) noexcept nogil:
    """Copy the object v points to, when it lies in [lo, hi) or [lo2, hi2) (the spaces
    being collected), to top[0], short-circuiting indirections; v is updated."""
    cdef Obj* o
    cdef Obj* new
    cdef size_t size
    while True:
        if v.k != K_PTR:
            return
        o = v.u.p
        if (<char*>o < lo or <char*>o >= hi) and (<char*>o < lo2 or <char*>o >= hi2):
            return                      # a static string or an old object: not moved
        if o.tag == T_IND:
            v[0] = FLD(o)[0]
            continue
        break
    if o.tag == T_FWD:
        v.u.p = FLD(o)[0].u.p
        return
    size = obj_bytes(o)
    new = <Obj*>top[0]
    if size > COPY_CHUNK:
        # a long string: copied in chunks, polling; when the run must stop the copy is
        # left partial, and the collector's next poll (which fails again) abandons it
        p_copy_chunked(m, <char*>new, <const char*>o, size)
    elif size <= 64:
        # the common small objects (a cons is 48 bytes): 16-byte cell moves inline,
        # cheaper than a call to memcpy of a variable size
        (<Val*>new)[0] = (<Val*>o)[0]
        (<Val*>new)[1] = (<Val*>o)[1]
        if size > 32:
            (<Val*>new)[2] = (<Val*>o)[2]
            if size > 48:
                (<Val*>new)[3] = (<Val*>o)[3]
    else:
        memcpy(new, o, size)
    top[0] += size
    o.tag = T_FWD
    FLD(o)[0].u.p = new
    v.u.p = new


cdef enum:
    # a major collection sizes the old space to this many times the live data, and the
    # next one comes when the old space has grown to it: retained data is copied again
    # only after promotion has added MAJOR_GROWTH - 1 times as much
    MAJOR_GROWTH = 4


cdef int abandon_collection(Machine* m, char* to, size_t tocap) noexcept nogil:
    """Stop a collection half done (the run was cancelled or timed out): the heap is
    left unusable (forwarded objects, roots into the freed space), so the run is marked
    failed and nothing reads its heap again; freeing the Run frees the old space."""
    xt_old_put(to, tocap)
    m.failed = 1
    return -1


cdef inline void trace_fields(Machine* m, Obj* o, char* lo, char* hi, char* lo2, char* hi2,
                              char** top) noexcept nogil:
    cdef uint32_t j, n
    if o.tag == T_STR or o.tag == T_BH:
        # a black hole's fields were moved to the stack when it was entered: they
        # are dead (never read: its update writes field 0 and makes it an
        # indirection), so they are not traced
        return
    n = 1 if o.tag == T_IND else o.n     # an indirection's other fields are a BH's
    for j in range(n):
        evacuate(m, &FLD(o)[j], lo, hi, lo2, hi2, top)


cdef int cheney(Machine* m, char* scan, char** top, char* lo, char* hi, char* lo2, char* hi2,
                char** next_poll) noexcept nogil:
    """Trace the objects from scan to top[0] (which grows as they are copied): 0, or -1
    when the run must stop."""
    cdef char* start = scan
    while scan < top[0]:
        if top[0] >= next_poll[0]:
            next_poll[0] = top[0] + COPY_CHUNK
            if poll(m) < 0:
                return -1
        trace_fields(m, <Obj*>scan, lo, hi, lo2, hi2, top)
        scan += obj_bytes(<Obj*>scan)
    if top[0] - start > COPY_CHUNK and poll(m) < 0:  # a long copy may have been cut short
        return -1
    return 0


cdef int minor(Machine* m) noexcept nogil:
    """Promote the nursery's live objects to the end of the old space (which has room
    for all of it): the roots, the remembered old objects and the old objects allocated
    since the last collection point into the nursery; nothing else old does."""
    cdef char* lo = m.heap
    cdef char* hi = m.hp
    cdef char* top = m.old_top
    cdef char* next_poll = top + COPY_CHUNK
    cdef int64_t i
    for i in range(m.sp):
        evacuate(m, &m.S[i], lo, hi, NULL, NULL, &top)
        if top >= next_poll:
            next_poll = top + COPY_CHUNK
            if poll(m) < 0:
                m.failed = 1
                return -1
    for i in range(m.nfns):
        evacuate(m, &m.cafs[i], lo, hi, NULL, NULL, &top)
    evacuate(m, &m.result, lo, hi, NULL, NULL, &top)
    for i in range(m.nrem):
        trace_fields(m, m.rem[i], lo, hi, NULL, NULL, &top)
    if cheney(m, m.old_scanned, &top, lo, hi, NULL, NULL, &next_poll) < 0:
        m.failed = 1
        return -1
    m.nrem = 0
    m.old_top = top
    m.old_scanned = top
    m.hp = m.heap
    return 0


cdef int major(Machine* m, size_t need) noexcept nogil:
    """Copy everything live (nursery and old space) into a new old space, sized so that
    a minor collection always fits and that retained data is copied again only once
    the old space has grown to several times it (MAJOR_GROWTH); the old space goes
    back to the system.  ``need``: room to leave for an object allocated in the old
    space right after."""
    cdef size_t used = <size_t>(m.hp - m.heap) + <size_t>(m.old_top - m.old)
    cdef size_t ceiling = m.max_heap + m.max_heap / 2
    cdef size_t tocap = MAJOR_GROWTH * used + 2 * m.cap + need
    cdef size_t live
    cdef char* to
    cdef char* top
    cdef char* next_poll
    cdef int64_t i
    if tocap > ceiling:
        tocap = ceiling
    if tocap < used + need + m.cap:
        tocap = used + need + m.cap      # past the ceiling: the limit check below fails
    to = <char*>xt_old_get(tocap)
    if to == NULL:
        return fail(m, E_HEAP, "out of memory for the heap (max_heap)")
    top = to
    next_poll = to + COPY_CHUNK
    for i in range(m.sp):
        evacuate(m, &m.S[i], m.heap, m.hp, m.old, m.old_top, &top)
        if top >= next_poll:
            next_poll = top + COPY_CHUNK
            if poll(m) < 0:
                return abandon_collection(m, to, tocap)
    for i in range(m.nfns):
        evacuate(m, &m.cafs[i], m.heap, m.hp, m.old, m.old_top, &top)
    evacuate(m, &m.result, m.heap, m.hp, m.old, m.old_top, &top)
    if cheney(m, to, &top, m.heap, m.hp, m.old, m.old_top, &next_poll) < 0:
        return abandon_collection(m, to, tocap)
    xt_old_put(m.old, m.old_cap)
    m.old = to
    m.old_top = top
    m.old_scanned = top
    m.old_cap = tocap
    m.hp = m.heap
    m.nrem = 0
    m.rem_lost = 0
    live = <size_t>(top - to)
    # within the heap limit, counting the promoted garbage the old space gathers
    m.major_at = MAJOR_GROWTH * live + 2 * m.cap
    if m.major_at > m.max_heap:
        m.major_at = m.max_heap
    m.majors += 1
    if live + need > m.max_heap:
        return fail(m, E_HEAP, "the heap limit (max_heap) was exceeded")
    return 0


cdef int collect(Machine* m, size_t old_need) noexcept nogil:
    """A minor collection, or a major one when the old space has no room for the
    nursery (plus old_need), would grow past major_at, or lost remembered objects."""
    cdef size_t nursery = <size_t>(m.hp - m.heap)
    cdef size_t old_used = <size_t>(m.old_top - m.old)
    if poll(m) < 0:
        return -1
    if (m.rem_lost or old_used + nursery + old_need > m.major_at
            or m.old_cap - old_used < nursery + old_need):
        if major(m, old_need) < 0:
            return -1
    elif minor(m) < 0:
        return -1
    m.gcs += 1
    if <size_t>(m.old_top - m.old) > m.peak:
        m.peak = <size_t>(m.old_top - m.old)
    return 0


cdef Obj* alloc_slow(Machine* m, size_t bytes) noexcept nogil:
    """The nursery is full: collect, then allocate in the nursery, or in the old space
    when the object is big (over a quarter of the nursery).  An old object allocated
    here lies past old_scanned, so the next minor collection traces it."""
    cdef Obj* o
    cdef int64_t started = xt_now_ns()
    cdef int rc
    cdef bint big = bytes > m.cap / 4
    rc = collect(m, bytes if big else 0)
    m.gc_ns += xt_now_ns() - started
    if rc < 0:
        return NULL
    if not big:
        o = <Obj*>m.hp
        m.hp += bytes
        return o
    if <size_t>(m.old_top - m.old) + bytes > m.max_heap or m.old_cap - <size_t>(m.old_top - m.old) < bytes:
        fail(m, E_HEAP, "the heap limit (max_heap) was exceeded")
        return NULL
    o = <Obj*>m.old_top
    m.old_top += bytes
    return o


cdef void remember_slow(Machine* m, Obj* o) noexcept nogil:
    cdef int64_t newcap
    cdef Obj** r
    if m.nrem == m.remcap:
        newcap = 2 * m.remcap if m.remcap else 1024
        r = <Obj**>realloc(m.rem, newcap * sizeof(Obj*))
        if r == NULL:
            m.rem_lost = 1            # the next collection is a major one: it needs none
            return
        m.rem = r
        m.remcap = newcap
    m.rem[m.nrem] = o
    m.nrem += 1


cdef inline void remember(Machine* m, Obj* o) noexcept nogil:
    """The write barrier: o just had a pointer stored into it; an old o is remembered
    so that the next minor collection traces it (the pointer may be to the nursery)."""
    if <size_t>(<char*>o - m.heap) >= m.cap:
        remember_slow(m, o)


cdef inline Obj* alloc(Machine* m, size_t bytes) noexcept nogil:
    """Allocate; may collect (callers re-read values from the stack afterwards)."""
    cdef Obj* o
    if m.hp + bytes > m.hlim:
        return alloc_slow(m, bytes)
    o = <Obj*>m.hp
    m.hp += bytes
    return o


cdef inline Obj* alloc_head(Machine* m, uint32_t tag, int32_t fn, uint32_t n,
                            uint32_t cells) noexcept nogil:
    """An object of ``cells`` 16-byte cells with its header written, fields untouched."""
    cdef Obj* o = alloc(m, sizeof(Obj) + 16 * cells)
    if o == NULL:
        return NULL
    o.tag = tag
    o.n = n
    o.fn = fn
    o.pad = 0
    return o


cdef Obj* alloc_fields(Machine* m, uint32_t tag, int32_t fn, uint32_t n) noexcept nogil:
    cdef uint32_t cells = n if n > 0 else 1
    cdef Obj* o = alloc_head(m, tag, fn, n, cells)
    if o != NULL:
        memset(FLD(o), 0, 16 * cells)
    return o


cdef inline Obj* alloc_filled(Machine* m, uint32_t tag, int32_t fn, uint32_t n) noexcept nogil:
    """As alloc_fields, for n >= 1 fields the caller writes, all of them, before anything
    else can allocate (so before the collector can see the object): not zeroed."""
    return alloc_head(m, tag, fn, n, n)


cdef Obj* alloc_str(Machine* m, size_t n) noexcept nogil:
    if n > 0x7fffffff or str_bytes(n) > m.max_heap:
        fail(m, E_HEAP, "a string too long for the heap limit (max_heap)")
        return NULL
    cdef Obj* o = alloc(m, str_bytes(n))
    if o == NULL:
        return NULL
    o.tag = T_STR
    o.n = <uint32_t>n
    o.fn = 0
    o.pad = 0
    return o


# ---- stacks ---------------------------------------------------------------------------

cdef int grow_stack(Machine* m, int64_t need) noexcept nogil:
    cdef int64_t newcap
    cdef Val* s
    if need <= m.scap:
        return 0
    if need > m.smax:
        return fail(m, E_DEPTH, "the stack depth limit (max_depth) was exceeded")
    newcap = m.scap * 2
    if newcap < need:
        newcap = need
    if newcap > m.smax:
        newcap = m.smax
    s = <Val*>realloc(m.S, newcap * sizeof(Val))
    if s == NULL:
        return fail(m, E_DEPTH, "out of memory for the stack (max_depth)")
    m.S = s
    m.scap = newcap
    return 0


cdef int grow_frames(Machine* m) noexcept nogil:
    cdef int64_t newcap
    cdef Frame* f
    if m.fp + 2 < m.fcap:
        return 0
    if m.fp + 2 >= m.fmax:
        return fail(m, E_DEPTH, "the stack depth limit (max_depth) was exceeded")
    newcap = m.fcap * 2
    if newcap > m.fmax:
        newcap = m.fmax
    f = <Frame*>realloc(m.F, newcap * sizeof(Frame))
    if f == NULL:
        return fail(m, E_DEPTH, "out of memory for the stack (max_depth)")
    m.F = f
    m.fcap = newcap
    return 0


# ---- comparisons and text -------------------------------------------------------------

cdef int str_cmp(Obj* a, Obj* b) noexcept nogil:
    cdef uint32_t n = a.n if a.n < b.n else b.n
    cdef uint32_t i
    cdef uint32_t* x = CHARS(a)
    cdef uint32_t* y = CHARS(b)
    for i in range(n):
        if x[i] != y[i]:
            return -1 if x[i] < y[i] else 1
    if a.n == b.n:
        return 0
    return -1 if a.n < b.n else 1


cdef struct Buf:
    uint32_t* data
    size_t len
    size_t cap
    int oom


cdef void buf_put(Buf* b, uint32_t c) noexcept nogil:
    cdef uint32_t* d
    if b.len >= b.cap:
        b.cap = b.cap * 2 + 64
        d = <uint32_t*>realloc(b.data, b.cap * 4)
        if d == NULL:
            b.oom = 1
            b.len = 0
            return
        b.data = d
    b.data[b.len] = c
    b.len += 1


cdef void buf_ascii(Buf* b, const char* s) noexcept nogil:
    cdef size_t i = 0
    while s[i] != 0:
        buf_put(b, <unsigned char>s[i])
        i += 1


cdef void buf_show_str(Buf* b, Obj* o) noexcept nogil:
    cdef uint32_t i, c
    cdef char hexbuf[16]
    buf_put(b, 34)
    for i in range(o.n):
        c = CHARS(o)[i]
        if c == 34:
            buf_ascii(b, "\\\"")
        elif c == 92:
            buf_ascii(b, "\\\\")
        elif c == 10:
            buf_ascii(b, "\\n")
        elif c == 9:
            buf_ascii(b, "\\t")
        elif c == 13:
            buf_ascii(b, "\\r")
        elif c < 32 or c == 127:
            snprintf(hexbuf, sizeof(hexbuf), "\\u{%x}", c)
            buf_ascii(b, hexbuf)
        else:
            buf_put(b, c)
    buf_put(b, 34)


cdef void buf_name(Buf* b, Obj* o) noexcept nogil:
    cdef uint32_t i
    for i in range(o.n):
        buf_put(b, CHARS(o)[i])


cdef void buf_show_double(Buf* b, double d) noexcept nogil:
    with gil:
        text = _show_double(d)
        for ch in text:
            buf_put(b, ord(ch))


cdef int render(Machine* m, Val root, Buf* b) noexcept nogil:
    """Show a value in normal form into b (iterative over nested lists)."""
    cdef int64_t cap = 64, n = 0, cnt, i, j, turns = 0
    cdef Val* work = <Val*>malloc(cap * sizeof(Val))
    cdef Val* grown
    cdef Val v, cur
    cdef char num[32]
    if work == NULL:
        return fail(m, E_HEAP, "out of memory while showing a value")
    work[0] = root
    n = 1
    while n > 0:
        turns += 1
        if (turns & 0xFFFF) == 0 and poll(m) < 0:
            free(work)
            return -1
        n -= 1
        v = resolve(work[n])
        if v.k == K_CLOSE:
            buf_put(b, 41)
        elif v.k == K_SPACE:
            buf_put(b, 32)
        elif v.k == K_INT:
            snprintf(num, sizeof(num), "%lld", <long long>v.u.i)
            buf_ascii(b, num)
        elif v.k == K_DBL:
            buf_show_double(b, v.u.d)
        elif v.k == K_BOOL:
            buf_ascii(b, "true" if v.u.i else "false")
        elif v.k == K_NIL:
            buf_ascii(b, "(list)")
        elif is_str(v):
            buf_show_str(b, v.u.p)
        elif v.k == K_CON:
            buf_name(b, m.con_names[v.u.i])
        elif is_data(v):
            buf_put(b, 40)
            buf_name(b, m.con_names[v.u.p.fn])
            cnt = v.u.p.n
            if n + 2 * cnt + 1 > cap:
                cap = n + 2 * cnt + 64
                grown = <Val*>realloc(work, cap * sizeof(Val))
                if grown == NULL:
                    free(work)
                    return fail(m, E_HEAP, "out of memory while showing a value")
                work = grown
            work[n].k = K_CLOSE
            n += 1
            i = n + 2 * cnt
            for j in range(cnt):
                i -= 1
                work[i].k = K_SPACE
                i -= 1
                work[i] = FLD(v.u.p)[j]
            n += 2 * cnt
        elif is_cons(v):
            buf_ascii(b, "(list")
            cnt = 0
            cur = v
            while is_cons(cur):
                cnt += 1
                cur = resolve(FLD(cur.u.p)[1])
            if n + 2 * cnt + 1 > cap:
                cap = n + 2 * cnt + 64
                grown = <Val*>realloc(work, cap * sizeof(Val))
                if grown == NULL:
                    free(work)
                    return fail(m, E_HEAP, "out of memory while showing a value")
                work = grown
            work[n].k = K_CLOSE
            n += 1
            # elements pushed in reverse so the first pops first
            i = n + 2 * cnt
            cur = v
            while is_cons(cur):
                i -= 1
                work[i].k = K_SPACE
                i -= 1
                work[i] = FLD(cur.u.p)[0]
                cur = resolve(FLD(cur.u.p)[1])
            n += 2 * cnt
        else:
            free(work)
            return fail(m, E_EVAL, "cannot show a function")
        if b.oom:
            free(work)
            return fail(m, E_HEAP, "out of memory while showing a value")
    free(work)
    return 0


cdef int push_text(Machine* m, Buf* b) noexcept nogil:
    """Allocate b as a string and push it (frees b)."""
    cdef Obj* o = alloc_str(m, b.len)
    if o == NULL:
        free(b.data)
        return -1
    if copy_chars(m, CHARS(o), b.data, b.len) < 0:
        free(b.data)
        b.data = NULL
        return -1
    free(b.data)
    b.data = NULL
    m.S[m.sp] = mk_ptr(o)
    m.sp += 1
    return 0


# ---- string built-ins -----------------------------------------------------------------

cdef enum:
    CONS_BYTES = 48      # sizeof(Obj) + 2 fields


cdef inline Obj* put_cons(char* at, Val head, Val tail) noexcept nogil:
    cdef Obj* c = <Obj*>at
    c.tag = T_CONS
    c.n = 2
    c.fn = 0
    c.pad = 0
    FLD(c)[0] = head
    FLD(c)[1] = tail
    return c


cdef inline Obj* put_str(char* at, uint32_t* chars, size_t n) noexcept nogil:
    cdef Obj* o = <Obj*>at
    o.tag = T_STR
    o.n = <uint32_t>n
    o.fn = 0
    o.pad = 0
    if n:
        memcpy(CHARS(o), chars, n * 4)
    return o


cdef char* alloc_block(Machine* m, size_t total) noexcept nogil:
    """Room for several objects at once (filled in before the next allocation)."""
    if total > m.max_heap:
        fail(m, E_HEAP, "the heap limit (max_heap) was exceeded")
        return NULL
    return <char*>alloc(m, total)


cdef int split_string(Machine* m, int64_t top) noexcept nogil:
    """S[top-2] = separator (non-empty), S[top-1] = string: S[top-2] becomes the list of
    pieces between the leftmost non-overlapping occurrences (Python's str.split)."""
    cdef Obj* sep = m.S[top - 2].u.p
    cdef Obj* s = m.S[top - 1].u.p
    cdef uint32_t plen = sep.n, slen = s.n, q = 0, kk, i, ch
    cdef uint32_t* pat = CHARS(sep)
    cdef uint32_t* txt = CHARS(s)
    cdef uint32_t* back = NULL
    cdef uint32_t* pos = NULL
    cdef uint32_t* grown
    cdef int64_t npos = 0, cap = 0, j
    cdef size_t total, start, end
    cdef char* blk
    cdef Obj* piece
    cdef Val cur
    if plen <= slen:
        if plen > 1:
            back = <uint32_t*>malloc(plen * 4)
            if back == NULL:
                return fail(m, E_HEAP, "out of memory")
            back[0] = 0
            kk = 0
            for i in range(1, plen):
                if (i & 0xFFFFF) == 0 and poll(m) < 0:
                    free(back)
                    return -1
                while kk > 0 and pat[i] != pat[kk]:
                    kk = back[kk - 1]
                if pat[i] == pat[kk]:
                    kk += 1
                back[i] = kk
        for i in range(slen):
            if (i & 0xFFFFF) == 0xFFFFF and poll(m) < 0:
                free(pos)
                free(back)
                return -1
            ch = txt[i]
            while q > 0 and pat[q] != ch:
                q = back[q - 1]
            if pat[q] == ch:
                q += 1
                if q == plen:
                    if npos >= cap:
                        cap = cap * 2 + 16
                        grown = <uint32_t*>realloc(pos, cap * 4)
                        if grown == NULL:
                            free(pos)
                            free(back)
                            return fail(m, E_HEAP, "out of memory")
                        pos = grown
                    pos[npos] = i + 1 - plen
                    npos += 1
                    q = 0
        free(back)
    total = <size_t>(npos + 1) * CONS_BYTES
    for j in range(npos + 1):
        start = 0 if j == 0 else pos[j - 1] + plen
        end = pos[j] if j < npos else slen
        total += str_bytes(end - start)
    blk = alloc_block(m, total)
    if blk == NULL:
        free(pos)
        return -1
    txt = CHARS(m.S[top - 1].u.p)        # the collector may have moved it
    cur.k = K_NIL
    cur.u.i = 0
    j = npos
    while j >= 0:
        start = 0 if j == 0 else pos[j - 1] + plen
        end = pos[j] if j < npos else slen
        if (j & 0xFFFF) == 0 and poll(m) < 0:
            m.failed = 1                 # the block is left half filled
            free(pos)
            return -1
        if (end - start) * 4 > COPY_CHUNK:
            piece = put_str(blk, txt, 0)
            piece.n = <uint32_t>(end - start)
            if copy_chars(m, CHARS(piece), txt + start, end - start) < 0:
                free(pos)
                return -1
        else:
            piece = put_str(blk, txt + start, end - start)
        blk += str_bytes(end - start)
        cur = mk_ptr(put_cons(blk, mk_ptr(piece), cur))
        blk += CONS_BYTES
        j -= 1
    free(pos)
    m.S[top - 2] = cur
    return 0


cdef int chars_list(Machine* m, int64_t top) noexcept nogil:
    """S[top-1] = string: it becomes the list of its one-code-point strings."""
    cdef size_t n = m.S[top - 1].u.p.n, i
    cdef size_t one = str_bytes(1)
    cdef char* blk
    cdef uint32_t* txt
    cdef Obj* piece
    cdef Val cur
    cur.k = K_NIL
    cur.u.i = 0
    if n:
        blk = alloc_block(m, n * (one + CONS_BYTES))
        if blk == NULL:
            return -1
        txt = CHARS(m.S[top - 1].u.p)
        i = n
        while i > 0:
            i -= 1
            if (i & 0xFFFFF) == 0 and poll(m) < 0:
                m.failed = 1             # the block is left half filled
                return -1
            piece = put_str(blk, txt + i, 1)
            blk += one
            cur = mk_ptr(put_cons(blk, mk_ptr(piece), cur))
            blk += CONS_BYTES
    m.S[top - 1] = cur
    return 0


cdef int parse_int_text(Obj* s, int64_t* out) noexcept nogil:
    """1 when s is -?[0-9]+ within 64 bits (the value in out), else 0."""
    cdef uint32_t* c = CHARS(s)
    cdef uint32_t n = s.n, i = 0
    cdef int64_t acc = 0
    cdef bint neg = False
    if n > 0 and c[0] == 45:
        neg = True
        i = 1
    if i >= n:
        return 0
    while i < n:
        if c[i] < 48 or c[i] > 57:
            return 0
        # accumulate negatively, so that INT64_MIN fits
        if xt_mul(acc, 10, &acc) or xt_sub(acc, <int64_t>(c[i] - 48), &acc):
            return 0
        i += 1
    if not neg:
        if acc == INT64_MIN_V:
            return 0
        acc = -acc
    out[0] = acc
    return 1


cdef int substring_op(Machine* m, int64_t top) noexcept nogil:
    """S[top-3] string, S[top-2] start, S[top-1] end (checked): S[top-3] becomes the
    code points [start, end), both clamped to the string."""
    cdef int64_t k = m.S[top - 3].u.p.n
    cdef int64_t x = m.S[top - 2].u.i
    cdef int64_t y = m.S[top - 1].u.i
    cdef Obj* o
    x = 0 if x < 0 else (k if x > k else x)
    y = x if y < x else (k if y > k else y)
    if x == 0 and y == k:
        return 0
    m.sp = top - 2
    o = alloc_str(m, <size_t>(y - x))
    if o == NULL:
        return -1
    if copy_chars(m, CHARS(o), CHARS(m.S[top - 3].u.p) + x, <size_t>(y - x)) < 0:
        return -1
    m.S[top - 3] = mk_ptr(o)
    return 0


cdef int compare_shallow(Machine* m, Val v, Val w) noexcept nogil:
    """The outcome of comparing two lists or data values when one look decides it
    (-1, 0, 1), 4 when their fields must be compared in a frame, or -2 (error set)."""
    cdef int64_t x, y
    if (v.k == K_NIL or is_cons(v)) and (w.k == K_NIL or is_cons(w)):
        if v.k == K_NIL or w.k == K_NIL:
            return 0 if v.k == w.k else (-1 if v.k == K_NIL else 1)      # nil < cons
        return 4
    x = con_of(v)
    y = con_of(w)
    if x < 0 or y < 0:
        fail(m, E_EVAL, "malformed program: comparison of unlike values")
        return -2
    if x != y:
        return -1 if m.con_tag[x] < m.con_tag[y] else 1                # tags first
    if v.k == K_CON and w.k == K_CON:
        return 0
    return 4


# Cold operations are called through these pointers, so that the C compiler does not
# inline them into the interpreter's loop (which would slow the hot instructions).
ctypedef int (*top_op)(Machine*, int64_t) noexcept nogil
ctypedef int (*obj_op)(Machine*, Obj*) noexcept nogil
ctypedef int (*cmp_op)(Machine*, Val, Val) noexcept nogil
cdef top_op p_substring = NULL, p_split = NULL, p_chars = NULL, p_concat_big = NULL
cdef obj_op p_not_an_int = NULL
cdef cmp_op p_compare_shallow = NULL


cdef int concat_big(Machine* m, int64_t top) noexcept nogil:
    """S[top-2] ++ S[top-1] (strings, long): S[top-2] becomes the joined string."""
    cdef Obj* o = alloc_str(m, <size_t>m.S[top - 2].u.p.n + m.S[top - 1].u.p.n)
    cdef Obj* a
    cdef Obj* b
    if o == NULL:
        return -1
    a = m.S[top - 2].u.p                # the collector may have moved them
    b = m.S[top - 1].u.p
    if copy_chars(m, CHARS(o), CHARS(a), a.n) < 0 or copy_chars(m, CHARS(o) + a.n, CHARS(b), b.n) < 0:
        return -1
    m.S[top - 2] = mk_ptr(o)
    return 0


cdef int not_an_int(Machine* m, Obj* s) noexcept nogil:
    """%parse-int's error: not an Int: "s" (the string shown)."""
    with gil:
        text = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, CHARS(s), s.n)
        (<Run>m.run).error_message = "not an Int: " + _show_string(text)
    return fail(m, E_EVAL, "error")


cdef int join_strings(Machine* m, int64_t base) noexcept nogil:
    """The NF_JOIN frame's end: S[base] the separator, S[base+1] the list in normal
    form; the joined string becomes the frame's result."""
    cdef Val sep = resolve(m.S[base])
    cdef Val cur = resolve(m.S[base + 1])
    cdef Val e
    cdef size_t total = 0, count = 0, at = 0
    cdef Obj* o
    if not is_str(sep):
        return fail(m, E_EVAL, "malformed program: join with a non-String separator")
    while is_cons(cur):
        e = resolve(FLD(cur.u.p)[0])
        if not is_str(e):
            return fail(m, E_EVAL, "malformed program: join of a non-String")
        total += e.u.p.n
        count += 1
        if (count & 0xFFFF) == 0 and poll(m) < 0:
            return -1
        cur = resolve(FLD(cur.u.p)[1])
    if cur.k != K_NIL:
        return fail(m, E_EVAL, "malformed program: join of a non-list")
    if count > 1:
        total += <size_t>sep.u.p.n * (count - 1)
    o = alloc_str(m, total)
    if o == NULL:
        return -1
    sep = resolve(m.S[base])              # the collector may have moved them
    cur = resolve(m.S[base + 1])
    count = 0
    while is_cons(cur):
        if count and sep.u.p.n:
            if copy_chars(m, CHARS(o) + at, CHARS(sep.u.p), sep.u.p.n) < 0:
                return -1
            at += sep.u.p.n
        count += 1
        e = resolve(FLD(cur.u.p)[0])
        if copy_chars(m, CHARS(o) + at, CHARS(e.u.p), e.u.p.n) < 0:
            return -1
        at += e.u.p.n
        cur = resolve(FLD(cur.u.p)[1])
    m.result = mk_ptr(o)
    m.sp = base
    m.fp -= 1
    return 2


# ---- the interpreter ------------------------------------------------------------------

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

cdef enum:
    SIGNAL_EVERY = 1 << 20     # steps between looks at pending signals (Ctrl-C)
    POLL_EVERY = 1 << 14       # steps between looks at the CancelToken and the clock


cdef int64_t step_check(Machine* m, int64_t steps) noexcept nogil:
    """Past the step limit, cancelled, past the deadline, or time to look for signals:
    the next step count to check at (also left in m.next_check), or -1 (error set).

    Called from the run loop every POLL_EVERY steps (about 0.2 ms at full speed; a
    step is one call, application or thunk entry, or one cell walked by the forcing
    and comparing frames), between steps, never inside a host call."""
    cdef int64_t nxt
    if steps > m.max_steps:
        fail(m, E_STEPS, "the step limit (max_steps) was exceeded")
        return -1
    if poll(m) < 0:
        return -1
    if steps >= m.next_signal:
        m.next_signal = steps + SIGNAL_EVERY
        with gil:
            try:
                PyErr_CheckSignals()
            except BaseException as exc:
                (<Run>m.run).pyerr = exc
                m.err = E_PY
                return -1
    nxt = steps + POLL_EVERY
    if m.max_steps < nxt:
        nxt = m.max_steps
    m.next_check = nxt
    return nxt


cdef int interp(Machine* m) noexcept nogil:
    """Run until the innermost F_STOP frame is returned into; 0 or -1 (m.err set)."""
    cdef Val* S = m.S
    cdef Frame* F = m.F
    cdef int64_t sp = m.sp
    cdef int64_t fp = m.fp
    cdef int64_t base = 0
    cdef int64_t pc = 0
    cdef int32_t* code = NULL
    cdef int32_t* allcode = m.code
    cdef FnInfo* fns = m.fns
    cdef int32_t fn = 0, f, n, op, ar, held, extra
    cdef int mode = M_RESUME
    cdef int64_t napply = 0, b, i, k, need
    cdef Val v, w, R, Z
    cdef Obj* o
    cdef Obj* o2
    cdef FnInfo* fi
    cdef Frame* fr
    cdef int64_t x, y, r
    cdef double dx, dy
    cdef int c
    cdef bint await_flag
    cdef Buf buf
    cdef int64_t steps = m.steps
    cdef int64_t next_check = m.next_check
    R.k = K_INT
    R.u.i = 0
    # A frame's slots past its arguments start as the Int 0, never as what an earlier
    # frame left in the value stack (a heap pointer, read as an Int, would leak it):
    # the verifier refuses a read before a write, this is the second line of defence.
    Z.k = K_INT
    Z.u.i = 0
    while True:
        xt_prof_mode(mode)
        if mode == M_EXEC:
            while True:
                op = code[pc]
                xt_prof_op(op)
                if op == OP_LOCAL:
                    S[sp] = S[base + code[pc + 1]]
                    sp += 1
                    pc += 2
                elif op == QOP_LOCAL2:
                    S[sp] = S[base + code[pc + 1]]
                    S[sp + 1] = S[base + code[pc + 3]]
                    sp += 2
                    pc += 4
                elif op == QOP_STORE_DROP:
                    sp -= 1
                    S[base + code[pc + 1]] = S[sp]
                    pc += 5
                elif op == QOP_LOCAL_HEAD_EVAL or op == QOP_LOCAL_TAIL_EVAL:
                    v = S[base + code[pc + 1]]
                    if not is_cons(v):
                        pc += 3               # stopped past the HEAD/TAIL, as it would
                        fail(m, E_EVAL, ("head of an empty list" if op == QOP_LOCAL_HEAD_EVAL
                                         else "tail of an empty list") if v.k == K_NIL
                             else "malformed program: head/tail of a non-list")
                        mode = M_FAIL
                        break
                    v = resolve(FLD(v.u.p)[0 if op == QOP_LOCAL_HEAD_EVAL else 1])
                    S[sp] = v
                    sp += 1
                    pc += 4
                    c = forcing(m, v)
                    if c != 0:
                        F[fp].pc = pc
                        mode = M_ENTER if c > 0 else M_FAIL
                        break
                elif op == QOP_BR_LOCAL_CONS:
                    v = S[base + code[pc + 1]]
                    if v.k == K_NIL:
                        pc += 5
                    elif is_cons(v):
                        pc = code[pc + 4]
                    else:
                        pc += 3               # stopped past the NULLP, as it would
                        fail(m, E_EVAL, "malformed program: null? of a non-list")
                        mode = M_FAIL
                        break
                elif op == QOP_EVAL_STORE:
                    v = resolve(S[sp - 1])
                    S[sp - 1] = v
                    c = forcing(m, v)
                    if c != 0:
                        pc += 1               # resumed at the STORE, which is still there
                        F[fp].pc = pc
                        mode = M_ENTER if c > 0 else M_FAIL
                        break
                    sp -= 1
                    S[base + code[pc + 2]] = v
                    pc += 3
                elif op == OP_LOCAL_EVAL:
                    v = S[base + code[pc + 1]]
                    if v.k == K_PTR:
                        v = resolve(v)
                        S[base + code[pc + 1]] = v
                    S[sp] = v
                    sp += 1
                    pc += 2
                    c = forcing(m, v)
                    if c != 0:
                        F[fp].pc = pc
                        F[fp].wb = code[pc - 1]    # the slot gets the value on return
                        mode = M_ENTER if c > 0 else M_FAIL
                        break
                elif op == OP_SUB_LI or op == OP_ADD_LI or op == OP_LT_LI or op == OP_LE_LI \
                        or op == OP_GT_LI or op == OP_GE_LI or op == OP_EQ_LI:
                    v = resolve(S[base + code[pc + 1]])
                    if v.k != K_INT:
                        fail(m, E_EVAL, "malformed program: fused operand is not an Int")
                        mode = M_FAIL
                        break
                    y = m.ints[code[pc + 2]]
                    x = v.u.i
                    pc += 3
                    if op == OP_SUB_LI:
                        if xt_sub(x, y, &r):
                            fail(m, E_EVAL, "Int overflow in -")
                            mode = M_FAIL
                            break
                        S[sp] = mk_int(r)
                    elif op == OP_ADD_LI:
                        if xt_add(x, y, &r):
                            fail(m, E_EVAL, "Int overflow in +")
                            mode = M_FAIL
                            break
                        S[sp] = mk_int(r)
                    elif op == OP_LT_LI:
                        S[sp] = mk_bool(x < y)
                    elif op == OP_LE_LI:
                        S[sp] = mk_bool(x <= y)
                    elif op == OP_GT_LI:
                        S[sp] = mk_bool(x > y)
                    elif op == OP_GE_LI:
                        S[sp] = mk_bool(x >= y)
                    else:
                        S[sp] = mk_bool(x == y)
                    sp += 1
                elif op == OP_STORE:
                    sp -= 1
                    S[base + code[pc + 1]] = S[sp]
                    pc += 2
                elif op == OP_INT:
                    S[sp] = mk_int(m.ints[code[pc + 1]])
                    sp += 1
                    pc += 2
                elif op == OP_DBL:
                    S[sp].k = K_DBL
                    S[sp].u.d = m.dbls[code[pc + 1]]
                    sp += 1
                    pc += 2
                elif op == OP_STR:
                    S[sp] = mk_ptr(m.strs[code[pc + 1]])
                    sp += 1
                    pc += 2
                elif op == OP_BOOL:
                    S[sp] = mk_bool(code[pc + 1] != 0)
                    sp += 1
                    pc += 2
                elif op == OP_NIL:
                    S[sp].k = K_NIL
                    S[sp].u.i = 0
                    sp += 1
                    pc += 1
                elif op == OP_FUN:
                    S[sp].k = K_FUN
                    S[sp].u.i = code[pc + 1]
                    sp += 1
                    pc += 2
                elif op == OP_CAF:
                    f = code[pc + 1]
                    if m.cafs[f].k == K_UNSET:
                        m.sp = sp
                        o = alloc_fields(m, T_THUNK, f, 0)
                        if o == NULL:
                            mode = M_FAIL
                            break
                        m.cafs[f] = mk_ptr(o)
                    S[sp] = m.cafs[f]
                    sp += 1
                    pc += 2
                elif op == OP_MKTHUNK or op == OP_MKPAP or op == OP_ALLOC_THUNK or op == OP_ALLOC_PAP:
                    f = code[pc + 1]
                    n = code[pc + 2]
                    m.sp = sp
                    if n > 0 and (op == OP_MKTHUNK or op == OP_MKPAP):
                        o = alloc_filled(m, T_THUNK if op == OP_MKTHUNK else T_PAP, f, n)
                    else:
                        o = alloc_fields(m, T_THUNK if (op == OP_MKTHUNK or op == OP_ALLOC_THUNK) else T_PAP, f, n)
                    if o == NULL:
                        mode = M_FAIL
                        break
                    if op == OP_MKTHUNK or op == OP_MKPAP:
                        sp -= n
                        if n:
                            memcpy(FLD(o), &S[sp], n * sizeof(Val))
                    S[sp] = mk_ptr(o)
                    sp += 1
                    pc += 3
                elif op == OP_SETFIELD:
                    sp -= 1
                    v = S[base + code[pc + 1]]
                    k = code[pc + 2]
                    if v.k != K_PTR or (v.u.p.tag != T_THUNK and v.u.p.tag != T_PAP) or k >= v.u.p.n:
                        fail(m, E_EVAL, "malformed program: SETFIELD on a bad object")
                        mode = M_FAIL
                        break
                    FLD(v.u.p)[k] = S[sp]
                    if S[sp].k == K_PTR:
                        remember(m, v.u.p)
                    pc += 3
                elif op == OP_CALL:
                    f = code[pc + 1]
                    n = code[pc + 2]
                    F[fp].pc = pc + 3
                    fi = &fns[f]
                    b = sp - n
                    need = b + fi.nlocals + fi.maxstack + 4
                    if need > m.scap:
                        m.sp = sp
                        if grow_stack(m, need) < 0:
                            mode = M_FAIL
                            break
                        S = m.S
                    if fp + 2 >= m.fcap:
                        m.fp = fp
                        if grow_frames(m) < 0:
                            mode = M_FAIL
                            break
                        F = m.F
                    steps += 1
                    if steps > next_check:
                        next_check = step_check(m, steps)
                        if next_check < 0:
                            mode = M_FAIL
                            break
                    fp += 1
                    F[fp].kind = F_CODE
                    F[fp].wb = -1
                    F[fp].fn = f
                    F[fp].base = b
                    for i in range(n, fi.nlocals):
                        S[b + i] = Z
                    sp = b + fi.nlocals
                    base = b
                    fn = f
                    code = allcode + fi.off
                    pc = fi.direct
                elif op == OP_TAILCALL:
                    f = code[pc + 1]
                    n = code[pc + 2]
                    fi = &fns[f]
                    if n:
                        memmove(&S[base], &S[sp - n], n * sizeof(Val))
                    need = base + fi.nlocals + fi.maxstack + 4
                    if need > m.scap:
                        m.sp = sp
                        if grow_stack(m, need) < 0:
                            mode = M_FAIL
                            break
                        S = m.S
                    steps += 1
                    if steps > next_check:
                        next_check = step_check(m, steps)
                        if next_check < 0:
                            mode = M_FAIL
                            break
                    F[fp].fn = f
                    for i in range(n, fi.nlocals):
                        S[base + i] = Z
                    sp = base + fi.nlocals
                    fn = f
                    code = allcode + fi.off
                    pc = fi.direct
                elif op == OP_APPLY:
                    napply = code[pc + 1]
                    F[fp].pc = pc + 2
                    mode = M_APPLY
                    break
                elif op == OP_TAILAPPLY:
                    napply = code[pc + 1]
                    memmove(&S[base], &S[sp - napply - 1], (napply + 1) * sizeof(Val))
                    sp = base + napply + 1
                    fp -= 1
                    mode = M_APPLY
                    break
                elif op == OP_HOST:
                    F[fp].pc = pc + 3
                    n = code[pc + 2]
                    if fp + 2 >= m.fcap:
                        m.fp = fp
                        if grow_frames(m) < 0:
                            mode = M_FAIL
                            break
                        F = m.F
                    fp += 1
                    F[fp].kind = F_HOST
                    F[fp].fn = code[pc + 1]
                    F[fp].pc = 0
                    F[fp].base = sp - n
                    mode = M_NATIVE
                    break
                elif op == OP_EVAL:
                    v = resolve(S[sp - 1])
                    S[sp - 1] = v
                    pc += 1
                    c = forcing(m, v)
                    if c != 0:
                        F[fp].pc = pc
                        mode = M_ENTER if c > 0 else M_FAIL
                        break
                elif op == OP_BR_LT_LI or op == OP_BR_LE_LI or op == OP_BR_GT_LI \
                        or op == OP_BR_GE_LI or op == OP_BR_EQ_LI:
                    v = resolve(S[base + code[pc + 1]])
                    if v.k != K_INT:
                        fail(m, E_EVAL, "malformed program: fused operand is not an Int")
                        mode = M_FAIL
                        break
                    y = m.ints[code[pc + 2]]
                    x = v.u.i
                    if op == OP_BR_LT_LI:
                        c = x < y
                    elif op == OP_BR_LE_LI:
                        c = x <= y
                    elif op == OP_BR_GT_LI:
                        c = x > y
                    elif op == OP_BR_GE_LI:
                        c = x >= y
                    else:
                        c = x == y
                    if c:
                        pc += 4
                    else:
                        pc = code[pc + 3]
                elif op == OP_BR_LT_LL or op == OP_BR_LE_LL or op == OP_BR_GT_LL or op == OP_BR_GE_LL:
                    v = resolve(S[base + code[pc + 1]])
                    w = resolve(S[base + code[pc + 2]])
                    if v.k == K_INT and w.k == K_INT:
                        c = -1 if v.u.i < w.u.i else (1 if v.u.i > w.u.i else 0)
                    elif v.k == K_DBL and w.k == K_DBL:
                        if v.u.d < w.u.d:
                            c = -1
                        elif v.u.d > w.u.d:
                            c = 1
                        elif v.u.d == w.u.d:
                            c = 0
                        else:
                            c = 3
                    elif is_str(v) and is_str(w):
                        c = str_cmp(v.u.p, w.u.p)
                    elif v.k == K_BOOL and w.k == K_BOOL:
                        c = <int>(v.u.i - w.u.i)
                    else:
                        fail(m, E_EVAL, "malformed program: comparison of unlike values")
                        mode = M_FAIL
                        break
                    if op == OP_BR_LT_LL:
                        c = c == -1
                    elif op == OP_BR_LE_LL:
                        c = c == -1 or c == 0
                    elif op == OP_BR_GT_LL:
                        c = c == 1
                    else:
                        c = c == 1 or c == 0
                    if c:
                        pc += 4
                    else:
                        pc = code[pc + 3]
                elif op == OP_RET or op == OP_RET_LOCAL:
                    if op == OP_RET:
                        v = resolve(S[sp - 1])
                    else:
                        v = resolve(S[base + code[pc + 1]])
                    sp = base
                    fp -= 1
                    if v.k == K_PTR and v.u.p.tag == T_THUNK:
                        S[sp] = v                 # tail-force: enter in the caller's place
                        sp += 1
                        mode = M_ENTER
                        break
                    if v.k == K_PTR and v.u.p.tag == T_BH:
                        fail(m, E_EVAL, "a value depends on itself (infinite loop)")
                        mode = M_FAIL
                        break
                    fr = &F[fp]
                    if fr.kind == F_CODE:
                        # the common case, without leaving the instruction loop
                        fn = fr.fn
                        code = allcode + fns[fn].off
                        pc = fr.pc
                        base = fr.base
                        S[sp] = v
                        sp += 1
                        if fr.wb >= 0:
                            S[base + fr.wb] = v
                            fr.wb = -1
                        continue
                    R = v
                    mode = M_RETURN
                    break
                elif op == OP_JUMP:
                    pc = code[pc + 1]
                elif op == OP_JUMPF:
                    sp -= 1
                    v = S[sp]
                    if v.k != K_BOOL:
                        fail(m, E_EVAL, "malformed program: condition is not a Bool")
                        mode = M_FAIL
                        break
                    if v.u.i:
                        pc += 2
                    else:
                        pc = code[pc + 1]
                elif op == OP_POP:
                    sp -= 1
                    pc += 1
                elif op == OP_CONS:
                    m.sp = sp
                    o = alloc_filled(m, T_CONS, 0, 2)
                    if o == NULL:
                        mode = M_FAIL
                        break
                    FLD(o)[0] = S[sp - 1]
                    FLD(o)[1] = S[sp - 2]
                    sp -= 1
                    S[sp - 1] = mk_ptr(o)
                    pc += 1
                elif op == OP_ADD or op == OP_SUB or op == OP_MUL or op == OP_DIV or op == OP_MOD:
                    v = S[sp - 2]
                    w = S[sp - 1]
                    sp -= 1
                    pc += 1
                    if v.k == K_INT and w.k == K_INT:
                        x = v.u.i
                        y = w.u.i
                        if op == OP_ADD:
                            c = xt_add(x, y, &r)
                        elif op == OP_SUB:
                            c = xt_sub(x, y, &r)
                        elif op == OP_MUL:
                            c = xt_mul(x, y, &r)
                        else:
                            if y == 0:
                                fail(m, E_EVAL, "division by zero")
                                mode = M_FAIL
                                break
                            c = 0
                            if op == OP_DIV:
                                if x == INT64_MIN_V and y == -1:
                                    c = 1
                                else:
                                    r = x / y
                            else:
                                r = 0 if y == -1 else x % y
                        if c:
                            fail(m, E_EVAL, "Int overflow")
                            mode = M_FAIL
                            break
                        S[sp - 1] = mk_int(r)
                    elif v.k == K_DBL and w.k == K_DBL and op != OP_MOD:
                        dx = v.u.d
                        dy = w.u.d
                        if op == OP_ADD:
                            dx = dx + dy
                        elif op == OP_SUB:
                            dx = dx - dy
                        elif op == OP_MUL:
                            dx = dx * dy
                        else:
                            dx = dx / dy
                        S[sp - 1].k = K_DBL
                        S[sp - 1].u.d = dx
                    else:
                        fail(m, E_EVAL, "malformed program: arithmetic on non-numbers")
                        mode = M_FAIL
                        break
                elif op == OP_NEG or op == OP_ABS:
                    v = S[sp - 1]
                    pc += 1
                    if v.k == K_INT:
                        if v.u.i == INT64_MIN_V:
                            fail(m, E_EVAL, "Int overflow")
                            mode = M_FAIL
                            break
                        if op == OP_NEG or v.u.i < 0:
                            S[sp - 1].u.i = -v.u.i
                    elif v.k == K_DBL:
                        if op == OP_NEG:
                            S[sp - 1].u.d = -v.u.d
                        else:
                            S[sp - 1].u.d = fabs(v.u.d)
                    else:
                        fail(m, E_EVAL, "malformed program: negation of a non-number")
                        mode = M_FAIL
                        break
                elif op == OP_EQ or op == OP_NEQ or op == OP_LT or op == OP_LE or op == OP_GT or op == OP_GE:
                    v = S[sp - 2]
                    w = S[sp - 1]
                    pc += 1
                    c = 2       # -1, 0, 1; 3 unordered (NaN); 4 = compare in a native frame
                    if v.k == K_INT and w.k == K_INT:
                        c = -1 if v.u.i < w.u.i else (1 if v.u.i > w.u.i else 0)
                    elif v.k == K_DBL and w.k == K_DBL:
                        c = dbl_cmp(v.u.d, w.u.d)   # NaN: every comparison false, /= true
                    elif v.k == K_BOOL and w.k == K_BOOL:
                        c = <int>(v.u.i - w.u.i)
                    elif is_str(v) and is_str(w):
                        c = str_cmp(v.u.p, w.u.p)
                    else:
                        # lists and data
                        c = p_compare_shallow(m, v, w)
                        if c == -2:
                            mode = M_FAIL
                            break
                    if c == 4:
                        # lists or data: compare field by field in a native frame
                        if fp + 2 >= m.fcap:
                            m.fp = fp
                            if grow_frames(m) < 0:
                                mode = M_FAIL
                                break
                            F = m.F
                        F[fp].pc = pc
                        fp += 1
                        F[fp].kind = F_EQ
                        F[fp].fn = op
                        F[fp].pc = 0
                        F[fp].base = sp - 2
                        mode = M_NATIVE
                        break
                    sp -= 1
                    S[sp - 1] = mk_bool(cmp_holds(op, c))
                elif op == OP_NOT:
                    v = S[sp - 1]
                    pc += 1
                    if v.k != K_BOOL:
                        fail(m, E_EVAL, "malformed program: not of a non-Bool")
                        mode = M_FAIL
                        break
                    S[sp - 1].u.i = 1 - v.u.i
                elif op == OP_XOR:
                    v = S[sp - 2]
                    w = S[sp - 1]
                    pc += 1
                    if v.k != K_BOOL or w.k != K_BOOL:
                        fail(m, E_EVAL, "malformed program: xor of non-Bools")
                        mode = M_FAIL
                        break
                    sp -= 1
                    S[sp - 1] = mk_bool(v.u.i != w.u.i)
                elif op == OP_LEN:
                    v = S[sp - 1]
                    pc += 1
                    if not is_str(v):
                        fail(m, E_EVAL, "malformed program: len of a non-String")
                        mode = M_FAIL
                        break
                    S[sp - 1] = mk_int(v.u.p.n)
                elif op == OP_CONCAT:
                    pc += 1
                    if not is_str(S[sp - 2]) or not is_str(S[sp - 1]):
                        fail(m, E_EVAL, "malformed program: concat of non-Strings")
                        mode = M_FAIL
                        break
                    m.sp = sp
                    if <size_t>S[sp - 2].u.p.n + S[sp - 1].u.p.n > COPY_CHUNK / 4:
                        if p_concat_big(m, sp) < 0:      # copies that poll as they go
                            mode = M_FAIL
                            break
                        sp -= 1
                        continue
                    o = alloc_str(m, <size_t>S[sp - 2].u.p.n + S[sp - 1].u.p.n)
                    if o == NULL:
                        mode = M_FAIL
                        break
                    o2 = S[sp - 2].u.p
                    memcpy(CHARS(o), CHARS(o2), o2.n * 4)
                    memcpy(CHARS(o) + o2.n, CHARS(S[sp - 1].u.p), S[sp - 1].u.p.n * 4)
                    sp -= 1
                    S[sp - 1] = mk_ptr(o)
                elif op == OP_SHOW:
                    pc += 1
                    v = S[sp - 1]
                    if v.k == K_NIL or is_cons(v) or is_data(v):
                        if fp + 2 >= m.fcap:
                            m.fp = fp
                            if grow_frames(m) < 0:
                                mode = M_FAIL
                                break
                            F = m.F
                        F[fp].pc = pc
                        fp += 1
                        F[fp].kind = F_NF
                        F[fp].fn = NF_SHOW
                        F[fp].pc = 0
                        F[fp].base = sp - 1
                        mode = M_NATIVE
                        break
                    buf.data = NULL
                    buf.len = 0
                    buf.cap = 0
                    buf.oom = 0
                    m.sp = sp
                    if render(m, v, &buf) < 0:
                        free(buf.data)
                        mode = M_FAIL
                        break
                    sp -= 1
                    m.sp = sp
                    if push_text(m, &buf) < 0:
                        mode = M_FAIL
                        break
                    sp += 1
                elif op == OP_TODOUBLE:
                    v = S[sp - 1]
                    pc += 1
                    if v.k != K_INT:
                        fail(m, E_EVAL, "malformed program: to-double of a non-Int")
                        mode = M_FAIL
                        break
                    S[sp - 1].k = K_DBL
                    S[sp - 1].u.d = <double>v.u.i
                elif op == OP_TRUNCATE:
                    v = S[sp - 1]
                    pc += 1
                    if v.k != K_DBL:
                        fail(m, E_EVAL, "malformed program: truncate of a non-Double")
                        mode = M_FAIL
                        break
                    if not (v.u.d >= -9223372036854775808.0 and v.u.d < 9223372036854775808.0):
                        fail(m, E_EVAL, "truncate: the Double is NaN, infinite or outside the Int range")
                        mode = M_FAIL
                        break
                    S[sp - 1] = mk_int(<int64_t>v.u.d)
                elif op == OP_ERROR:
                    v = S[sp - 1]
                    if is_str(v):
                        m.sp = sp
                        with gil:
                            msg = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, CHARS(v.u.p), v.u.p.n)
                            (<Run>m.run).error_message = msg
                        fail(m, E_EVAL, "error")
                    else:
                        fail(m, E_EVAL, "error")
                    mode = M_FAIL
                    break
                elif op == OP_BOTTOM:
                    fail(m, E_EVAL, "bottom was forced")
                    mode = M_FAIL
                    break
                elif op == OP_HEAD or op == OP_TAIL:
                    v = S[sp - 1]
                    pc += 1
                    if v.k == K_NIL:
                        fail(m, E_EVAL, "head of an empty list" if op == OP_HEAD else "tail of an empty list")
                        mode = M_FAIL
                        break
                    if not is_cons(v):
                        fail(m, E_EVAL, "malformed program: head/tail of a non-list")
                        mode = M_FAIL
                        break
                    S[sp - 1] = FLD(v.u.p)[0 if op == OP_HEAD else 1]
                elif op == OP_NULLP:
                    v = S[sp - 1]
                    pc += 1
                    if v.k == K_NIL:
                        S[sp - 1] = mk_bool(True)
                    elif is_cons(v):
                        S[sp - 1] = mk_bool(False)
                    else:
                        fail(m, E_EVAL, "malformed program: null? of a non-list")
                        mode = M_FAIL
                        break
                elif op == OP_MKCON:
                    f = code[pc + 1]
                    n = code[pc + 2]
                    if f < 0 or f >= m.ncons or n != m.con_arity[f]:
                        fail(m, E_EVAL, "malformed program: MKCON of a bad constructor")
                        mode = M_FAIL
                        break
                    pc += 3
                    if n == 0:
                        S[sp].k = K_CON
                        S[sp].u.i = f
                        sp += 1
                    else:
                        m.sp = sp
                        o = alloc_filled(m, T_DATA, f, n)
                        if o == NULL:
                            mode = M_FAIL
                            break
                        sp -= n
                        memcpy(FLD(o), &S[sp], n * sizeof(Val))
                        S[sp] = mk_ptr(o)
                        sp += 1
                elif op == OP_BR_NCON:
                    k = base + code[pc + 1]
                    v = S[k]
                    if v.k == K_PTR:
                        v = resolve(v)
                        S[k] = v
                    x = con_of(v)
                    if x < 0:
                        fail(m, E_EVAL, "malformed program: BR_NCON of a value that is not data")
                        mode = M_FAIL
                        break
                    if x == code[pc + 2]:
                        pc += 4
                    else:
                        pc = code[pc + 3]
                elif op == OP_FIELD:
                    v = resolve(S[sp - 1])
                    k = code[pc + 1]
                    if not is_data(v) or k < 0 or k >= v.u.p.n:
                        fail(m, E_EVAL, "malformed program: FIELD of a value without that field")
                        mode = M_FAIL
                        break
                    S[sp - 1] = FLD(v.u.p)[k]
                    pc += 2
                elif op == OP_SUBSTRING:
                    pc += 1
                    if not is_str(S[sp - 3]) or S[sp - 2].k != K_INT or S[sp - 1].k != K_INT:
                        fail(m, E_EVAL, "malformed program: substring of non-String or non-Int")
                        mode = M_FAIL
                        break
                    m.sp = sp
                    if p_substring(m, sp) < 0:
                        mode = M_FAIL
                        break
                    sp -= 2
                elif op == OP_SPLIT:
                    pc += 1
                    if not is_str(S[sp - 2]) or not is_str(S[sp - 1]):
                        fail(m, E_EVAL, "malformed program: split of non-Strings")
                        mode = M_FAIL
                        break
                    if S[sp - 2].u.p.n == 0:
                        fail(m, E_EVAL, "split: the separator is empty")
                        mode = M_FAIL
                        break
                    m.sp = sp
                    if p_split(m, sp) < 0:
                        mode = M_FAIL
                        break
                    sp -= 1
                elif op == OP_CHARS:
                    pc += 1
                    if not is_str(S[sp - 1]):
                        fail(m, E_EVAL, "malformed program: chars of a non-String")
                        mode = M_FAIL
                        break
                    m.sp = sp
                    if p_chars(m, sp) < 0:
                        mode = M_FAIL
                        break
                elif op == OP_JOIN:
                    pc += 1
                    v = S[sp - 1]
                    if not is_str(S[sp - 2]) or not (v.k == K_NIL or is_cons(v)):
                        fail(m, E_EVAL, "malformed program: join of a non-String or non-list")
                        mode = M_FAIL
                        break
                    # force the list to normal form in a native frame, then join
                    if fp + 2 >= m.fcap:
                        m.fp = fp
                        if grow_frames(m) < 0:
                            mode = M_FAIL
                            break
                        F = m.F
                    F[fp].pc = pc
                    fp += 1
                    F[fp].kind = F_NF
                    F[fp].fn = NF_JOIN
                    F[fp].pc = 0
                    F[fp].base = sp - 2
                    mode = M_NATIVE
                    break
                elif op == OP_INTP or op == OP_PARSEINT:
                    pc += 1
                    v = S[sp - 1]
                    if not is_str(v):
                        fail(m, E_EVAL, "malformed program: %int?/%parse-int of a non-String")
                        mode = M_FAIL
                        break
                    c = parse_int_text(v.u.p, &r)
                    if op == OP_INTP:
                        S[sp - 1] = mk_bool(c)
                    elif c:
                        S[sp - 1] = mk_int(r)
                    else:
                        m.sp = sp
                        p_not_an_int(m, v.u.p)
                        mode = M_FAIL
                        break
                else:
                    fail(m, E_EVAL, "malformed program: bad opcode")
                    mode = M_FAIL
                    break
        elif mode == M_RETURN:
            fr = &F[fp]
            if fr.kind == F_CODE:
                fn = fr.fn
                fi = &fns[fn]
                code = allcode + fi.off
                pc = fr.pc
                base = fr.base
                S[sp] = R
                sp += 1
                if fr.wb >= 0:
                    S[base + fr.wb] = R
                    fr.wb = -1
                mode = M_EXEC
            elif fr.kind == F_UPDATE:
                o = S[fr.base].u.p
                o.tag = T_IND
                FLD(o)[0] = R
                if R.k == K_PTR:
                    remember(m, o)
                sp = fr.base
                fp -= 1
            elif fr.kind == F_APPLY:
                n = fr.fn
                b = fr.base
                memmove(&S[b + 1], &S[b], n * sizeof(Val))
                S[b] = R
                sp = b + n + 1
                fp -= 1
                napply = n
                mode = M_APPLY
            elif fr.kind == F_STOP:
                m.result = R
                m.sp = fr.base
                m.fp = fp - 1
                m.steps = steps
                return 0
            else:
                S[sp] = R
                sp += 1
                mode = M_NATIVE
        elif mode == M_ENTER:
            # the thunk to evaluate is at S[sp-1]; that slot becomes its update frame
            o = S[sp - 1].u.p
            f = o.fn
            n = <int32_t>o.n
            fi = &fns[f]
            need = sp + n + fi.nlocals + fi.maxstack + 4
            if need > m.scap:
                m.sp = sp
                if grow_stack(m, need) < 0:
                    mode = M_FAIL
                    continue
                S = m.S
            if fp + 3 >= m.fcap:
                m.fp = fp
                if grow_frames(m) < 0:
                    mode = M_FAIL
                    continue
                F = m.F
            steps += 1
            if steps > next_check:
                next_check = step_check(m, steps)
                if next_check < 0:
                    mode = M_FAIL
                    continue
            fp += 1
            F[fp].kind = F_UPDATE
            F[fp].base = sp - 1
            if n:
                memcpy(&S[sp], FLD(o), n * sizeof(Val))   # the collector skips a
                                                          # black hole's fields
            o.tag = T_BH
            b = sp
            fp += 1
            F[fp].kind = F_CODE
            F[fp].wb = -1
            F[fp].fn = f
            F[fp].base = b
            for i in range(n, fi.nlocals):
                S[b + i] = Z
            sp = b + fi.nlocals
            base = b
            fn = f
            code = allcode + fi.off
            pc = 0
            mode = M_EXEC
        elif mode == M_APPLY:
            n = <int32_t>napply
            b = sp - n - 1
            v = resolve(S[b])
            if v.k == K_FUN:
                f = <int32_t>v.u.i
                held = 0
                o = NULL
            elif v.k == K_PTR and v.u.p.tag == T_PAP:
                o = v.u.p
                f = o.fn
                held = <int32_t>o.n
            else:
                fail(m, E_EVAL, "malformed program: applying a value that is not a function")
                mode = M_FAIL
                continue
            fi = &fns[f]
            ar = fi.arity
            if held + n < ar:
                m.sp = sp
                o2 = alloc_fields(m, T_PAP, f, held + n)
                if o2 == NULL:
                    mode = M_FAIL
                    continue
                v = resolve(S[b])
                if held:
                    memcpy(FLD(o2), FLD(v.u.p), held * sizeof(Val))
                memcpy(FLD(o2) + held, &S[b + 1], n * sizeof(Val))
                sp = b
                R = mk_ptr(o2)
                mode = M_RETURN
                continue
            need = b + held + n + fi.nlocals + fi.maxstack + 4
            if need > m.scap:
                m.sp = sp
                if grow_stack(m, need) < 0:
                    mode = M_FAIL
                    continue
                S = m.S
                v = resolve(S[b])
                if held:
                    o = v.u.p
            if fp + 3 >= m.fcap:
                m.fp = fp
                if grow_frames(m) < 0:
                    mode = M_FAIL
                    continue
                F = m.F
            extra = held + n - ar
            if extra == 0:
                if held == 0:
                    memmove(&S[b], &S[b + 1], n * sizeof(Val))
                else:
                    memmove(&S[b + held], &S[b + 1], n * sizeof(Val))
                    memcpy(&S[b], FLD(o), held * sizeof(Val))
            else:
                # [f a1..an] -> [extras][held][a1..ak], with an F_APPLY frame for extras
                if n > m.tmpcap:
                    free(m.tmp)
                    m.tmp = <Val*>malloc(n * sizeof(Val))
                    if m.tmp == NULL:
                        m.tmpcap = 0
                        fail(m, E_HEAP, "out of memory")
                        mode = M_FAIL
                        continue
                    m.tmpcap = n
                memcpy(m.tmp, &S[b + 1], n * sizeof(Val))
                memcpy(&S[b], m.tmp + (n - extra), extra * sizeof(Val))
                if held:
                    memcpy(&S[b + extra], FLD(o), held * sizeof(Val))
                memcpy(&S[b + extra + held], m.tmp, (n - extra) * sizeof(Val))
                fp += 1
                F[fp].kind = F_APPLY
                F[fp].fn = extra
                F[fp].base = b
                b += extra
            steps += 1
            if steps > next_check:
                next_check = step_check(m, steps)
                if next_check < 0:
                    mode = M_FAIL
                    continue
            fp += 1
            F[fp].kind = F_CODE
            F[fp].wb = -1
            F[fp].fn = f
            F[fp].base = b
            for i in range(ar, fi.nlocals):
                S[b + i] = Z
            sp = b + fi.nlocals
            base = b
            fn = f
            code = allcode + fi.off
            pc = 0
            mode = M_EXEC
        elif mode == M_RESUME:
            fr = &F[fp]
            if fr.kind == F_CODE:
                fn = fr.fn
                code = allcode + fns[fn].off
                pc = fr.pc
                base = fr.base
                mode = M_EXEC
            else:
                mode = M_NATIVE
        elif mode == M_NATIVE:
            m.sp = sp
            m.fp = fp
            m.steps = steps
            c = p_native_step(m)
            steps = m.steps
            next_check = m.next_check
            S = m.S
            F = m.F
            sp = m.sp
            fp = m.fp
            if c < 0:
                mode = M_FAIL
            elif c == 1:
                mode = M_ENTER
            else:
                R = m.result
                mode = M_RETURN
        else:   # M_FAIL
            m.sp = sp
            m.fp = fp
            m.steps = steps
            if m.err_fn < 0:
                m.err_fn = fn
                m.err_pc = pc
            return -1


ctypedef int (*machine_op)(Machine*) noexcept nogil
cdef machine_op p_native_step = NULL


cdef int native_step(Machine* m) noexcept nogil:
    """Advance the native frame on top: 1 = enter the thunk at the stack top,
    2 = finished (value in m.result, frame popped), -1 = error."""
    cdef Frame* fr = &m.F[m.fp]
    cdef int64_t base = fr.base, bottom, ca, cb
    cdef Val v, a, w
    cdef Val* S
    cdef Obj* o
    cdef Obj* o2
    cdef int c
    cdef Buf buf
    cdef int32_t h, i, n
    if fr.kind == F_NF:
        # the root is at S[bottom - 1] (for NF_JOIN the separator lies below it)
        bottom = base + 2 if fr.fn == NF_JOIN else base + 1
        if fr.pc == 0:
            # start the work list with the root
            if grow_stack(m, m.sp + 8) < 0:
                return -1
            m.S[m.sp] = m.S[bottom - 1]
            m.sp += 1
            fr.pc = 1
        S = m.S
        while m.sp > bottom:
            v = resolve(S[m.sp - 1])
            S[m.sp - 1] = v
            if v.k == K_PTR:
                if v.u.p.tag == T_THUNK:
                    return 1
                if v.u.p.tag == T_BH:
                    return fail(m, E_EVAL, "a value depends on itself (infinite loop)")
                if v.u.p.tag == T_CONS:
                    m.steps += 1
                    if m.steps > m.next_check and step_check(m, m.steps) < 0:
                        return -1
                    if m.sp + 4 > m.scap:
                        if grow_stack(m, m.sp + 4) < 0:
                            return -1
                        S = m.S
                    S[m.sp - 1] = FLD(v.u.p)[1]
                    S[m.sp] = FLD(v.u.p)[0]
                    m.sp += 1
                    continue
                if v.u.p.tag == T_DATA:
                    # fields in order: field 0 on top, the last in this slot
                    m.steps += 1
                    if m.steps > m.next_check and step_check(m, m.steps) < 0:
                        return -1
                    n = <int32_t>v.u.p.n
                    if m.sp + n + 4 > m.scap:
                        if grow_stack(m, m.sp + n + 4) < 0:
                            return -1
                        S = m.S
                    o = v.u.p
                    S[m.sp - 1] = FLD(o)[n - 1]
                    for i in range(n - 1):
                        S[m.sp + i] = FLD(o)[n - 2 - i]
                    m.sp += n - 1
                    continue
            m.sp -= 1
        if fr.fn == NF_JOIN:
            return join_strings(m, base)
        v = resolve(S[base])
        if fr.fn == NF_SHOW:
            buf.data = NULL
            buf.len = 0
            buf.cap = 0
            buf.oom = 0
            if render(m, v, &buf) < 0:
                free(buf.data)
                return -1
            m.sp = base
            if push_text(m, &buf) < 0:
                return -1
            m.sp -= 1
            v = m.S[base]
        m.result = v
        m.sp = base
        m.fp -= 1
        return 2
    if fr.kind == F_EQ:
        # pairs (a, b) from base, the next to compare on top; fr.pc: 0 working, 2/3
        # awaiting a/b (value on top); fr.fn: the comparison (OP_EQ .. OP_GE).  Stops
        # at the first pair that differs (or is unordered), forcing nothing beyond it.
        S = m.S
        if fr.pc == 2:
            m.sp -= 1
            S[m.sp - 2] = S[m.sp]
            fr.pc = 0
        elif fr.pc == 3:
            m.sp -= 1
            S[m.sp - 1] = S[m.sp]
            fr.pc = 0
        c = 0       # -1, 0, 1, or 3 unordered: the outcome so far
        while m.sp > base:
            a = resolve(S[m.sp - 2])
            w = resolve(S[m.sp - 1])
            S[m.sp - 2] = a
            S[m.sp - 1] = w
            if a.k == K_PTR and (a.u.p.tag == T_THUNK or a.u.p.tag == T_BH):
                if a.u.p.tag == T_BH:
                    return fail(m, E_EVAL, "a value depends on itself (infinite loop)")
                if grow_stack(m, m.sp + 4) < 0:
                    return -1
                m.S[m.sp] = a
                m.sp += 1
                fr.pc = 2
                return 1
            if w.k == K_PTR and (w.u.p.tag == T_THUNK or w.u.p.tag == T_BH):
                if w.u.p.tag == T_BH:
                    return fail(m, E_EVAL, "a value depends on itself (infinite loop)")
                if grow_stack(m, m.sp + 4) < 0:
                    return -1
                m.S[m.sp] = w
                m.sp += 1
                fr.pc = 3
                return 1
            m.steps += 1
            if m.steps > m.next_check and step_check(m, m.steps) < 0:
                return -1
            if a.k == K_INT and w.k == K_INT:
                c = -1 if a.u.i < w.u.i else (1 if a.u.i > w.u.i else 0)
            elif a.k == K_DBL and w.k == K_DBL:
                c = dbl_cmp(a.u.d, w.u.d)
            elif a.k == K_BOOL and w.k == K_BOOL:
                c = <int>(a.u.i - w.u.i)
            elif is_str(a) and is_str(w):
                c = str_cmp(a.u.p, w.u.p)
            elif is_cons(a) and is_cons(w):
                # heads first, then the tails in their place
                if m.sp + 4 > m.scap:
                    if grow_stack(m, m.sp + 4) < 0:
                        return -1
                    S = m.S
                S[m.sp - 2] = FLD(a.u.p)[1]
                S[m.sp - 1] = FLD(w.u.p)[1]
                S[m.sp] = FLD(a.u.p)[0]
                S[m.sp + 1] = FLD(w.u.p)[0]
                m.sp += 2
                continue
            elif (a.k == K_NIL or is_cons(a)) and (w.k == K_NIL or is_cons(w)):
                c = 0 if a.k == w.k else (-1 if a.k == K_NIL else 1)     # nil < cons
            else:
                ca = con_of(a)
                cb = con_of(w)
                if ca < 0 or cb < 0:
                    return fail(m, E_EVAL, "malformed program: comparison of unlike values")
                if ca != cb:
                    c = -1 if m.con_tag[ca] < m.con_tag[cb] else 1    # tags first
                elif a.k == K_PTR:
                    if w.k != K_PTR or a.u.p.n != w.u.p.n:
                        return fail(m, E_EVAL, "malformed program: comparison of unlike values")
                    # fields left to right: field 0 on top, the last in this pair's place
                    n = <int32_t>a.u.p.n
                    if m.sp + 2 * n + 4 > m.scap:
                        if grow_stack(m, m.sp + 2 * n + 4) < 0:
                            return -1
                        S = m.S
                    o = a.u.p
                    o2 = w.u.p
                    S[m.sp - 2] = FLD(o)[n - 1]
                    S[m.sp - 1] = FLD(o2)[n - 1]
                    for i in range(n - 1):
                        S[m.sp + 2 * i] = FLD(o)[n - 2 - i]
                        S[m.sp + 2 * i + 1] = FLD(o2)[n - 2 - i]
                    m.sp += 2 * (n - 1)
                    continue
                elif w.k == K_PTR:
                    return fail(m, E_EVAL, "malformed program: comparison of unlike values")
                else:
                    c = 0
            if c != 0:
                break
            m.sp -= 2
        m.result = mk_bool(cmp_holds(fr.fn, c))
        m.sp = base
        m.fp -= 1
        return 2
    if fr.kind == F_HOST:
        # fr.pc = 2 * next argument + awaiting flag
        h = fr.fn
        n = m.host_arity[h]
        i = <int32_t>(fr.pc >> 1)
        if fr.pc & 1:
            m.sp -= 1
            m.S[base + i] = m.S[m.sp]
            i += 1
        while i < n and not m.host_strict_flags[h][i]:
            i += 1
        if i < n:
            # force argument i to normal form in an NF frame above
            if grow_stack(m, m.sp + 8) < 0 or grow_frames(m) < 0:
                return -1
            fr = &m.F[m.fp]
            fr.pc = 2 * i + 1
            m.S[m.sp] = m.S[base + i]
            m.fp += 1
            m.F[m.fp].kind = F_NF
            m.F[m.fp].fn = NF_VALUE
            m.F[m.fp].pc = 0
            m.F[m.fp].base = m.sp
            m.sp += 1
            return native_step(m)
        if poll(m) < 0:         # between steps: a host call, once begun, runs to its end
            return -1
        with gil:
            c = (<Run>m.run).call_host(h, base, n)
        if c < 0:
            return -1
        # call_host pushed the result
        m.result = m.S[m.sp - 1]
        m.sp = base
        m.fp -= 1
        return 2
    return fail(m, E_EVAL, "malformed machine state")


# ---- loading programs -----------------------------------------------------------------

cdef class Image:
    """A Program's code and constants in C arrays, shared read-only by every run."""
    cdef int32_t* code
    cdef FnInfo* fns
    cdef int32_t nfns
    cdef int64_t* ints
    cdef double* dbls
    cdef Obj** strs
    cdef int32_t nstrs
    cdef int32_t entry
    cdef int32_t nhosts
    cdef int32_t* host_arity
    cdef char** host_strict
    cdef int32_t ncons
    cdef int32_t* con_arity
    cdef int32_t* con_tag
    cdef Obj** con_names
    cdef readonly object host_names
    cdef readonly object con_names_py     # constructor name by index (for to_py)
    cdef readonly object nullary_py       # the shared Data of each nullary constructor
    cdef readonly object program

    def __cinit__(self, program):
        cdef int64_t total = 0, off = 0, i, j
        cdef Obj* o
        cdef bint profiling = XT_PROFILED
        functions = program.functions
        self.nfns = len(functions)
        for fobj in functions:
            total += len(fobj.code)
        self.code = <int32_t*>malloc((total + 1) * sizeof(int32_t))
        self.fns = <FnInfo*>malloc(self.nfns * sizeof(FnInfo))
        self.ints = <int64_t*>malloc((len(program.ints) + 1) * sizeof(int64_t))
        self.dbls = <double*>malloc((len(program.doubles) + 1) * sizeof(double))
        self.nstrs = len(program.strings)
        self.strs = <Obj**>malloc((self.nstrs + 1) * sizeof(Obj*))
        self.nhosts = len(program.hosts)
        self.host_arity = <int32_t*>malloc((self.nhosts + 1) * sizeof(int32_t))
        self.host_strict = <char**>malloc((self.nhosts + 1) * sizeof(char*))
        if (self.code == NULL or self.fns == NULL or self.ints == NULL or self.dbls == NULL
                or self.strs == NULL or self.host_arity == NULL or self.host_strict == NULL):
            raise MemoryError()
        memset(self.strs, 0, (self.nstrs + 1) * sizeof(Obj*))
        memset(self.host_strict, 0, (self.nhosts + 1) * sizeof(char*))
        for i, fobj in enumerate(functions):
            self.fns[i].arity = fobj.arity
            self.fns[i].nlocals = fobj.frame_size
            self.fns[i].maxstack = fobj.max_stack
            self.fns[i].off = off
            self.fns[i].direct = _prologue_length(fobj.code)
            for x in fobj.code:
                self.code[off] = x
                off += 1
            if not profiling:
                # (a profiling build counts the instructions the compiler wrote)
                for j, q in quicken(fobj.code):
                    self.code[self.fns[i].off + j] = q
        for i, x in enumerate(program.ints):
            self.ints[i] = x
        for i, x in enumerate(program.doubles):
            self.dbls[i] = x
        for i, s in enumerate(program.strings):
            o = <Obj*>malloc(str_bytes(len(s)))
            if o == NULL:
                raise MemoryError()
            o.tag = T_STR
            o.n = len(s)
            o.fn = 0
            o.pad = 0
            for j, ch in enumerate(s):
                CHARS(o)[j] = ord(ch)
            self.strs[i] = o
        for i, href in enumerate(program.hosts):
            self.host_arity[i] = len(href.strictness)
            self.host_strict[i] = <char*>malloc(len(href.strictness) + 1)
            if self.host_strict[i] == NULL:
                raise MemoryError()
            for j, flag in enumerate(href.strictness):
                self.host_strict[i][j] = 1 if flag else 0
        self.host_names = [h.name for h in program.hosts]
        cons = program.constructors()
        self.ncons = len(cons)
        self.con_arity = <int32_t*>malloc((self.ncons + 1) * sizeof(int32_t))
        self.con_tag = <int32_t*>malloc((self.ncons + 1) * sizeof(int32_t))
        self.con_names = <Obj**>malloc((self.ncons + 1) * sizeof(Obj*))
        if self.con_arity == NULL or self.con_tag == NULL or self.con_names == NULL:
            raise MemoryError()
        memset(self.con_names, 0, (self.ncons + 1) * sizeof(Obj*))
        names = []
        nullary = []
        for i, (dtype, tag, con) in enumerate(cons):
            self.con_arity[i] = len(con.field_types)
            self.con_tag[i] = tag
            o = <Obj*>malloc(str_bytes(len(con.name)))
            if o == NULL:
                raise MemoryError()
            o.tag = T_STR
            o.n = len(con.name)
            o.fn = 0
            o.pad = 0
            for j, ch in enumerate(con.name):
                CHARS(o)[j] = ord(ch)
            self.con_names[i] = o
            names.append(con.name)
            nullary.append(_Data(con.name) if not con.field_types else None)
        self.con_names_py = names
        self.nullary_py = nullary
        self.program = program
        self.entry = program.entry

    def __dealloc__(self):
        cdef int32_t i
        if self.strs != NULL:
            for i in range(self.nstrs):
                free(self.strs[i])
        if self.host_strict != NULL:
            for i in range(self.nhosts):
                free(self.host_strict[i])
        if self.con_names != NULL:
            for i in range(self.ncons):
                free(self.con_names[i])
        free(self.con_names)
        free(self.con_arity)
        free(self.con_tag)
        free(self.code)
        free(self.fns)
        free(self.ints)
        free(self.dbls)
        free(self.strs)
        free(self.host_arity)
        free(self.host_strict)


cdef object _LENGTHS = None


def quicken(code):
    """The superinstructions for a function's code: a list of (pc, QOP) to write over
    the opcode at pc, left to right, sequences not overlapping.  Reads only what the
    verifier has accepted (instructions and their operands as the code lays them out)."""
    global _LENGTHS
    if _LENGTHS is None:
        from .opcodes import OPERANDS
        _LENGTHS = {int(op): 1 + len(kinds) for op, kinds in OPERANDS.items()}
    lengths = _LENGTHS
    out = []
    n = len(code)
    pc = 0
    while pc < n:
        op = code[pc]
        nxt = pc + lengths[op]
        op2 = code[nxt] if nxt < n else -1
        op3 = code[nxt + 1] if nxt + 1 < n else -1
        q = -1
        span = 0
        if op == OP_LOCAL:
            if op2 == OP_LOCAL:
                q, span = QOP_LOCAL2, 4
            elif op2 == OP_HEAD and op3 == OP_EVAL:
                q, span = QOP_LOCAL_HEAD_EVAL, 4
            elif op2 == OP_TAIL and op3 == OP_EVAL:
                q, span = QOP_LOCAL_TAIL_EVAL, 4
            elif op2 == OP_NULLP and op3 == OP_JUMPF:
                q, span = QOP_BR_LOCAL_CONS, 5
        elif op == OP_STORE:
            if op2 == OP_LOCAL and code[nxt + 1] == code[pc + 1] and nxt + 2 < n \
                    and code[nxt + 2] == OP_POP:
                q, span = QOP_STORE_DROP, 5
        elif op == OP_EVAL:
            if op2 == OP_STORE:
                q, span = QOP_EVAL_STORE, 3
        if q >= 0 and pc + span <= n:
            out.append((pc, q))
            pc += span
        else:
            pc = nxt
    return out


def _prologue_length(code):
    """Length of the leading LOCAL_EVAL i; STORE i pairs that force strict parameters:
    direct callers (CALL, TAILCALL) pass those already evaluated and skip it."""
    pc = 0
    while (pc + 3 < len(code) and code[pc] == OP_LOCAL_EVAL and code[pc + 2] == OP_STORE
           and code[pc + 1] == code[pc + 3]):
        pc += 4
    return pc


cdef object _show_double = None
cdef object _show_string = None
cdef object _Data = None
cdef object _errors = None
cdef object _error_place = None


def _init():
    global _show_double, _show_string, _Data, _errors, _error_place
    global p_substring, p_split, p_chars, p_not_an_int, p_compare_shallow, p_concat_big
    global p_copy_chunked, p_native_step
    p_substring = substring_op
    p_split = split_string
    p_concat_big = concat_big
    p_native_step = native_step
    p_copy_chunked = copy_chunked
    p_chars = chars_list
    p_not_an_int = not_an_int
    p_compare_shallow = compare_shallow
    from . import values, errors
    _show_double = values.show_double
    _show_string = values.show_string
    _Data = values.Data
    _errors = errors
    from .program import error_place
    _error_place = error_place


_init()


cdef object _CONS = object()


cdef class _MkCon:
    """push_py's marker: build constructor con from the fields on the stack."""
    cdef int64_t con

    def __cinit__(self, int64_t con):
        self.con = con


cdef class LazyArg:
    """A lazy host-function argument: calling it forces the value (once, shared)."""
    cdef Run run
    cdef int64_t slot
    cdef public bint valid

    def __call__(self):
        if not self.valid:
            raise _errors.EvaluationError("a lazy argument was used after its host call returned")
        return self.run.force_slot(self.slot)


cdef class CancelToken:
    """Stops the runs it is passed to (``Program.run(..., cancel=token)``).

    ``cancel()`` may be called from any thread, any number of times, before or during
    a run: the run stops at its next check (within a millisecond or so; a host function
    call in progress is never interrupted, the check comes after it) and raises
    ``LimitExceeded`` with ``limit="cancelled"``.  A token stays cancelled; one token
    may be shared by several runs to stop them all."""
    cdef int flag            # read by the running engine without the GIL (atomically)

    def cancel(self):
        """Ask every run using this token to stop."""
        xt_flag_set(&self.flag, 1)

    @property
    def cancelled(self):
        """Whether cancel() has been called."""
        return xt_flag_get(&self.flag) != 0

    def __repr__(self):
        return f"<CancelToken {'cancelled' if self.cancelled else 'active'}>"


cdef class Run:
    """One evaluation: a machine with its own heap and stacks."""
    cdef Machine* m
    cdef Image image
    cdef object hosts
    cdef object pyerr
    cdef public object error_message
    cdef list lazies
    cdef object owner        # the thread running the program: only it may force lazies
    cdef CancelToken token   # kept alive while the machine reads its flag
    cdef object timeout      # seconds (for the error message), or None

    def __cinit__(self, Image image, hosts, int64_t max_steps, int64_t max_heap, int64_t max_depth,
                  CancelToken cancel=None, int64_t deadline=INT64_MAX_V, timeout=None):
        cdef Machine* m = <Machine*>malloc(sizeof(Machine))
        if m == NULL:
            raise MemoryError()
        memset(m, 0, sizeof(Machine))
        self.m = m
        self.image = image
        self.hosts = hosts
        self.lazies = []
        self.token = cancel
        self.timeout = timeout
        m.cancel = &xt_never_cancelled if cancel is None else &cancel.flag
        m.deadline = deadline
        m.code = image.code
        m.fns = image.fns
        m.nfns = image.nfns
        m.ints = image.ints
        m.dbls = image.dbls
        m.strs = image.strs
        m.host_arity = image.host_arity
        m.host_strict_flags = image.host_strict
        m.ncons = image.ncons
        m.con_arity = image.con_arity
        m.con_tag = image.con_tag
        m.con_names = image.con_names
        m.max_heap = max_heap
        m.max_steps = max_steps
        m.next_check = max_steps if max_steps < POLL_EVERY else POLL_EVERY
        m.next_signal = SIGNAL_EVERY
        m.fmax = max_depth + 16
        m.smax = 4 * max_depth + (1 << 20)
        # the nursery: at most half the heap limit, so that a small limit still leaves
        # room for the data that survives
        m.cap = 4 << 20
        if m.cap > max_heap / 2:
            m.cap = max_heap / 2 if max_heap > 8192 else 4096
        # the semispace and the stacks come from the cache of released blocks when it
        # has one of the size (none is zeroed: the engine writes before it reads)
        m.heap = <char*>xt_block_get(XT_HEAP, m.cap)
        m.hp = m.heap
        m.hlim = m.heap + m.cap
        m.scap = 4096
        m.S = <Val*>xt_block_get(XT_STACK, m.scap * sizeof(Val))
        m.fcap = 1024
        m.F = <Frame*>xt_block_get(XT_FRAMES, m.fcap * sizeof(Frame))
        m.cafs = <Val*>malloc((m.nfns + 1) * sizeof(Val))
        if m.heap == NULL or m.S == NULL or m.F == NULL or m.cafs == NULL:
            raise MemoryError()
        for i in range(m.nfns):
            m.cafs[i].k = K_UNSET
            m.cafs[i].u.i = 0
        m.run = <void*>self
        m.result.k = K_INT
        m.err_fn = -1

    cdef void release(self) noexcept:
        """Give the heap and stacks back (to the cache of blocks, or free them): the run
        is over and marked failed, so nothing reads them again.  Idempotent."""
        cdef Machine* m = self.m
        if m == NULL:
            return
        m.failed = 1
        xt_block_put(XT_HEAP, m.heap, m.cap)
        xt_old_put(m.old, m.old_cap)
        free(m.rem)
        xt_block_put(XT_STACK, m.S, <size_t>m.scap * sizeof(Val))
        xt_block_put(XT_FRAMES, m.F, <size_t>m.fcap * sizeof(Frame))
        free(m.cafs)
        free(m.tmp)
        m.heap = NULL
        m.hp = NULL
        m.hlim = NULL
        m.old = NULL
        m.old_top = NULL
        m.old_scanned = NULL
        m.rem = NULL
        m.nrem = 0
        m.S = NULL
        m.F = NULL
        m.cafs = NULL
        m.tmp = NULL
        m.tmpcap = 0
        m.scap = 0
        m.fcap = 0
        m.sp = 0
        m.fp = 0

    def __dealloc__(self):
        if self.m != NULL:
            self.release()
            free(self.m)
            self.m = NULL

    cdef list active_frames(self, int64_t limit):
        """(function index, pc) of the code frames active when the run failed,
        innermost first, at most ``limit``: the innermost one's pc is where the engine
        stopped, every other one's its return address.  Read from the frame stack only
        on the error path (the interpreter records nothing more)."""
        cdef Machine* m = self.m
        cdef int64_t k
        out = []
        if m == NULL or m.F == NULL:
            return out
        k = m.fp
        while k >= 0 and len(out) < limit:
            if m.F[k].kind == F_CODE and 0 <= m.F[k].fn < m.nfns:
                if not out and k == m.fp and m.F[k].fn == m.err_fn:
                    out.append((m.F[k].fn, m.err_pc))
                else:
                    out.append((m.F[k].fn, m.F[k].pc))
            k -= 1
        if not out and 0 <= m.err_fn < m.nfns:
            out.append((m.err_fn, m.err_pc))
        return out

    cdef raise_error(self):
        m = self.m
        if m.err == E_PY and self.pyerr is not None:
            raise self.pyerr
        msg = m.errmsg.decode("utf-8", "replace")
        if m.err == E_STEPS:
            raise _errors.LimitExceeded(_errors.limit_message("max_steps", m.max_steps, m.steps),
                                        limit="max_steps", value=m.max_steps, used=m.steps)
        if m.err == E_HEAP:
            used = self.stats()["peak_heap"] if m.heap != NULL else None
            if not msg.startswith("the heap limit"):   # out of memory, a string too long
                msg = f"{msg}; raise it with --max-heap or max_heap="
            else:
                msg = _errors.limit_message("max_heap", m.max_heap, used)
            raise _errors.LimitExceeded(msg, limit="max_heap", value=m.max_heap, used=used)
        if m.err == E_DEPTH:
            depth = m.fmax - 16
            if msg.startswith("the stack depth limit"):
                msg = _errors.limit_message("max_depth", depth, m.fp)
            else:
                msg = f"{msg}; raise it with --max-depth or max_depth="
            raise _errors.LimitExceeded(msg, limit="max_depth", value=depth, used=m.fp)
        if m.err == E_CANCEL:
            raise _errors.LimitExceeded(msg, limit="cancelled")
        if m.err == E_TIMEOUT:
            used = None
            if self.timeout is not None and m.deadline != INT64_MAX_V:
                used = self.timeout + (xt_now_ns() - m.deadline) / 1e9
            raise _errors.LimitExceeded(_errors.limit_message("timeout", self.timeout or 0.0, used),
                                        limit="timeout", value=self.timeout, used=used)
        if msg == "error" and self.error_message is not None:
            msg = self.error_message
        program = self.image.program
        frames = self.active_frames(256)
        line, column, trace = _error_place(program, frames)
        if line is None and len(frames) == 256:      # deep in the prelude: look further
            line, column, trace = _error_place(program, self.active_frames(100_000))
        err = _errors.EvaluationError(msg, line=line, column=column)
        err.trace = trace
        raise err

    def execute(self):
        cdef Machine* m = self.m
        cdef int rc
        cdef FnInfo* fi = &m.fns[self.image.entry]
        self.owner = _get_ident()
        # frames: STOP <- NF(value) <- entry code
        m.F[0].kind = F_STOP
        m.F[0].base = 0
        m.F[0].fn = 0
        m.F[0].pc = 0
        m.F[1].kind = F_NF
        m.F[1].fn = NF_VALUE
        m.F[1].pc = 0
        m.F[1].base = 0
        m.F[2].kind = F_CODE
        m.F[2].wb = -1
        m.F[2].fn = self.image.entry
        m.F[2].pc = 0
        m.F[2].base = 0
        m.fp = 2
        if grow_stack(m, fi.nlocals + fi.maxstack + 8) < 0 or poll(m) < 0:
            self.raise_error()
        for i in range(fi.nlocals):
            m.S[i].k = K_INT
            m.S[i].u.i = 0
        m.sp = fi.nlocals
        with nogil:
            rc = interp(m)
        if rc < 0 or m.failed:
            self.raise_error()
        return self.to_py(m.result)

    def stats(self):
        cdef Machine* m = self.m
        return {"steps": m.steps,
                "peak_heap": max(m.peak, <size_t>(m.old_top - m.old) + <size_t>(m.hp - m.heap)),
                "gc_runs": m.gcs, "major_gc_runs": m.majors, "gc_time": m.gc_ns / 1e9}

    # -- host functions (called with the GIL held, from native_step)
    cdef int call_host(self, int32_t h, int64_t base, int32_t n) noexcept:
        cdef Machine* m = self.m
        cdef int64_t i
        cdef LazyArg lz
        fn, strict, check = self.hosts[h]
        name = self.image.host_names[h]
        try:
            args = []
            mine = []
            for i in range(n):
                if strict[i]:
                    args.append(self.to_py(m.S[base + i]))
                else:
                    lz = LazyArg()
                    lz.run = self
                    lz.slot = base + i
                    lz.valid = True
                    mine.append(lz)
                    args.append(lz)
            try:
                result = fn(*args)
            finally:
                for lz in mine:
                    lz.valid = False
            if m.failed:
                return -1
            value = check(result)
            self.push_py(value)
            return 0
        except BaseException as exc:
            if m.failed:
                return -1      # a nested evaluation failed: its error stands
            if isinstance(exc, _errors.ExathunkError) and not isinstance(exc, _errors.EvaluationError):
                self.pyerr = exc
            elif isinstance(exc, _errors.EvaluationError) and (
                    getattr(exc, "elsewhere", False) or "host function" in str(exc.message)):
                self.pyerr = exc        # a sub-thunk's own error, or one already named
            else:
                self.pyerr = _errors.EvaluationError(
                    f"host function {name!r} raised {type(exc).__name__}: {exc}")
            m.err = E_PY
            return -1

    def force_slot(self, int64_t slot):
        """Force stack slot ``slot`` to normal form from inside a host call."""
        cdef Machine* m = self.m
        cdef int64_t save_sp = m.sp, save_fp = m.fp
        cdef int rc
        if _get_ident() != self.owner:
            raise _errors.EvaluationError(
                "a lazy argument can only be forced by the thread running the program")
        if m.failed:
            raise _errors.EvaluationError("the evaluation has already failed")
        if grow_stack(m, m.sp + 8) < 0 or grow_frames(m) < 0 or grow_frames(m) < 0:
            m.failed = 1
            self.raise_error()
        if m.fp + 3 >= m.fcap:
            m.failed = 1
            fail(m, E_DEPTH, "the stack depth limit (max_depth) was exceeded")
            self.raise_error()
        m.fp += 1
        m.F[m.fp].kind = F_STOP
        m.F[m.fp].base = m.sp
        m.F[m.fp].fn = 0
        m.F[m.fp].pc = 0
        m.fp += 1
        m.F[m.fp].kind = F_NF
        m.F[m.fp].fn = NF_VALUE
        m.F[m.fp].pc = 0
        m.F[m.fp].base = m.sp
        m.S[m.sp] = m.S[slot]
        m.sp += 1
        with nogil:
            rc = interp(m)
        if rc < 0:
            m.failed = 1
            self.raise_error()
        value = self.to_py(m.result)
        m.sp = save_sp
        m.fp = save_fp
        return value

    cdef object to_py(self, Val v):
        """A value in normal form as Python (int, float, bool, str, list, Data);
        iterative, so that deep structures need no recursion."""
        cdef Val cur, e
        cdef Obj* o
        cdef uint32_t j
        cdef int64_t turns = 0
        names = self.image.con_names_py
        nullary = self.image.nullary_py
        root = [None]
        work = [(root, 0, v.k, v.u.i)]
        pending = []     # (holder, index, constructor, fields): made into Data at the end
        while work:
            turns += 1
            if (turns & 0xFFF) == 0 and poll(self.m) < 0:
                self.raise_error()
            holder, idx, k, raw = work.pop()
            cur.k = k
            cur.u.i = raw
            cur = resolve(cur)
            if cur.k == K_INT:
                holder[idx] = cur.u.i
            elif cur.k == K_DBL:
                holder[idx] = cur.u.d
            elif cur.k == K_BOOL:
                holder[idx] = cur.u.i != 0
            elif cur.k == K_NIL:
                holder[idx] = []
            elif cur.k == K_CON:
                holder[idx] = nullary[cur.u.i]
            elif is_str(cur):
                holder[idx] = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, CHARS(cur.u.p), cur.u.p.n)
            elif is_data(cur):
                o = cur.u.p
                fields = [None] * o.n
                pending.append((holder, idx, o.fn, fields))
                for j in range(o.n):
                    e = resolve(FLD(o)[j])
                    if e.k == K_INT:
                        fields[j] = e.u.i
                    elif e.k == K_DBL:
                        fields[j] = e.u.d
                    elif e.k == K_BOOL:
                        fields[j] = e.u.i != 0
                    elif e.k == K_CON:
                        fields[j] = nullary[e.u.i]
                    else:
                        work.append((fields, j, e.k, e.u.i))
            elif is_cons(cur):
                out = []
                holder[idx] = out
                while is_cons(cur):
                    turns += 1
                    if (turns & 0xFFF) == 0 and poll(self.m) < 0:
                        self.raise_error()
                    e = resolve(FLD(cur.u.p)[0])
                    if e.k == K_INT:
                        out.append(e.u.i)
                    elif e.k == K_DBL:
                        out.append(e.u.d)
                    elif e.k == K_BOOL:
                        out.append(e.u.i != 0)
                    elif e.k == K_CON:
                        out.append(nullary[e.u.i])
                    else:
                        out.append(None)
                        work.append((out, len(out) - 1, e.k, e.u.i))
                    cur = resolve(FLD(cur.u.p)[1])
                if cur.k != K_NIL:
                    raise _errors.EvaluationError("cannot hand back a list that is not fully evaluated")
            elif cur.k == K_PTR and (cur.u.p.tag == T_THUNK or cur.u.p.tag == T_BH):
                raise _errors.EvaluationError("cannot hand back an unevaluated value")
            else:
                raise _errors.EvaluationError("cannot hand back a function")
        # a constructor's fields were all found after it: build the innermost first
        Data = _Data
        for holder, idx, con, fields in reversed(pending):
            holder[idx] = Data(names[con], fields)
        return root[0]

    cdef push_py(self, value):
        """Push a Python value (already conformed to its type: a value of a data type
        is the tuple (constructor index, fields)) as an engine value.  Iterative: the
        parts wait on the machine's stack, which the collector sees."""
        cdef Machine* m = self.m
        cdef Obj* o
        cdef int64_t j, n, con
        cdef Val nil
        nil.k = K_NIL
        nil.u.i = 0
        # work items: a value to push, or a marker: _CONS (cons the top onto the list
        # below it) or an int n >= 0 with a constructor index c: (_MKCON, c, n)
        work = [value]
        while work:
            item = work.pop()
            if m.sp + 8 > m.scap and grow_stack(m, m.sp + 8) < 0:
                m.failed = 1
                self.raise_error()
            if item is _CONS:
                o = alloc_fields(m, T_CONS, 0, 2)
                if o == NULL:
                    m.failed = 1
                    self.raise_error()
                FLD(o)[0] = m.S[m.sp - 1]
                FLD(o)[1] = m.S[m.sp - 2]
                m.sp -= 1
                m.S[m.sp - 1] = mk_ptr(o)
            elif isinstance(item, bool):
                m.S[m.sp] = mk_bool(item)
                m.sp += 1
            elif isinstance(item, int):
                m.S[m.sp] = mk_int(item)
                m.sp += 1
            elif isinstance(item, float):
                m.S[m.sp].k = K_DBL
                m.S[m.sp].u.d = item
                m.sp += 1
            elif isinstance(item, str):
                o = alloc_str(m, len(item))
                if o == NULL:
                    m.failed = 1
                    self.raise_error()
                for j, ch in enumerate(item):
                    CHARS(o)[j] = ord(ch)
                m.S[m.sp] = mk_ptr(o)
                m.sp += 1
            elif isinstance(item, list):
                # nil, then each element from the last, consed on
                for x in item:
                    work.append(_CONS)
                    work.append(x)
                m.S[m.sp] = nil
                m.sp += 1
            elif isinstance(item, tuple) and len(item) == 2:
                con = item[0]
                if not (0 <= con < m.ncons) or len(item[1]) != m.con_arity[con]:
                    raise _errors.EvaluationError("cannot convert a host value of a data type")
                if not item[1]:
                    m.S[m.sp].k = K_CON
                    m.S[m.sp].u.i = con
                    m.sp += 1
                else:
                    work.append(_MkCon(con))
                    for x in reversed(item[1]):
                        work.append(x)
            elif isinstance(item, _MkCon):
                con = (<_MkCon>item).con
                n = m.con_arity[con]
                o = alloc_fields(m, T_DATA, <int32_t>con, <uint32_t>n)
                if o == NULL:
                    m.failed = 1
                    self.raise_error()
                m.sp -= n
                memcpy(FLD(o), &m.S[m.sp], n * sizeof(Val))
                m.S[m.sp] = mk_ptr(o)
                m.sp += 1
            else:
                raise _errors.EvaluationError(f"cannot convert {type(item).__name__} to a value")


def run(Image image, hosts, int64_t max_steps, int64_t max_heap, int64_t max_depth, *,
        CancelToken cancel=None, timeout=None):
    """Evaluate the image's entry to normal form: (value, stats).

    ``cancel``: a CancelToken; once cancelled (from any thread) the run stops within
    about a millisecond with LimitExceeded(limit="cancelled").  ``timeout``: seconds of
    wall-clock time (CLOCK_MONOTONIC) from this call, a positive int or float, or None
    for no limit; past it the run stops with LimitExceeded(limit="timeout").  Both are
    checked between steps (never inside a host call) every few thousand steps, at
    every collection, before every host call and in the long loops of built-ins."""
    cdef int64_t deadline = INT64_MAX_V
    cdef int64_t now = xt_now_ns()
    started = _time.perf_counter()
    if timeout is not None:
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                or not timeout > 0):
            raise _errors.ExathunkError(
                f"timeout must be a positive number of seconds, not {timeout!r}")
        if timeout < 1e9:             # longer is no limit (and would overflow)
            deadline = now + <int64_t>(timeout * 1e9)
    r = Run(image, hosts, max_steps, max_heap, max_depth, cancel, deadline, timeout)
    try:
        value = r.execute()
    finally:
        stats = r.stats()
        stats["time"] = _time.perf_counter() - started
        r.release()          # now, not when a traceback holding the Run is dropped
    return value, stats


def profile_counts():
    """The instruction profile since the last profile_reset() (see xt_prof_op), or None
    when the engine was built without EXATHUNK_PROFILE=1: a dict with "ops" {opcode:
    count}, "pairs" {(a, b): count}, "triples" {(a, b, c): count} and "modes" {mode
    name: times the run loop switched to it}, zero counts left out."""
    cdef int a, b, c
    cdef unsigned long long k
    if not XT_PROFILED:
        return None
    ops = {}
    pairs = {}
    triples = {}
    for a in range(XT_PROF_NOPS):
        k = xt_prof_op_count(a)
        if k:
            ops[a] = k
    for a in ops:
        for b in ops:
            k = xt_prof_pair_count(a, b)
            if k:
                pairs[(a, b)] = k
    for (a, b) in pairs:
        for c in ops:
            if (b, c) in pairs:
                k = xt_prof_triple_count(a, b, c)
                if k:
                    triples[(a, b, c)] = k
    names = ["EXEC", "RETURN", "APPLY", "ENTER", "NATIVE", "RESUME", "FAIL"]
    modes = {names[a]: xt_prof_mode_count(a) for a in range(len(names))
             if xt_prof_mode_count(a)}
    return {"ops": ops, "pairs": pairs, "triples": triples, "modes": modes}


def profile_reset():
    """Zero the instruction profile (a no-op without EXATHUNK_PROFILE)."""
    xt_prof_reset()


def opcode_values():
    """The engine's opcode numbering (checked against opcodes.py by a test)."""
    return dict(OPCODE_VALUES)

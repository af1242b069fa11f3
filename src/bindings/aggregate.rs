//! What every vasttile aggregate shares: a state of its own SQL type (`heat_state`, `dot_state`,
//! `access_state`) that lives in the aggregate's memory context as a PostgreSQL *expanded object*
//! and is updated in place row by row, combine functions, and text input / output of the states.
//!
//! Why not `internal`: Citus splits an aggregate into worker and coordinator halves only when its
//! state has a real type with input and output functions and the aggregate a combine function.
//! With a real type PostgreSQL's parallel query needs no serialise / deserialise functions either:
//! a state crossing processes is flattened to bytes through the expanded object's methods, and the
//! combine function reads the flat bytes back (as untrusted input). The per-row transition stays a
//! raw V1 function (pgrx's argument conversion cost more than the work: about 60 of 110 ns a row).

use super::{sql_error, OrRaise};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::borrow::Cow;
use vasttile_core::error::CoreResult;
use vasttile_core::raster::access::AccessState;
use vasttile_core::raster::dots::DotTileState;
use vasttile_core::raster::heat::HeatGrid;

/// An aggregate state: partial states of one aggregate merge, and travel as bytes between
/// processes (parallel workers, Citus workers and coordinator).
pub trait AggState: Clone + 'static {
    /// The SQL type of the state, for messages.
    const SQL_TYPE: &'static str;
    fn merge_from(&mut self, other: &Self) -> CoreResult<()>;
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> CoreResult<Self>;
    /// Bytes the state holds on Rust's heap, which PostgreSQL's memory accounting cannot see.
    fn heap_bytes(&self) -> usize;
    /// The expanded-object methods of this state type: one static per type, so a pointer
    /// comparison tells whose expanded object a datum is.
    fn methods() -> &'static pg_sys::ExpandedObjectMethods;
}

macro_rules! agg_state {
    ($t:ty, $sql:literal, $merge:path) => {
        agg_state!($t, $sql, $merge, <$t>::to_bytes, <$t>::from_bytes);
    };
    ($t:ty, $sql:literal, $merge:path, $to:expr, $from:expr) => {
        impl AggState for $t {
            const SQL_TYPE: &'static str = $sql;
            fn merge_from(&mut self, other: &Self) -> CoreResult<()> {
                $merge(self, other)
            }
            fn to_bytes(&self) -> Vec<u8> {
                $to(self)
            }
            fn from_bytes(bytes: &[u8]) -> CoreResult<Self> {
                $from(bytes)
            }
            fn heap_bytes(&self) -> usize {
                <$t>::heap_bytes(self)
            }
            fn methods() -> &'static pg_sys::ExpandedObjectMethods {
                static METHODS: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
                    get_flat_size: Some(flat_size::<$t>),
                    flatten_into: Some(flatten_into::<$t>),
                };
                &METHODS
            }
        }
    };
}
// Partial heat grids travel compact: counts as varints, zeros as runs.
agg_state!(
    HeatGrid,
    "heat_state",
    HeatGrid::merge,
    HeatGrid::to_compact_bytes,
    HeatGrid::from_compact_bytes
);
agg_state!(DotTileState, "dot_state", DotTileState::merge);
agg_state!(AccessState, "access_state", AccessState::merge);

/// The aggregate's memory context, where states must live (not in the per-row context).
///
/// # Safety
/// `fcinfo` must be the call info of the running function.
pub unsafe fn aggregate_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut context = std::ptr::null_mut();
    // SAFETY: a non-null `fcinfo` is the live call info of the running function (the caller's
    // promise), which AggCheckCallContext only reads; it writes the aggregate's context, if any,
    // into the local `context`.
    if fcinfo.is_null() || unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut context) } == 0 {
        sql_error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "aggregate support functions can only be called by their aggregate",
        );
    }
    context
}

/// What an expanded state holds beside PostgreSQL's header: the Rust value, and its bytes
/// between `get_flat_size` and `flatten_into` (PostgreSQL calls them back to back).
struct Holder<T> {
    value: T,
    flat: Vec<u8>,
    /// The object's own memory context, and the bytes reserved in it for `value`'s heap.
    context: pg_sys::MemoryContext,
    reserved: usize,
}

impl<T: AggState> Holder<T> {
    /// PostgreSQL sizes hash aggregation by its memory contexts: reserve the value's Rust heap
    /// in the object's context too, so that many groups spill to disk as PostgreSQL's own states
    /// do instead of growing past work_mem unseen. The reservation is allocated but never
    /// written (it counts against a strict overcommit limit like any allocation). Called after
    /// every change; it grows in steps of at least 1/8.
    #[inline]
    fn needs_reserve(&self) -> bool {
        self.value.heap_bytes() > self.reserved + self.reserved / 8
    }

    #[inline]
    fn reserve(&mut self) {
        let heap = self.value.heap_bytes();
        if self.needs_reserve() {
            let more = (heap - self.reserved).min(0x3fff_ffff); // MaxAllocSize
                                                                // SAFETY: `context` is the live context of this object (the holder lives in it).
            unsafe { pg_sys::MemoryContextAlloc(self.context, more) };
            self.reserved += more;
        }
    }
}

/// The expanded object in PostgreSQL memory: the header PostgreSQL reads, then our holder.
#[repr(C)]
struct Expanded<T> {
    header: pg_sys::ExpandedObjectHeader,
    holder: *mut Holder<T>,
}

const VARHDRSZ: usize = 4;

/// The holder of an expanded datum of type `T`, or None when the datum is flat. An expanded
/// object of another type is refused (it cannot be ours).
///
/// # Safety
/// `datum` must be a non-null varlena datum of `T`'s SQL type.
#[inline]
unsafe fn expanded<T: AggState>(datum: pg_sys::Datum) -> Option<*mut Holder<T>> {
    let p = datum.cast_mut_ptr::<u8>();
    // SAFETY: a varlena datum points to at least one header byte; a 1-byte header of 0x01 is an
    // external pointer (on little-endian machines, the only ones pgrx builds for here), whose
    // second byte is its tag. Any other short header has a length of at least one (0x03 up).
    if unsafe { *p } != 0x01 {
        return None;
    }
    // SAFETY: as above, an external pointer has a tag byte.
    let tag = unsafe { *p.add(1) } as u32;
    if tag != pg_sys::vartag_external::VARTAG_EXPANDED_RO
        && tag != pg_sys::vartag_external::VARTAG_EXPANDED_RW
    {
        return None;
    }
    // SAFETY: an expanded pointer datum holds the object's header address (a varatt_expanded,
    // unaligned) after its two tag bytes, as DatumGetEOHP reads it; read here without the call.
    let eoh =
        unsafe { std::ptr::read_unaligned(p.add(2).cast::<*mut pg_sys::ExpandedObjectHeader>()) };
    // SAFETY: `eoh` is a live expanded object header (PostgreSQL made the pointer datum).
    if !std::ptr::eq(unsafe { (*eoh).eoh_methods }, T::methods()) {
        sql_error(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("a {} value is not one made by vasttile", T::SQL_TYPE),
        );
    }
    // SAFETY: objects with `T`'s methods are made only by `new_expanded::<T>`, as an
    // `Expanded<T>` whose header is its first field.
    Some(unsafe { (*eoh.cast::<Expanded<T>>()).holder })
}

/// The bytes of a non-null `bytea` (or domain over it) argument of a raw V1 function.
///
/// # Safety
/// `d` must be a non-null `bytea` datum.
pub unsafe fn bytea_arg<'a>(d: &pg_sys::NullableDatum) -> &'a [u8] {
    // SAFETY: the caller's promise; a bytea is a flat varlena (maybe toasted).
    unsafe { flat_bytes(d.value) }
}

/// The bytes of a flat state datum (detoasted into the current context if needed).
///
/// # Safety
/// `datum` must be a non-null, non-expanded varlena datum.
unsafe fn flat_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: a flat varlena, which pg_detoast_datum_packed returns as is or detoasted.
    unsafe {
        let v = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(v)
    }
}

/// The value of a state datum: borrowed from an expanded object, or read from flat bytes
/// (untrusted: from another process or from text).
///
/// # Safety
/// `datum` must be a non-null datum of `T`'s SQL type.
pub unsafe fn read<'a, T: AggState>(datum: pg_sys::Datum) -> Cow<'a, T> {
    // SAFETY: the caller's promise; a holder lives as long as its memory context, which is
    // the aggregate's (it outlives this call).
    match unsafe { expanded::<T>(datum) } {
        Some(h) => Cow::Borrowed(unsafe { &(*h).value }),
        None => Cow::Owned(T::from_bytes(unsafe { flat_bytes(datum) }).or_raise()),
    }
}

/// A new expanded state in a child of the aggregate context `context`: returns its read/write
/// datum and its holder. Deleting the object (PostgreSQL does when the state is replaced or the
/// aggregate ends) drops the value.
///
/// # Safety
/// `context` must be the running aggregate's memory context.
unsafe fn new_expanded<T: AggState>(
    value: T,
    context: pg_sys::MemoryContext,
) -> (pg_sys::Datum, *mut Holder<T>) {
    // SAFETY: `context` is live (the caller's promise); the child context is made in it, the
    // header allocated in the child (as EOH_init_header requires), and the holder is dropped by
    // the child's reset callback, so it never outlives the memory that points to it.
    unsafe {
        let child = pg_sys::AllocSetContextCreateExtended(
            context,
            c"vasttile aggregate state".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
        );
        let holder = pgrx::PgMemoryContexts::For(child).leak_and_drop_on_delete(Holder {
            value,
            flat: Vec::new(),
            context: child,
            reserved: 0,
        });
        (*holder).reserve();
        let e = pg_sys::MemoryContextAllocZero(child, std::mem::size_of::<Expanded<T>>())
            .cast::<Expanded<T>>();
        pg_sys::EOH_init_header(&mut (*e).header, T::methods(), child);
        (*e).holder = holder;
        let rw = pg_sys::Datum::from((*e).header.eoh_rw_ptr.as_mut_ptr());
        (rw, holder)
    }
}

/// Whether this call may keep its state as an expanded object updated in place: only when
/// PostgreSQL's aggregate node calls it for an aggregate whose combine function (if any) is
/// C code, not a function of SQL or PL/pgSQL. Such a function would receive our read/write
/// pointer and could hand the object to another memory context (PL/pgSQL does, returning it),
/// which frees it while the aggregate still points at it. Window aggregates (which may add
/// such an inverse function) and those keep their state flat: correct, slower. Decided once
/// per call site.
///
/// # Safety
/// `fcinfo` must be the running call.
#[inline]
unsafe fn in_place(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: the caller's promise: `fcinfo` and its `flinfo` are live; `fn_extra` is ours to
    // use (this function's cache, a byte in `fn_mcxt`, which lives as long as `flinfo`).
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() {
            return false;
        }
        let cached = (*flinfo).fn_extra.cast::<u8>();
        if !cached.is_null() {
            return *cached == 1;
        }
        decide_in_place(fcinfo, flinfo)
    }
}

/// The first call of [`in_place`] at a call site: decide and cache the answer.
///
/// # Safety
/// As for [`in_place`], with `flinfo` its non-null `flinfo`.
#[cold]
#[inline(never)]
unsafe fn decide_in_place(fcinfo: pg_sys::FunctionCallInfo, flinfo: *mut pg_sys::FmgrInfo) -> bool {
    // SAFETY: the caller's promise (see `in_place`).
    unsafe {
        let mut context = std::ptr::null_mut();
        let kind = pg_sys::AggCheckCallContext(fcinfo, &mut context) as u32;
        let aggref = if kind == pg_sys::AGG_CONTEXT_AGGREGATE {
            pg_sys::AggGetAggref(fcinfo)
        } else {
            std::ptr::null_mut()
        };
        let ok = !aggref.is_null() && combine_is_c((*aggref).aggfnoid);
        let slot = pg_sys::MemoryContextAlloc((*flinfo).fn_mcxt, 1).cast::<u8>();
        *slot = ok as u8;
        (*flinfo).fn_extra = slot.cast();
        ok
    }
}

/// True when aggregate `agg` has no combine function or one written in C (which only a
/// superuser can create). Read from the system caches: no SPI, which parallel workers may not
/// use here.
///
/// # Safety
/// To be called inside a transaction, as any function is.
unsafe fn combine_is_c(agg: pg_sys::Oid) -> bool {
    // pg_aggregate.aggcombinefn and pg_proc.prolang (attribute numbers; stable since 9.6).
    const AGGCOMBINEFN: i16 = 6;
    const CLANGUAGE_ID: u32 = 13;
    // SAFETY: syscache lookups by OID; each tuple found is released after its one read.
    unsafe {
        let attr = |cache: u32, oid: pg_sys::Oid, attnum: i16| -> Option<pg_sys::Oid> {
            let tup = pg_sys::SearchSysCache1(cache as i32, pg_sys::Datum::from(oid));
            if tup.is_null() {
                return None;
            }
            let mut isnull = false;
            let d = pg_sys::SysCacheGetAttr(cache as i32, tup, attnum, &mut isnull);
            pg_sys::ReleaseSysCache(tup);
            (!isnull).then(|| pg_sys::Oid::from(d.value() as u32))
        };
        match attr(pg_sys::SysCacheIdentifier::AGGFNOID, agg, AGGCOMBINEFN) {
            None => false,
            Some(f) if f == pg_sys::Oid::INVALID => true,
            Some(f) => {
                attr(
                    pg_sys::SysCacheIdentifier::PROCOID,
                    f,
                    pg_sys::Anum_pg_proc_prolang as i16,
                ) == Some(pg_sys::Oid::from(CLANGUAGE_ID))
            }
        }
    }
}

/// A state as a flat varlena (`bytea`-shaped) in the current memory context: what a call that
/// may not update in place returns (PostgreSQL copies it into the aggregate's context).
fn flat_datum<T: AggState>(value: &T) -> pg_sys::Datum {
    value
        .to_bytes()
        .into_datum()
        .expect("a bytea is never NULL")
}

/// The state to update in place: the read/write expanded object the aggregate passed in, or a
/// new one in the aggregate's context made from a flat or read-only state.
///
/// # Safety
/// `fcinfo` must be the running transition or combine call and `datum` its non-null state.
#[inline]
unsafe fn writable<T: AggState>(
    fcinfo: pg_sys::FunctionCallInfo,
    datum: pg_sys::Datum,
) -> (pg_sys::Datum, *mut Holder<T>) {
    let p = datum.cast_mut_ptr::<u8>();
    // SAFETY: the caller's promise: `datum` is a state; `expanded` checks the object is ours.
    // A read/write pointer to our object exists only inside the aggregate that made it (the
    // first call of a transition or combine function makes one, and refuses to outside an
    // aggregate), so it may be updated in place.
    unsafe {
        if let Some(h) = expanded::<T>(datum) {
            if *p.add(1) as u32 == pg_sys::vartag_external::VARTAG_EXPANDED_RW {
                return (datum, h);
            }
        }
        let value = read::<T>(datum).into_owned();
        new_expanded(value, aggregate_context(fcinfo))
    }
}

/// `get_flat_size` of the expanded-object methods: the bytes a state flattens to.
unsafe extern "C-unwind" fn flat_size<T: AggState>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
) -> usize {
    // SAFETY: PostgreSQL calls the methods only on objects made with them: `Expanded<T>`.
    let h = unsafe { &mut *(*eoh.cast::<Expanded<T>>()).holder };
    h.flat = h.value.to_bytes();
    VARHDRSZ + h.flat.len()
}

/// `flatten_into` of the expanded-object methods: a varlena of the bytes `flat_size` measured.
unsafe extern "C-unwind" fn flatten_into<T: AggState>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut std::ffi::c_void,
    allocated: usize,
) {
    // SAFETY: as for `flat_size`; PostgreSQL hands `allocated` bytes at `result`, the size
    // `flat_size` returned just before (checked: anything else would overrun).
    unsafe {
        let h = &mut *(*eoh.cast::<Expanded<T>>()).holder;
        if h.flat.len() + VARHDRSZ != allocated {
            h.flat = h.value.to_bytes();
        }
        // Never more than PostgreSQL allocated (the sizes agree: nothing changes the value
        // between the two calls); no panic here, where no Rust frame could catch it.
        let n = h.flat.len().min(allocated.saturating_sub(VARHDRSZ));
        let out = result.cast::<u8>();
        // A 4-byte varlena header: the total length shifted left by two (little-endian).
        std::ptr::copy_nonoverlapping(
            (((n + VARHDRSZ) as u32) << 2).to_le_bytes().as_ptr(),
            out,
            4,
        );
        std::ptr::copy_nonoverlapping(h.flat.as_ptr(), out.add(VARHDRSZ), n);
        h.flat = Vec::new();
    }
}

/// The body of a raw transition function: skip rows with a NULL argument (as a STRICT function
/// would), `create` the state from the first row's arguments, then `add` each row. Both get the
/// arguments after the state.
///
/// # Safety
/// `fcinfo` must be the call of a transition function whose first argument is this aggregate's
/// state of `T`'s SQL type and whose other arguments `create` and `add` read as declared in SQL.
pub unsafe fn transition<T: AggState>(
    fcinfo: pg_sys::FunctionCallInfo,
    create: impl FnOnce(&[pg_sys::NullableDatum]) -> CoreResult<T>,
    add: impl FnOnce(&mut T, &[pg_sys::NullableDatum]) -> CoreResult<()>,
) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is the live call info of the transition function (the caller's
    // promise), and PostgreSQL fills `nargs` entries of its `args` array.
    let args = unsafe { (*fcinfo).args.as_slice((*fcinfo).nargs as usize) };
    let (datum, null) = (args[0].value, args[0].isnull);
    let row = &args[1..];
    if row.iter().any(|a| a.isnull) {
        // SAFETY: `fcinfo` is the live call info (the caller's promise).
        unsafe { (*fcinfo).isnull = null };
        return datum;
    }
    // SAFETY: `fcinfo` is the live call; a non-null argument 0 is this aggregate's state, and a
    // holder lives in the aggregate's context as long as the state (the caller's promise).
    unsafe {
        if in_place(fcinfo) {
            let (datum, holder) = if null {
                let fresh = create(row).or_raise();
                new_expanded(fresh, aggregate_context(fcinfo))
            } else {
                writable::<T>(fcinfo, datum)
            };
            add(&mut (*holder).value, row).or_raise();
            (*holder).reserve();
            datum
        } else {
            // Still only inside an aggregate (this raises elsewhere), with a flat state.
            aggregate_context(fcinfo);
            let mut value = if null {
                create(row).or_raise()
            } else {
                read::<T>(datum).into_owned()
            };
            add(&mut value, row).or_raise();
            flat_datum(&value)
        }
    }
}

/// What the unguarded fast path of a transition did.
pub enum FastAdd {
    /// The row went into the state in place: return this datum.
    Done(pg_sys::Datum),
    /// The same, and the state outgrew its reservation: call [`reserve_after`] (guarded).
    Grew(pg_sys::Datum),
    /// Nothing done: run the whole (guarded) transition.
    Slow,
}

/// The steady state of a transition, without `pg_guard`'s setjmp (which costs as much as the
/// row's work): when this call site may update in place (decided and cached earlier), the state
/// is our read/write object and no argument is NULL, add the row calling no PostgreSQL function
/// at all, with panics caught. Anything else, an error included, goes to the guarded transition,
/// which runs the row again and raises the error (a row that failed here fails there too:
/// adding is deterministic, and a failed add leaves a state the query then discards).
///
/// # Safety
/// `fcinfo` must be the call of a transition function whose argument 0 is a state of `T`'s
/// SQL type and whose other arguments `add` reads as declared in SQL.
#[inline(always)]
pub unsafe fn add_in_place<T: AggState>(
    fcinfo: pg_sys::FunctionCallInfo,
    add: impl FnOnce(&mut T, &[pg_sys::NullableDatum]) -> CoreResult<()>,
) -> FastAdd {
    // SAFETY: the caller's promise; every read below is of memory PostgreSQL handed over
    // (`fcinfo`, its `flinfo` and `fn_extra` cache, the state's header), checked in order.
    unsafe {
        let args = (*fcinfo).args.as_slice((*fcinfo).nargs as usize);
        let (state, row) = (args[0], &args[1..]);
        if state.isnull || row.iter().any(|a| a.isnull) {
            return FastAdd::Slow;
        }
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() || (*flinfo).fn_extra.is_null() || *(*flinfo).fn_extra.cast::<u8>() != 1
        {
            return FastAdd::Slow;
        }
        let p = state.value.cast_mut_ptr::<u8>();
        if *p != 0x01 || *p.add(1) as u32 != pg_sys::vartag_external::VARTAG_EXPANDED_RW {
            return FastAdd::Slow;
        }
        let eoh = std::ptr::read_unaligned(p.add(2).cast::<*mut pg_sys::ExpandedObjectHeader>());
        if !std::ptr::eq((*eoh).eoh_methods, T::methods()) {
            return FastAdd::Slow;
        }
        let holder = &mut *(*eoh.cast::<Expanded<T>>()).holder;
        let added = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            add(&mut holder.value, row).is_ok()
        }));
        match added {
            Ok(true) if holder.needs_reserve() => FastAdd::Grew(state.value),
            Ok(true) => FastAdd::Done(state.value),
            _ => FastAdd::Slow,
        }
    }
}

/// Reserve what a state added in place outgrew (may raise out of memory: call it guarded).
///
/// # Safety
/// `datum` must be a read/write expanded state of `T` (as [`add_in_place`] returned it).
pub unsafe fn reserve_after<T: AggState>(datum: pg_sys::Datum) -> pg_sys::Datum {
    // SAFETY: the caller's promise: `expanded` finds our holder.
    unsafe {
        if let Some(h) = expanded::<T>(datum) {
            (*h).reserve();
        }
    }
    datum
}

/// The body of a combine function (not STRICT): the first state absorbs the second, or becomes
/// a copy of it in the aggregate's context when it is still NULL.
///
/// # Safety
/// `fcinfo` must be the call of a combine function `(state, state) -> state` of `T`.
pub unsafe fn combine<T: AggState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: as in `transition`: two arguments, each NULL or a state of `T`.
    unsafe {
        let args = (*fcinfo).args.as_slice(2);
        let (a, b) = (args[0], args[1]);
        if b.isnull {
            (*fcinfo).isnull = a.isnull;
            return a.value;
        }
        let other = read::<T>(b.value);
        if in_place(fcinfo) {
            let (datum, holder) = if a.isnull {
                new_expanded(other.into_owned(), aggregate_context(fcinfo))
            } else {
                let (d, h) = writable::<T>(fcinfo, a.value);
                (*h).value.merge_from(&other).or_raise();
                (d, h)
            };
            (*holder).reserve();
            datum
        } else {
            aggregate_context(fcinfo);
            let value = if a.isnull {
                other.into_owned()
            } else {
                let mut value = read::<T>(a.value).into_owned();
                value.merge_from(&other).or_raise();
                value
            };
            flat_datum(&value)
        }
    }
}

/// The state argument `index` of a final (or other) function, if not NULL.
///
/// # Safety
/// Argument `index` of the running call must be NULL or a state of `T`'s SQL type.
pub unsafe fn state_arg<'a, T: AggState>(
    fcinfo: pg_sys::FunctionCallInfo,
    index: usize,
) -> Option<Cow<'a, T>> {
    // SAFETY: the caller's promise.
    unsafe {
        let a = (*fcinfo).args.as_slice((*fcinfo).nargs as usize)[index];
        (!a.isnull).then(|| read::<T>(a.value))
    }
}

/// Return `value` from a raw V1 function, or NULL.
///
/// # Safety
/// `fcinfo` must be the running call.
pub unsafe fn result<V: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    value: Option<V>,
) -> pg_sys::Datum {
    match value.and_then(IntoDatum::into_datum) {
        Some(d) => d,
        None => {
            // SAFETY: the caller's promise.
            unsafe { (*fcinfo).isnull = true };
            pg_sys::Datum::from(0usize)
        }
    }
}

/// Input function of a state type: `\x` and hex digits of its bytes (as its output writes them),
/// checked like any untrusted bytes.
///
/// # Safety
/// `fcinfo` must be a call of the type's input function (argument 0 a C string).
pub unsafe fn state_in<T: AggState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the input function's argument 0 is a NUL-terminated C string.
    let text =
        unsafe { std::ffi::CStr::from_ptr((*fcinfo).args.as_slice(1)[0].value.cast_mut_ptr()) };
    let bytes = hex_decode(text.to_bytes()).unwrap_or_else(|why| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!("invalid input for type {}: {why}", T::SQL_TYPE),
        )
    });
    T::from_bytes(&bytes).or_raise();
    // SAFETY: a bytea-shaped varlena of the checked bytes, returned as the state's flat form.
    unsafe { result(fcinfo, Some(bytes)) }
}

/// Output function of a state type: `\x` and the hex digits of its bytes.
///
/// # Safety
/// `fcinfo` must be a call of the type's output function (argument 0 a state of `T`).
pub unsafe fn state_out<T: AggState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the output function's argument 0 is a non-null state (output functions are strict).
    let datum = unsafe { (*fcinfo).args.as_slice(1)[0].value };
    let bytes: Cow<[u8]> = match unsafe { expanded::<T>(datum) } {
        // SAFETY: a live holder of an expanded state.
        Some(h) => Cow::Owned(unsafe { (*h).value.to_bytes() }),
        // SAFETY: a flat state.
        None => Cow::Borrowed(unsafe { flat_bytes(datum) }),
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = Vec::with_capacity(2 + 2 * bytes.len());
    text.extend_from_slice(b"\\x");
    for &b in bytes.iter() {
        text.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
    let c = std::ffi::CString::new(text).expect("hex has no NUL");
    // SAFETY: pstrdup copies the string into the current memory context, as PostgreSQL expects
    // of an output function's result.
    pg_sys::Datum::from(unsafe { pg_sys::pstrdup(c.as_ptr()) })
}

fn hex_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let digits = text.strip_prefix(b"\\x").ok_or("must start with \\x")?;
    if digits.len() % 2 != 0 {
        return Err("an odd number of hex digits".into());
    }
    let nibble = |c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("{:?} is not a hex digit", c as char))
    };
    digits
        .chunks_exact(2)
        .map(|p| Ok(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// An `int4` argument.
#[inline]
pub fn int4(d: &pg_sys::NullableDatum) -> i32 {
    d.value.value() as i32
}

/// An `int8` argument.
#[inline]
pub fn int8(d: &pg_sys::NullableDatum) -> i64 {
    d.value.value() as i64
}

/// A `float8` argument (passed by value on 64-bit platforms).
#[inline]
pub fn float8(d: &pg_sys::NullableDatum) -> f64 {
    f64::from_bits(d.value.value() as u64)
}

/// The info record PostgreSQL looks up for a raw V1 function (`pg_finfo_<name>`).
macro_rules! v1_finfo {
    ($finfo:ident) => {
        // SAFETY: the exported name (`$finfo`) is unique to this function.
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}
pub(crate) use v1_finfo;

/// Declare a raw V1 function callable from SQL (`LANGUAGE c AS 'MODULE_PATHNAME', 'name'`): the
/// info record PostgreSQL looks up, and an entry point under `pg_guard` (so that a panic or an
/// ERROR unwinds cleanly) that calls `body(fcinfo)`.
macro_rules! v1_function {
    ($(#[$doc:meta])* $name:ident, $finfo:ident, $body:path) => {
        $crate::bindings::aggregate::v1_finfo!($finfo);

        $(#[$doc])*
        ///
        /// # Safety
        /// Called by PostgreSQL with the arguments its SQL declaration lists.
        #[::pgrx::pg_guard]
        // SAFETY: the exported name (`$name`) is unique to this function.
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            // SAFETY: PostgreSQL calls this entry point only for the SQL functions declared
            // `AS 'MODULE_PATHNAME', '<name>'`, with their `fcinfo`: the call `$body` requires.
            unsafe { $body(fcinfo) }
        }
    };
}
pub(crate) use v1_function;

/// Declare a raw V1 transition function whose steady state runs unguarded
/// ([`add_in_place`] with `fast`, a `FnOnce(&mut $t, &[NullableDatum]) -> CoreResult<()>`
/// reading the row), falling back to `body(fcinfo)` under `pg_guard` for everything else.
macro_rules! v1_transition {
    ($(#[$doc:meta])* $name:ident, $finfo:ident, $t:ty, $fast:expr, $body:path) => {
        $crate::bindings::aggregate::v1_finfo!($finfo);

        $(#[$doc])*
        ///
        /// # Safety
        /// Called by PostgreSQL with the arguments its SQL declaration lists.
        // SAFETY: the exported name (`$name`) is unique to this function.
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            #[::pgrx::pg_guard]
            unsafe extern "C-unwind" fn slow(
                fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
            ) -> ::pgrx::pg_sys::Datum {
                // SAFETY: as for the entry point: PostgreSQL's call of this function.
                unsafe { $body(fcinfo) }
            }
            #[::pgrx::pg_guard]
            unsafe extern "C-unwind" fn grew(d: ::pgrx::pg_sys::Datum) -> ::pgrx::pg_sys::Datum {
                // SAFETY: `d` is the read/write state add_in_place just updated.
                unsafe { $crate::bindings::aggregate::reserve_after::<$t>(d) }
            }
            // SAFETY: PostgreSQL calls this entry point only for the SQL functions declared
            // `AS 'MODULE_PATHNAME', '<name>'`, with their `fcinfo`; the fast path calls no
            // PostgreSQL function and catches panics, everything else runs guarded.
            unsafe {
                match $crate::bindings::aggregate::add_in_place::<$t>(fcinfo, $fast) {
                    $crate::bindings::aggregate::FastAdd::Done(d) => d,
                    $crate::bindings::aggregate::FastAdd::Grew(d) => grew(d),
                    $crate::bindings::aggregate::FastAdd::Slow => slow(fcinfo),
                }
            }
        }
    };
}
pub(crate) use v1_transition;

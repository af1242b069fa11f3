//! What every vasttile aggregate shares: its `internal` state in the aggregate's memory context,
//! combine / serialise / deserialise for parallel query, and the per-row transition as a raw V1
//! function (pgrx's argument conversion cost more than the work: about 60 of 110 ns a row).

use super::{sql_error, OrRaise};
use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::*;
use vasttile_core::error::CoreResult;
use vasttile_core::raster::access::AccessState;
use vasttile_core::raster::dots::DotTileState;
use vasttile_core::raster::heat::HeatGrid;

/// An aggregate state: partial states of one aggregate merge, and travel as bytes between
/// parallel workers.
pub trait AggState: Clone + 'static {
    fn merge_from(&mut self, other: &Self) -> CoreResult<()>;
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> CoreResult<Self>;
}

impl AggState for DotTileState {
    fn merge_from(&mut self, other: &Self) -> CoreResult<()> {
        self.merge(other)
    }
    fn to_bytes(&self) -> Vec<u8> {
        DotTileState::to_bytes(self)
    }
    fn from_bytes(bytes: &[u8]) -> CoreResult<Self> {
        DotTileState::from_bytes(bytes)
    }
}

impl AggState for HeatGrid {
    fn merge_from(&mut self, other: &Self) -> CoreResult<()> {
        self.merge(other)
    }
    fn to_bytes(&self) -> Vec<u8> {
        HeatGrid::to_bytes(self)
    }
    fn from_bytes(bytes: &[u8]) -> CoreResult<Self> {
        HeatGrid::from_bytes(bytes)
    }
}

impl AggState for AccessState {
    fn merge_from(&mut self, other: &Self) -> CoreResult<()> {
        self.merge(other)
    }
    fn to_bytes(&self) -> Vec<u8> {
        AccessState::to_bytes(self)
    }
    fn from_bytes(bytes: &[u8]) -> CoreResult<Self> {
        AccessState::from_bytes(bytes)
    }
}

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

/// The state of the aggregate `T`, if any. Every aggregate has its own support functions, so an
/// `internal` handed to them is always a `T`: pairing one aggregate's transition function with
/// another's final function takes `CREATE AGGREGATE ... STYPE = internal`, which PostgreSQL
/// allows superusers only (tests/pg_regress/sql/security.sql checks it).
///
/// # Safety
/// `state` must be null or hold a value of exactly the type `T`, made by this aggregate's
/// transition function (or its combine function, which makes the same type) and living in memory
/// that outlasts the returned reference (the aggregate's memory context).
pub unsafe fn state<T: AggState>(state: &Internal) -> Option<&T> {
    // SAFETY: the caller guarantees that a non-null `state` points to a live `T`.
    unsafe { state.get::<T>() }
}

/// Combine two partial states: the first (owned by the aggregate) absorbs the second, or is a
/// copy of it in the aggregate's context when it is still empty.
///
/// # Safety
/// `fcinfo` must be the call info of the running combine function, and `a` and `b` must each be
/// null or a state of type `T` of this aggregate (as for [`state`]).
pub unsafe fn combine<T: AggState>(
    a: Internal,
    b: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let mut a = a;
    // SAFETY: the caller guarantees that `a` and `b` are null or states of type `T`; they are
    // two distinct partial states, so the `&mut` and the `&` do not alias.
    match (unsafe { a.get_mut::<T>() }, unsafe { b.get::<T>() }) {
        (_, None) => a,
        (None, Some(b)) => {
            // SAFETY: `fcinfo` is the live call of this aggregate's combine function (the
            // caller's promise), so AggCheckCallContext may read it.
            let context = unsafe { aggregate_context(fcinfo) };
            // SAFETY: `context` is the aggregate's memory context, valid for the whole aggregate,
            // which outlives the copy allocated in it; switch_to restores the current context.
            unsafe { pgrx::PgMemoryContexts::For(context).switch_to(|_| Internal::new(b.clone())) }
        }
        (Some(sa), Some(sb)) => {
            sa.merge_from(sb).or_raise();
            a
        }
    }
}

/// A partial state as bytes, for parallel workers (empty when there is none).
///
/// # Safety
/// As for [`state`]: `st` must be null or a state of type `T` of this aggregate.
pub unsafe fn serialize<T: AggState>(st: Internal) -> Vec<u8> {
    // SAFETY: the caller guarantees that `st` is null or a live `T`.
    unsafe { state::<T>(&st) }
        .map(T::to_bytes)
        .unwrap_or_default()
}

pub fn deserialize<T: AggState>(bytes: &[u8]) -> Internal {
    Internal::new(T::from_bytes(bytes).or_raise())
}

/// The body of a raw transition function: skip rows with a NULL argument (as a STRICT function
/// would), `create` the state from the first row's arguments, then `add` each row. Both get the
/// arguments after the state.
///
/// # Safety
/// `fcinfo` must be the call of a transition function whose first argument is this aggregate's
/// `internal` state and whose other arguments `create` and `add` read as declared in SQL.
pub unsafe fn transition<T: AggState>(
    fcinfo: pg_sys::FunctionCallInfo,
    create: impl FnOnce(&[pg_sys::NullableDatum]) -> CoreResult<T>,
    add: impl FnOnce(&mut T, &[pg_sys::NullableDatum]) -> CoreResult<()>,
) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is the live call info of the transition function (the caller's
    // promise), and PostgreSQL fills `nargs` entries of its `args` array.
    let args = unsafe { (*fcinfo).args.as_slice((*fcinfo).nargs as usize) };
    let mut state: *mut T = args[0].value.cast_mut_ptr();
    if args[0].isnull {
        state = std::ptr::null_mut();
    }
    let row = &args[1..];
    if !row.iter().any(|a| a.isnull) {
        if state.is_null() {
            let fresh = create(row).or_raise();
            // SAFETY: `fcinfo` is the live call of this aggregate's transition function (the
            // caller's promise), so AggCheckCallContext may read it.
            let context = unsafe { aggregate_context(fcinfo) };
            state = pgrx::PgMemoryContexts::For(context).leak_and_drop_on_delete(fresh);
        }
        // SAFETY: a non-null state is a `T` in the aggregate's context.
        add(unsafe { &mut *state }, row).or_raise();
    }
    if state.is_null() {
        // SAFETY: `fcinfo` is the live call info of the running function (the caller's promise),
        // so its result flag may be written.
        unsafe { (*fcinfo).isnull = true };
    }
    pg_sys::Datum::from(state)
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

/// Declare a raw V1 function callable from SQL (`LANGUAGE c AS 'MODULE_PATHNAME', 'name'`): the
/// info record PostgreSQL looks up, and an entry point under `pg_guard` (so that a panic or an
/// ERROR unwinds cleanly) that calls `body(fcinfo)`.
macro_rules! v1_function {
    ($(#[$doc:meta])* $name:ident, $finfo:ident, $body:path) => {
        // SAFETY: the exported name (`$finfo`) is unique to this function.
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

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

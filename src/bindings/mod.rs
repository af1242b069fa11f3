//! The SQL layer: argument conversion, error mapping, and one module per SQL family.

pub mod access;
pub mod aggregate;
pub mod choropleth;
pub mod citus;
pub mod heat;
pub mod layers;
pub mod paths;
pub mod png;
pub mod points;
pub mod pyramid;
pub mod security;
pub mod vcs;
pub mod versions;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use vasttile_core::error::CoreError;

/// Report a core error as an SQL error: bad input is `22023 invalid_parameter_value`, a request
/// beyond our size limits is `54000 program_limit_exceeded`.
pub fn raise(err: CoreError) -> ! {
    let code = match err {
        CoreError::TooLarge { .. } => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        _ => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    sql_error(code, err.to_string())
}

/// Raise an SQL ERROR with the given SQLSTATE.
pub fn sql_error(code: PgSqlErrorCode, message: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "vasttile").report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Raise `22004 null_value_not_allowed` for a NULL passed to argument `index` (0-based) of a
/// function that is not STRICT but cannot take NULL there.
pub fn null_argument(index: usize) -> ! {
    sql_error(
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("argument {} must not be NULL", index + 1),
    )
}

/// serde_json's nesting limit: deeper JSON is refused (it would otherwise recurse without bound).
pub const MAX_JSON_DEPTH: usize = 128;

/// A non-null `jsonb` datum of the current call as a JSON value. JSON nested more than
/// `MAX_JSON_DEPTH` levels deep (which pgrx's `JsonB` turns into a panic, `XX000`) is a
/// `22023` error naming `what`.
///
/// # Safety
/// `datum` must be a non-null `jsonb` valid for the current call.
pub unsafe fn jsonb_value(datum: pg_sys::Datum, what: &str) -> serde_json::Value {
    let varlena = datum.cast_mut_ptr();
    // SAFETY: a valid jsonb varlena (the caller's promise), detoasted and printed by PostgreSQL.
    let text = unsafe {
        let detoasted = pg_sys::pg_detoast_datum_packed(varlena);
        let cstr = pgrx::direct_function_call::<&core::ffi::CStr>(
            pg_sys::jsonb_out,
            &[Some(detoasted.into())],
        );
        let text = cstr.map(|c| c.to_string_lossy().into_owned());
        if let Some(c) = cstr {
            pg_sys::pfree(c.as_ptr() as *mut core::ffi::c_void);
        }
        if detoasted != varlena {
            pg_sys::pfree(detoasted as *mut core::ffi::c_void);
        }
        text
    };
    let Some(text) = text else {
        return serde_json::Value::Null;
    };
    serde_json::from_str(&text).unwrap_or_else(|e| {
        let detail = if e.to_string().contains("recursion limit") {
            format!("is nested more than {MAX_JSON_DEPTH} levels deep")
        } else if e.to_string().contains("number out of range") {
            format!("holds a number beyond the range of float8: {e}")
        } else {
            format!("is not JSON that vasttile can read: {e}")
        };
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{what} {detail}"),
        )
    })
}

/// The value of an argument declared `Option<T>` in a function that is not STRICT but cannot
/// take NULL there: NULL is `22004` naming the argument.
pub fn required<T>(value: Option<T>, name: &str) -> T {
    value.unwrap_or_else(|| {
        sql_error(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{name} must not be NULL"),
        )
    })
}

/// A column or object name given as text, checked non-empty (quoted, an empty name is a
/// syntax error, 42601): empty is `22023` naming the argument.
pub fn check_name<'a>(value: &'a str, name: &str) -> &'a str {
    if value.is_empty() {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{name} must not be empty"),
        );
    }
    value
}

/// `jsonb` argument types read as JSON values, as pgrx's `JsonB` is, except that NULL where the
/// function is not STRICT is `22004` and JSON nested too deeply is `22023` (both `XX000` with
/// `JsonB`), each naming the argument: by `$what`, or by position.
macro_rules! jsonb_arg {
    ($(#[$doc:meta])* $name:ident, $what:expr) => {
        $(#[$doc])*
        pub struct $name(pub serde_json::Value);

        // SAFETY: unboxes a non-null jsonb datum of the current call, as pgrx's `JsonB` does.
        unsafe impl<'fcx> ::pgrx::callconv::ArgAbi<'fcx> for $name {
            /// # Safety
            /// As `ArgAbi::unbox_arg_unchecked`: `arg` is an argument of the current call whose
            /// SQL type is `jsonb` (NULL is allowed: it raises `22004`).
            unsafe fn unbox_arg_unchecked(arg: ::pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                let what: Option<&str> = $what;
                let what = what.map_or_else(|| format!("jsonb argument {}", index + 1), str::to_string);
                // SAFETY: `arg` is a jsonb argument of the current call (the caller's promise);
                // RawJsonb only keeps the datum, or None when it is NULL.
                match unsafe { arg.unbox_arg_using_from_datum::<RawJsonb>() } {
                    // SAFETY: `raw.0` is the non-null jsonb datum of that argument, valid for
                    // the current call.
                    Some(raw) => $name(unsafe { jsonb_value(raw.0, &what) }),
                    None => required(None, &what),
                }
            }

            /// # Safety
            /// As `ArgAbi::unbox_nullable_arg`: `arg` is an argument of the current call whose
            /// SQL type is `jsonb`.
            unsafe fn unbox_nullable_arg(
                arg: ::pgrx::callconv::Arg<'_, 'fcx>,
            ) -> ::pgrx::nullable::Nullable<Self> {
                if arg.is_null() {
                    ::pgrx::nullable::Nullable::Null
                } else {
                    // SAFETY: a non-null jsonb argument of the current call (the caller's
                    // promise and the check above).
                    ::pgrx::nullable::Nullable::Valid(unsafe { Self::unbox_arg_unchecked(arg) })
                }
            }
        }

        pgrx::impl_sql_translatable!($name, arg_only = "jsonb");
    };
}

jsonb_arg!(
    /// A `jsonb` argument (errors name it by position).
    Jsonb,
    None
);
jsonb_arg!(
    /// A `jsonb` style argument (errors name it "style").
    StyleJsonb,
    Some("style")
);
jsonb_arg!(
    /// A `jsonb` GeoJSON argument (errors name it "geojson").
    GeoJsonb,
    Some("geojson")
);

/// A `regclass` argument opened with an AccessShareLock, as pgrx's `PgRelation` is (it derefs
/// to one), except that an OID naming no relation (`'12345'::regclass` is accepted unchecked)
/// is `42P01 undefined_table` instead of `XX000`, and NULL where the function is not STRICT
/// is `22004`.
pub struct Relation(pub pgrx::PgRelation);

impl std::ops::Deref for Relation {
    type Target = pgrx::PgRelation;
    fn deref(&self) -> &pgrx::PgRelation {
        &self.0
    }
}

// SAFETY: reads a non-null regclass datum (an OID) of the current call.
unsafe impl<'fcx> ::pgrx::callconv::ArgAbi<'fcx> for Relation {
    /// # Safety
    /// As `ArgAbi::unbox_arg_unchecked`: `arg` is an argument of the current call whose SQL type
    /// is `regclass` (NULL is allowed: it raises `22004`).
    unsafe fn unbox_arg_unchecked(arg: ::pgrx::callconv::Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: `arg` is a regclass argument of the current call (the caller's promise), an
        // OID passed by value; None when it is NULL.
        let Some(oid) = (unsafe { arg.unbox_arg_using_from_datum::<pg_sys::Oid>() }) else {
            null_argument(index)
        };
        // SAFETY: opening by OID; NULL when no relation has it (the lock is then released).
        let rel = unsafe { pg_sys::try_relation_open(oid, pg_sys::AccessShareLock as _) };
        if rel.is_null() {
            sql_error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!(
                    "relation with OID {} does not exist (argument {})",
                    oid.to_u32(),
                    index + 1
                ),
            );
        }
        // SAFETY: an open relation we own; closed on drop (the lock lasts to the transaction's end).
        Relation(unsafe { pgrx::PgRelation::from_pg_owned(rel) })
    }

    /// # Safety
    /// As `ArgAbi::unbox_nullable_arg`: `arg` is an argument of the current call whose SQL type
    /// is `regclass`.
    unsafe fn unbox_nullable_arg(
        arg: ::pgrx::callconv::Arg<'_, 'fcx>,
    ) -> ::pgrx::nullable::Nullable<Self> {
        if arg.is_null() {
            ::pgrx::nullable::Nullable::Null
        } else {
            // SAFETY: a non-null regclass argument of the current call (the caller's promise
            // and the check above).
            ::pgrx::nullable::Nullable::Valid(unsafe { Self::unbox_arg_unchecked(arg) })
        }
    }
}

pgrx::impl_sql_translatable!(Relation, arg_only = "regclass");

/// `result.or_raise()`: the value, or an SQL error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, CoreError> {
    #[inline]
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e),
        }
    }
}

/// `ArgAbi` for an argument type that converts through `FromDatum`, as pgrx's own types do.
macro_rules! arg_through_from_datum {
    ($ty:ty) => {
        // SAFETY: unboxes through `FromDatum` exactly as pgrx does for its own argument types.
        unsafe impl<'fcx> ::pgrx::callconv::ArgAbi<'fcx> for $ty {
            /// # Safety
            /// As `ArgAbi::unbox_arg_unchecked`: `arg` is an argument of the current call whose
            /// SQL type is the one `$ty` converts from (NULL is allowed: it raises `22004`).
            unsafe fn unbox_arg_unchecked(arg: ::pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                // SAFETY: `arg` has the SQL type `$ty`'s `FromDatum` reads (the caller's
                // promise); a NULL gives None, which raises instead of being read.
                unsafe { arg.unbox_arg_using_from_datum() }
                    .unwrap_or_else(|| $crate::bindings::null_argument(index))
            }

            /// # Safety
            /// As `ArgAbi::unbox_nullable_arg`: `arg` is an argument of the current call whose
            /// SQL type is the one `$ty` converts from.
            unsafe fn unbox_nullable_arg(
                arg: ::pgrx::callconv::Arg<'_, 'fcx>,
            ) -> ::pgrx::nullable::Nullable<Self> {
                // SAFETY: `arg` has the SQL type `$ty`'s `FromDatum` reads (the caller's
                // promise); `FromDatum` itself turns a NULL into None.
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }
    };
}
pub(crate) use arg_through_from_datum;

/// A newtype over `Vec<u8>` for a domain over `bytea` (`heatgrid`, `vcspolygon`): pgrx passes
/// and returns it as `bytea`, and the generated SQL names the domain.
macro_rules! bytea_domain {
    ($(#[$doc:meta])* $name:ident, $sql:literal) => {
        $(#[$doc])*
        pub struct $name(pub Vec<u8>);

        impl ::pgrx::FromDatum for $name {
            /// # Safety
            /// As `FromDatum::from_polymorphic_datum`: `(datum, is_null)` is a valid `bytea` (or
            /// domain over it) value, or SQL NULL.
            unsafe fn from_polymorphic_datum(
                datum: ::pgrx::pg_sys::Datum,
                is_null: bool,
                oid: ::pgrx::pg_sys::Oid,
            ) -> Option<Self> {
                // SAFETY: the domain is a bytea, so the caller's bytea datum is what
                // `Vec<u8>`'s conversion reads.
                unsafe { Vec::<u8>::from_polymorphic_datum(datum, is_null, oid) }.map($name)
            }
        }

        impl ::pgrx::IntoDatum for $name {
            fn into_datum(self) -> Option<::pgrx::pg_sys::Datum> {
                self.0.into_datum()
            }

            fn type_oid() -> ::pgrx::pg_sys::Oid {
                ::pgrx::pg_sys::BYTEAOID
            }
        }

        $crate::bindings::arg_through_from_datum!($name);

        // SAFETY: returned as a bytea datum, which the domain is.
        unsafe impl ::pgrx::callconv::BoxRet for $name {
            /// # Safety
            /// As `BoxRet::box_into`: `fcinfo` is the current call of a function declared to
            /// return this domain (a `bytea`).
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut ::pgrx::callconv::FcInfo<'fcx>,
            ) -> ::pgrx::datum::Datum<'fcx> {
                match ::pgrx::IntoDatum::into_datum(self.0) {
                    // SAFETY: `d` is a bytea varlena just palloc'd in the current call's memory
                    // context, which lasts as long as the caller reads the result, and the
                    // function returns a bytea (domain).
                    Some(d) => unsafe { fcinfo.return_raw_datum(d) },
                    None => fcinfo.return_null(),
                }
            }
        }

        ::pgrx::impl_sql_translatable!($name, $sql);
    };
}
pub(crate) use bytea_domain;

/// A `jsonb` argument kept as its raw datum, so that an aggregate's transition function can read
/// the style once (on the first row) instead of converting it on every row.
pub struct RawJsonb(pub pg_sys::Datum);

impl FromDatum for RawJsonb {
    /// # Safety
    /// As `FromDatum::from_polymorphic_datum`. Nothing is read here: the datum is only kept, and
    /// [`RawJsonb::to_value`] reads it.
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<RawJsonb> {
        (!is_null).then_some(RawJsonb(datum))
    }
}

impl RawJsonb {
    /// Convert to a JSON value (JSON nested too deeply is a `22023` error naming the style).
    /// Only valid during the call that received it.
    pub fn to_value(&self) -> serde_json::Value {
        // SAFETY: the datum is a non-null jsonb argument of the current function call.
        unsafe { jsonb_value(self.0, "style") }
    }
}

pgrx::impl_sql_translatable!(RawJsonb, arg_only = "jsonb");

arg_through_from_datum!(RawJsonb);

thread_local! {
    /// Saved SPI plans by (relation OID, SQL text): planning costs more than reading a small
    /// tile. PostgreSQL's plan cache re-plans them when the table changes; the text holds the
    /// relation's current name, so a renamed table is prepared afresh.
    static PLANS: std::cell::RefCell<std::collections::HashMap<(u32, String), pgrx::spi::OwnedPreparedStatement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Run `f` with the saved plan of `sql` (parameters of `types`) for the relation `oid`,
/// preparing it on first use. The plan leaves the cache while it runs, so that a nested call
/// cannot find it borrowed.
pub fn with_saved_plan<R>(
    client: &spi::SpiClient<'_>,
    oid: pg_sys::Oid,
    sql: String,
    types: &[pgrx::PgBuiltInOids],
    f: impl FnOnce(&pgrx::spi::OwnedPreparedStatement) -> spi::SpiResult<R>,
) -> spi::SpiResult<R> {
    let key = (oid.to_u32(), sql);
    let plan = match PLANS.with(|plans| plans.borrow_mut().remove(&key)) {
        Some(plan) => plan,
        None => {
            let types: Vec<pgrx::PgOid> = types.iter().map(|t| pgrx::PgOid::BuiltIn(*t)).collect();
            client.prepare(key.1.as_str(), &types)?.keep()
        }
    };
    let result = f(&plan);
    PLANS.with(|plans| {
        let mut plans = plans.borrow_mut();
        // A backend rarely draws from many tables; bound the cache all the same.
        if plans.len() >= 64 {
            plans.clear();
        }
        plans.insert(key, plan);
    });
    result
}

/// As [`with_saved_plan`], for a scan of a tile's key range: the plan is made for each call's
/// range. A generic plan cannot know how many rows a range holds and always picks the index
/// scan, which costs a tile of the whole table about 10% more than the sequential scan, and
/// evaluates the tile's arguments per row as parameters instead of constants.
pub fn with_saved_scan_plan<R>(
    client: &spi::SpiClient<'_>,
    oid: pg_sys::Oid,
    sql: String,
    types: &[pgrx::PgBuiltInOids],
    f: impl FnOnce(&pgrx::spi::OwnedPreparedStatement) -> spi::SpiResult<R>,
) -> spi::SpiResult<R> {
    with_saved_plan(client, oid, sql, types, |plan| {
        security::with_setting(c"plan_cache_mode", c"force_custom_plan", || f(plan))
    })
}

/// A relation's name as SQL text, schema-qualified and quoted.
pub fn quoted_relation_name(rel: &pgrx::PgRelation) -> String {
    spi::quote_qualified_identifier(rel.namespace(), rel.name())
}

#[cfg(any(test, feature = "pg_test"))]
pub(crate) mod test_support {
    use pgrx::prelude::*;

    /// Run `sql` and return the SQLSTATE it fails with, or "ok".
    pub fn sqlstate_of(sql: &str) -> String {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $f$ \
             BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $f$",
        )
        .unwrap();
        Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[sql.into()])
            .unwrap()
            .unwrap_or_default()
    }
}

/// A `bytea` read through SPI, detoasted in the current memory context and copied out at once.
/// pgrx converts a `Vec<u8>` in the parent of the current context, which inside SPI is the
/// transaction's context: a build or a prerender reading thousands of tiles in one statement
/// would keep every detoasted copy until the transaction ends.
pub struct Bytes(pub Vec<u8>);

impl FromDatum for Bytes {
    /// # Safety
    /// As `FromDatum::from_polymorphic_datum`: `(datum, is_null)` is a valid `bytea` (or domain
    /// over it) value, or SQL NULL.
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Bytes> {
        if is_null || datum.is_null() {
            return None;
        }
        let varlena = datum.cast_mut_ptr::<pg_sys::varlena>();
        // SAFETY: a non-null bytea (or domain over it) datum of the current row: detoasted by
        // PostgreSQL into a fresh copy when needed, read, and that copy freed.
        unsafe {
            let detoasted = pg_sys::pg_detoast_datum_packed(varlena);
            let len = pgrx::varlena::varsize_any_exhdr(detoasted);
            let data = pgrx::varlena::vardata_any(detoasted) as *const u8;
            let bytes = std::slice::from_raw_parts(data, len).to_vec();
            if detoasted != varlena {
                pg_sys::pfree(detoasted.cast());
            }
            Some(Bytes(bytes))
        }
    }

    /// # Safety
    /// As `FromDatum::from_datum_in_memory_context`: `(datum, is_null)` is a valid `bytea` (or
    /// domain over it) value, or SQL NULL.
    unsafe fn from_datum_in_memory_context(
        _memory_context: pgrx::PgMemoryContexts,
        datum: pg_sys::Datum,
        is_null: bool,
        typoid: pg_sys::Oid,
    ) -> Option<Bytes> {
        // SAFETY: as above; nothing is left in any context.
        unsafe { Self::from_polymorphic_datum(datum, is_null, typoid) }
    }
}

impl IntoDatum for Bytes {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        self.0.into_datum()
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::BYTEAOID
    }
}

/// Run `f`, which reads SPI rows with pgrx's conversions, so that what those conversions
/// allocate (in the parent of the current memory context) is freed when it returns: `f` runs in
/// a child of a context deleted afterwards. `f` returns Rust-owned data only.
pub fn with_row_memory<R>(f: impl FnOnce() -> R) -> R {
    in_scratch_context(c"vasttile rows", || in_scratch_context(c"vasttile row", f))
}

/// Run `f` in a new memory context, a child of the current one, deleted when `f` returns (or
/// unwinds). Made directly rather than with pgrx's `PgMemoryContexts::new`, which copies the
/// name into the current context each time: a build makes millions of these.
pub fn in_scratch_context<R>(name: &'static core::ffi::CStr, f: impl FnOnce() -> R) -> R {
    struct Scratch {
        context: pg_sys::MemoryContext,
        previous: pg_sys::MemoryContext,
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            // SAFETY: switches back to the context current before, then deletes the one made
            // below (and its children), on the backend's own thread.
            unsafe {
                pg_sys::CurrentMemoryContext = self.previous;
                pg_sys::MemoryContextDelete(self.context);
            }
        }
    }
    // SAFETY: a new AllocSet context under the current one, with a static name; made current
    // until the guard switches back and deletes it.
    let _scratch = unsafe {
        let previous = pg_sys::CurrentMemoryContext;
        let context = pg_sys::AllocSetContextCreateExtended(
            previous,
            name.as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        pg_sys::CurrentMemoryContext = context;
        Scratch { context, previous }
    };
    f()
}

bytea_domain!(
    /// A `heatgrid` value: the bytes of a serialised `HeatGrid` (heat, access and pyramids).
    HeatGridBytes,
    "heatgrid"
);

impl HeatGridBytes {
    /// The grid, checked: stored bytes are untrusted.
    pub fn grid(&self) -> vasttile_core::raster::heat::HeatGrid {
        vasttile_core::raster::heat::HeatGrid::from_bytes(&self.0).or_raise()
    }
}

/// Threads for kernel work: none besides our own inside a parallel worker (rule: no thread pools
/// in parallel workers), else the machine's.
pub fn threads() -> usize {
    // SAFETY: reading a backend-local global, set once when the process starts as a worker.
    if unsafe { pg_sys::ParallelWorkerNumber } >= 0 {
        1
    } else {
        vasttile_core::parallel::available_threads()
    }
}

/// SPI failures inside a build are internal errors, reported with what was being done.
pub trait OrSpiError<T> {
    fn or_spi_error(self, what: &str) -> T;
}

impl<T> OrSpiError<T> for pgrx::spi::SpiResult<T> {
    fn or_spi_error(self, what: &str) -> T {
        self.unwrap_or_else(|e| {
            sql_error(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("{what}: {e}"),
            )
        })
    }
}

//! Who may do what with stored tiles (see "Security model" in the README).
//!
//! - The extension's tables belong to the extension's owner and grant PUBLIC nothing but SELECT
//!   on the definitions (`heat_pyramids`, `skeleton_layers`). Tiles, logs and caches are read
//!   and written only here, after the checks below, with the extension owner as current user
//!   (`as_catalog_owner`), the way PostgreSQL runs referential-integrity queries as a table's
//!   owner: a local user change under `SECURITY_RESTRICTED_OPERATION`.
//! - Creating, rebuilding, refreshing or dropping a pyramid or skeleton layer needs the
//!   privileges of the source table's owner (as for `REFRESH MATERIALIZED VIEW`), and of the
//!   role that created it when the name exists.
//! - A stored tile is served only to a caller with SELECT on the source table and no row-level
//!   security active on it ([`source_access`]); everything else reads the table as the caller.

use super::sql_error;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi;
use std::ffi::CStr;

/// What a caller may read of a table's stored derivatives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// SELECT on the table and no row security for the caller: stored tiles are theirs to see.
    Full,
    /// SELECT, but row-level security filters the caller's rows: draw on the fly, never serve
    /// stored tiles.
    RowSecurity,
    /// No SELECT on the table.
    Denied,
}

/// The caller's access to table `rel` (an OID), checked as the current user.
pub fn source_access(rel: pg_sys::Oid) -> Access {
    let row = with_fixed_search_path(|| {
        Spi::get_two_with_args::<bool, bool>(
            "SELECT pg_catalog.has_table_privilege($1, 'SELECT'), pg_catalog.row_security_active($1)",
            &[rel.into()],
        )
    });
    match row {
        Ok((Some(true), Some(false))) => Access::Full,
        Ok((Some(true), _)) => Access::RowSecurity,
        Ok(_) => Access::Denied,
        Err(e) => sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("checking access to relation {}: {e}", rel.to_u32()),
        ),
    }
}

/// Raise `42501` unless stored tiles of `rel` may be served to the caller: `what` names the
/// stored object (e.g. `heat pyramid "acts"`).
pub fn require_full_access(rel: pg_sys::Oid, what: &str) {
    match source_access(rel) {
        Access::Full => {}
        Access::RowSecurity => denied(
            format!("row-level security is active for you on {}: {what} stores every row and is not served to you", relation_name(rel)),
            "Draw your own rows on the fly instead (heat_tile, heat_grid_paths, skeleton_tile).",
        ),
        Access::Denied => denied(
            format!("permission denied for table {}", relation_name(rel)),
            &format!("{what} is served only to roles with SELECT on its table."),
        ),
    }
}

/// Raise `42501` unless the caller has the privileges of the owner of `rel`.
pub fn require_table_owner(rel: pg_sys::Oid, action: &str) {
    let ok = with_fixed_search_path(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[rel.into()],
        )
    });
    if !matches!(ok, Ok(Some(true))) {
        denied(
            format!("must be owner of table {} to {action}", relation_name(rel)),
            "Ask the table's owner, or a member of its owner role, to do it.",
        );
    }
}

/// Serialise, until the transaction ends, everything done to the pyramid or layer of this
/// name (creating, replacing, dropping), so that the checks before it still hold when it acts.
pub fn lock_name(kind: &str, name: &str) {
    with_fixed_search_path(|| {
        Spi::run_with_args(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))",
            &[format!("vasttile {kind} {name}").into()],
        )
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("locking {kind} \"{name}\": {e}"),
        )
    });
}

/// Raise `22023` for a temporary table: a stored pyramid or layer outlives the session that
/// owns it, and its name would be taken from everyone else.
pub fn require_lasting_table(rel: pg_sys::Oid) {
    let temporary = with_fixed_search_path(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT c.relpersistence = 't' FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[rel.into()],
        )
    });
    if matches!(temporary, Ok(Some(true))) {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "table {} is temporary: pyramids and layers are made over lasting tables",
                relation_name(rel)
            ),
        );
    }
}

/// Raise `42501` unless the caller has the privileges of role `owner` (the creator of a stored
/// object named `what`).
/// When that role no longer exists, the owner of the object's table (`source`) may act instead.
pub fn require_role(owner: pg_sys::Oid, source: pg_sys::Oid, what: &str, action: &str) {
    // A creator role that no longer exists leaves the object to its table's owner.
    let (ok, gone) = with_fixed_search_path(|| {
        Spi::get_two_with_args::<bool, bool>(
            "SELECT pg_catalog.pg_has_role($1, 'USAGE'), false FROM pg_catalog.pg_roles WHERE oid = $1 \
             UNION ALL SELECT false, true WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = $1)",
            &[owner.into()],
        )
    })
    .unwrap_or((None, None));
    if gone == Some(true) {
        require_table_owner(
            source,
            &format!("{action} {what}, whose creator no longer exists,"),
        );
        return;
    }
    if ok != Some(true) {
        let name = Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.pg_get_userbyid($1)::text",
            &[owner.into()],
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        denied(
            format!("must be a member of role \"{name}\" to {action} {what}"),
            &format!("{what} was created by role \"{name}\"."),
        );
    }
}

fn denied(message: String, hint: &str) -> ! {
    pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message,
        "vasttile",
    )
    .set_hint(hint.to_string())
    .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// A relation's name for messages (its OID when it is gone).
pub fn relation_name(rel: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT $1::pg_catalog.regclass::text", &[rel.into()])
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("with OID {}", rel.to_u32()))
}

/// A relation's schema-qualified, quoted name (whatever the search path).
pub fn qualified_name(rel: pg_sys::Oid) -> String {
    with_fixed_search_path(|| relation_name(rel))
}

/// The role that owns the extension (and so its tables).
fn extension_owner() -> pg_sys::Oid {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'vasttile'",
    );
    match owner {
        Ok(Some(o)) => o,
        _ => sql_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "extension \"vasttile\" is not installed in this database",
        ),
    }
}

// Flags of miscadmin.h: a user change local to this operation, during which the code may not
// change session state (SET ROLE, temporary tables, cursors WITH HOLD, ...).
const SECURITY_LOCAL_USERID_CHANGE: i32 = 0x0001;
const SECURITY_RESTRICTED_OPERATION: i32 = 0x0002;

/// Restores the caller's user id when dropped (also when an ERROR unwinds through it; an
/// aborted (sub)transaction restores it as well).
struct UserGuard {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        // SAFETY: plain setter of two backend globals, called on the backend's own thread.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) }
    }
}

/// Run `f` (SPI on vasttile's own tables only, with values as parameters) as the extension's
/// owner. Callers check the caller's rights first. `f` runs in a memory context of its own,
/// deleted afterwards (a build writes thousands of tiles from one call: their parameters must
/// not pile up until it returns), so it returns Rust-owned data only. (Values pgrx converts
/// from SPI rows land in the parent of SPI's context instead: large ones are read as
/// `Bytes`, and loops over rows use `with_row_memory`.)
pub fn as_catalog_owner<R>(f: impl FnOnce() -> R) -> R {
    require_schema_version();
    // `f` returns Rust-owned values (SPI results are copied out), so nothing it returns points
    // into the context deleted after it.
    super::in_scratch_context(c"vasttile catalog", || {
        with_fixed_search_path(|| as_owner(f))
    })
}

thread_local! {
    /// The installed schema was found to be this library's version (checked once a backend).
    static SCHEMA_CHECKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The extension's tables must be those of this library's version: after the library is
/// replaced and before `ALTER EXTENSION vasttile UPDATE`, a catalog query would fail on a
/// missing column. Say what to do instead (55000), once per backend when it holds.
fn require_schema_version() {
    if SCHEMA_CHECKED.with(|c| c.get()) {
        return;
    }
    let installed = with_fixed_search_path(|| {
        Spi::get_one::<String>(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vasttile'",
        )
    })
    .ok()
    .flatten()
    .unwrap_or_default();
    let library = env!("CARGO_PKG_VERSION");
    if installed != library {
        pgrx::pg_sys::panic::ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the vasttile schema in this database is version {installed}, its library is {library}"),
            "vasttile",
        )
        .set_hint("Run ALTER EXTENSION vasttile UPDATE in this database.")
        .report(PgLogLevel::ERROR);
    }
    SCHEMA_CHECKED.with(|c| c.set(true));
}

/// Puts `search_path` back when dropped (an aborted (sub)transaction does as well).
struct GucGuard(i32);

impl Drop for GucGuard {
    fn drop(&mut self) {
        // SAFETY: pops the GUC nest level pushed in `with_setting`, on the backend's own
        // thread; a SAVE action is undone whether the level commits or not.
        unsafe { pg_sys::AtEOXact_GUC(true, self.0) }
    }
}

/// Run `f` with the user-settable parameter `name` set to `value`, as PostgreSQL does for a
/// function with a `SET` clause: the setting is undone however `f` ends (on an error, by the
/// abort of the current (sub)transaction if not before).
pub fn with_setting<R>(name: &CStr, value: &CStr, f: impl FnOnce() -> R) -> R {
    // SAFETY: pushes a GUC nest level and sets a parameter in it (callers pass fixed, valid
    // text); the guard pops the level however `f` ends.
    let _guard = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        let guard = GucGuard(level);
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        guard
    };
    f()
}

/// Run `f` with `search_path` set to `pg_catalog, pg_temp` (temporary objects last, so no
/// temporary type, function or operator stands in for a built-in one), as PostgreSQL does for a
/// function with a `SET search_path` clause. Everything that runs as the extension's owner, and
/// the checks of the caller's rights, run this way: a caller's search path must not choose the
/// operators and types of vasttile's own queries.
pub fn with_fixed_search_path<R>(f: impl FnOnce() -> R) -> R {
    with_setting(c"search_path", c"pg_catalog, pg_temp", f)
}

fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    let (mut user, mut context) = (pg_sys::Oid::INVALID, 0i32);
    // SAFETY: reads two backend globals into locals, on the backend's own thread.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let _guard = UserGuard { user, context };
    // SAFETY: as above; the guard puts the caller's id back however `f` ends.
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            owner,
            context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION,
        )
    };
    f()
}

// ---------------------------------------------------------------------------------------------
// Names and triggers of stored objects.

/// Names of pyramids and layers are 1 to 63 bytes (the length of an SQL identifier).
pub fn check_name(name: &str) {
    if name.is_empty() || name.len() > 63 {
        sql_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("name must be 1 to 63 bytes long, got {} bytes", name.len()),
        );
    }
}

/// The current user (the caller, outside `as_catalog_owner`).
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: reads a backend global on the backend's own thread.
    unsafe { pg_sys::GetUserId() }
}

/// The trigger of stored object `name` (of `kind`, e.g. "pyramid") for `event`: named by a
/// hash of the name, so always a valid identifier within 63 bytes; found again by table,
/// function and argument, not by name ([`drop_triggers`]).
pub fn trigger_name(kind: &str, name: &str, event: &str) -> String {
    let hash =
        Spi::get_one_with_args::<String>("SELECT left(pg_catalog.md5($1), 16)", &[name.into()])
            .ok()
            .flatten()
            .unwrap_or_default();
    format!("vasttile_{kind}_{hash}_{}", event.to_lowercase())
}

/// Drop the triggers on table `rel` that call `function` (a regprocedure, e.g.
/// `vasttile.skeleton_invalidate()`) with `name` as their one argument, as the caller:
/// dropping needs the table's ownership.
pub fn drop_triggers(function: &str, name: &str, rel: pg_sys::Oid) {
    let found = Spi::connect(|client| {
        let rows = client.select(
            "SELECT format('DROP TRIGGER %I ON %I.%I', t.tgname, n.nspname, c.relname) \
             FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE t.tgrelid = $1 AND t.tgfoid = $2::pg_catalog.regprocedure \
               AND t.tgnargs = 1 \
               AND t.tgargs = pg_catalog.convert_to($3, pg_catalog.getdatabaseencoding()) \
                              || pg_catalog.decode('00', 'hex')",
            None,
            &[rel.into(), function.into(), name.into()],
        )?;
        rows.map(|r| r.get::<String>(1))
            .collect::<spi::SpiResult<Vec<Option<String>>>>()
    })
    .unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("looking up triggers: {e}"),
        )
    });
    if found.iter().all(Option::is_none) {
        return;
    }
    // Citus drops a distributed table's trigger from its shards too.
    super::citus::with_triggers_allowed(rel, || {
        for ddl in found.into_iter().flatten() {
            // One statement per call: the text is made by format('%I') from the catalog.
            Spi::run(&ddl).unwrap_or_else(|e| {
                sql_error(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("dropping triggers: {e}"),
                )
            });
        }
    });
}

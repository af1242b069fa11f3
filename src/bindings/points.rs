//! SQL family: point tiles (each distinct pixel drawn once as a dot).
//!
//! `dot_tile_agg(...)` is an aggregate over any query; `dot_tile(table, z, x, y, ...)` reads a
//! table through its Morton key ranges and runs that aggregate. The aggregate's state is
//! `internal` with combine/serialise/deserialise, so PostgreSQL's parallel query can split it.

use super::aggregate::{self, int4, int8, v1_function, v1_transition};
use super::{
    check_name, quoted_relation_name, sql_error, with_saved_scan_plan, OrRaise, RawJsonb, Relation,
    StyleJsonb,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi;
use vasttile_core::error::CoreResult;
use vasttile_core::geometry::vcs::{tile_key_ranges, Tile};
use vasttile_core::raster::dots::{DotStyle, DotTileState};

/// Transition body of both `dot_tile_agg` forms: after the state come the point (`point_args`
/// values), z, tile_x, tile_y and the style (read from the first row only).
///
/// # Safety
/// `fcinfo` must be a call of one of the transition functions declared below.
unsafe fn dot_transition(
    fcinfo: pg_sys::FunctionCallInfo,
    point_args: usize,
    add: impl FnOnce(&mut DotTileState, &[pg_sys::NullableDatum]) -> CoreResult<()>,
) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is a dot_tile_agg transition call (the caller's promise): argument 0 is
    // null or a `DotTileState` (the only type its support functions store), and the closures read
    // point, z, tile_x, tile_y and the (non-null, rows with NULLs are skipped) jsonb style.
    unsafe {
        aggregate::transition(
            fcinfo,
            |row| {
                let t = &row[point_args..];
                let style = RawJsonb(t[3].value).to_value();
                DotTileState::new(int4(&t[0]), int4(&t[1]), int4(&t[2]), &style)
            },
            |s, row| {
                let t = &row[point_args..];
                s.check_tile(int4(&t[0]), int4(&t[1]), int4(&t[2]))?;
                add(s, row)
            },
        )
    }
}

/// # Safety
/// `fcinfo` must be a call of the transition function declared below.
unsafe fn trans_xy(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is a call of dot_tile_trans(dot_state, x int4, y int4, ...) (the caller's
    // promise), whose point is the two int4 values read here.
    unsafe { dot_transition(fcinfo, 2, |s, p| s.add_point(int4(&p[0]), int4(&p[1]))) }
}

v1_transition!(
    /// Transition of `dot_tile_agg(x int4, y int4, z, tile_x, tile_y, style)`.
    vasttile_dot_tile_trans,
    pg_finfo_vasttile_dot_tile_trans,
    DotTileState,
    |s: &mut DotTileState, row: &[pg_sys::NullableDatum]| {
        s.check_tile(int4(&row[2]), int4(&row[3]), int4(&row[4]))?;
        s.add_point(int4(&row[0]), int4(&row[1]))
    },
    trans_xy
);

/// # Safety
/// `fcinfo` must be a call of the transition function declared below.
unsafe fn trans_key(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: `fcinfo` is a call of dot_tile_trans_key(dot_state, key int8, ...) (the caller's
    // promise), whose point is the one int8 value read here.
    unsafe { dot_transition(fcinfo, 1, |s, p| s.add_key(int8(&p[0]))) }
}

v1_transition!(
    /// Transition of `dot_tile_agg(key int8, z, tile_x, tile_y, style)`.
    vasttile_dot_tile_trans_key,
    pg_finfo_vasttile_dot_tile_trans_key,
    DotTileState,
    |s: &mut DotTileState, row: &[pg_sys::NullableDatum]| {
        s.check_tile(int4(&row[1]), int4(&row[2]), int4(&row[3]))?;
        s.add_key(int8(&row[0]))
    },
    trans_key
);

/// # Safety
/// `fcinfo` must be a call of `dot_tile_final(dot_state)`.
unsafe fn state_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: argument 0 is NULL or a dot_state (the caller's promise).
    unsafe {
        let png = aggregate::state_arg::<DotTileState>(fcinfo, 0).and_then(|s| {
            s.render_png(&mut || {
                pgrx::check_for_interrupts!();
            })
            .or_raise()
        });
        aggregate::result(fcinfo, png)
    }
}
v1_function!(
    /// Final function of the dot_tile_agg aggregates: the PNG.
    vasttile_dot_tile_final,
    pg_finfo_vasttile_dot_tile_final,
    state_final
);

v1_function!(
    /// Combine function of the dot_tile aggregates.
    vasttile_dot_tile_combine,
    pg_finfo_vasttile_dot_tile_combine,
    aggregate::combine::<DotTileState>
);
v1_function!(
    /// Input of `dot_state`.
    vasttile_dot_state_in,
    pg_finfo_vasttile_dot_state_in,
    aggregate::state_in::<DotTileState>
);
v1_function!(
    /// Output of `dot_state`.
    vasttile_dot_state_out,
    pg_finfo_vasttile_dot_state_out,
    aggregate::state_out::<DotTileState>
);

pgrx::extension_sql!(
    r#"
-- The running state of dot_tile_agg: the distinct pixels seen, updated in place. Its text form (hex of its bytes) is how Citus ships partial states from workers.
CREATE TYPE dot_state;
CREATE FUNCTION dot_state_in(cstring) RETURNS dot_state
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_state_in';
CREATE FUNCTION dot_state_out(dot_state) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_state_out';
CREATE TYPE dot_state (INPUT = dot_state_in, OUTPUT = dot_state_out, INTERNALLENGTH = VARIABLE, STORAGE = extended);
COMMENT ON TYPE dot_state IS 'vasttile: running state of the dot_tile aggregates';
CREATE FUNCTION dot_tile_final(dot_state) RETURNS bytea
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_tile_final';
CREATE FUNCTION dot_tile_combine(dot_state, dot_state) RETURNS dot_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_tile_combine';
"#,
    name = "dot_state_type",
);

pgrx::extension_sql!(
    r#"
CREATE FUNCTION dot_tile_trans(state dot_state, x int4, y int4, z int4, tile_x int4, tile_y int4, style jsonb)
    RETURNS dot_state IMMUTABLE PARALLEL SAFE LANGUAGE c
    AS 'MODULE_PATHNAME', 'vasttile_dot_tile_trans';

CREATE AGGREGATE dot_tile_agg(x int4, y int4, z int4, tile_x int4, tile_y int4, style jsonb) (
    SFUNC = dot_tile_trans,
    STYPE = dot_state, SSPACE = 16384,
    FINALFUNC = dot_tile_final,
    COMBINEFUNC = dot_tile_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dot_tile_agg(int4, int4, int4, int4, int4, jsonb) IS
    'PNG point tile (z, tile_x, tile_y) from VCS points (x, y): each distinct pixel drawn once as a dot; NULL when no dot shows';

CREATE FUNCTION dot_tile_trans_key(state dot_state, key int8, z int4, tile_x int4, tile_y int4, style jsonb)
    RETURNS dot_state IMMUTABLE PARALLEL SAFE LANGUAGE c
    AS 'MODULE_PATHNAME', 'vasttile_dot_tile_trans_key';

CREATE AGGREGATE dot_tile_agg(key int8, z int4, tile_x int4, tile_y int4, style jsonb) (
    SFUNC = dot_tile_trans_key,
    STYPE = dot_state, SSPACE = 16384,
    FINALFUNC = dot_tile_final,
    COMBINEFUNC = dot_tile_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE dot_tile_agg(int8, int4, int4, int4, jsonb) IS
    'PNG point tile (z, tile_x, tile_y) from Morton keys: each distinct pixel drawn once as a dot; NULL when no dot shows';
"#,
    name = "dot_tile_aggregates",
    requires = ["dot_state_type",],
);

/// Point tile of a table or view through its Morton key column: B-tree range scans over the tile
/// and over a bounded set of ranges for the ring its dots reach into, fed to `dot_tile_agg`.
#[pg_extern(stable, parallel_safe)]
fn dot_tile(
    tbl: Relation,
    z: i32,
    x: i32,
    y: i32,
    style: default!(StyleJsonb, "'{}'"),
    key_column: default!(&str, "'vcs_key'"),
) -> Option<Vec<u8>> {
    let key_column = check_name(key_column, "key_column");
    let tile = Tile::new(z, x, y).or_raise();
    let dot_style = DotStyle::from_json(&style.0).or_raise();
    let ranges = tile_key_ranges(tile, dot_style.size, dot_style.reach() as i64).or_raise();
    let (lo, hi): (Vec<i64>, Vec<i64>) = ranges.into_iter().unzip();
    let args = [
        z.into(),
        x.into(),
        y.into(),
        pgrx::JsonB(style.0).into(),
        lo.into(),
        hi.into(),
    ];
    let result = Spi::connect(|client| {
        with_dot_tile_plan(client, &tbl, key_column, |plan| {
            client
                .select(plan, Some(1), &args)?
                .first()
                .get_one::<Vec<u8>>()
        })
    });
    result.unwrap_or_else(|e| {
        sql_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("dot_tile: {e}"),
        )
    })
}

/// Run `f` with the prepared `dot_tile` query for this table and key column.
fn with_dot_tile_plan<R>(
    client: &spi::SpiClient<'_>,
    tbl: &pgrx::PgRelation,
    key_column: &str,
    f: impl FnOnce(&spi::OwnedPreparedStatement) -> spi::SpiResult<R>,
) -> spi::SpiResult<R> {
    let key = spi::quote_identifier(key_column);
    // A join against the ranges plans as a nested loop of parameterised index(-only) scans,
    // where an OR of ~100 ranges would take milliseconds to plan.
    let sql = format!(
        "SELECT vasttile.dot_tile_agg(t.{key}, $1, $2, $3, $4) \
         FROM unnest($5::int8[], $6::int8[]) AS r(lo, hi) \
         JOIN {table} AS t ON t.{key} >= r.lo AND t.{key} < r.hi",
        table = quoted_relation_name(tbl),
    );
    use pgrx::PgBuiltInOids as T;
    let types = [
        T::INT4OID,
        T::INT4OID,
        T::INT4OID,
        T::JSONBOID,
        T::INT8ARRAYOID,
        T::INT8ARRAYOID,
    ];
    with_saved_scan_plan(client, tbl.oid(), sql, &types, f)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::bindings::test_support::sqlstate_of;
    use pgrx::prelude::*;
    use vasttile_core::encoding::png::decode;

    fn bytes(sql: &str) -> Option<Vec<u8>> {
        Spi::get_one::<Vec<u8>>(sql).unwrap()
    }

    fn visible(sql: &str) -> usize {
        bytes(sql).map_or(0, |png| decode(&png).unwrap().opaque_count())
    }

    /// 5,000 points spread over the US, keyed and indexed like a real points table.
    fn us_points() {
        Spi::run(
            "CREATE TABLE us AS SELECT x, y, vasttile.vcs_key(x, y) AS vcs_key FROM ( \
               SELECT vasttile.lon_to_vcs(-125 + (g * 7919 % 5800) / 100.0) AS x, \
                      vasttile.lat_to_vcs(25 + (g * 104729 % 2400) / 100.0) AS y \
               FROM generate_series(1, 5000) g) s; \
             CREATE INDEX ON us (vcs_key); ANALYZE us;",
        )
        .unwrap();
    }

    #[pg_test]
    fn table_function_equals_the_aggregate_over_any_query() {
        us_points();
        let style = r##"'{"radius": 2, "color": "#ff000080"}'"##;
        let by_table = bytes(&format!("SELECT vasttile.dot_tile('us', 4, 3, 6, {style})"));
        let by_xy = bytes(&format!(
            "SELECT vasttile.dot_tile_agg(x, y, 4, 3, 6, {style}) FROM us"
        ));
        let by_key = bytes(&format!(
            "SELECT vasttile.dot_tile_agg(vcs_key, 4, 3, 6, {style}) FROM us"
        ));
        assert!(by_table.is_some());
        assert_eq!(by_table, by_xy);
        assert_eq!(by_table, by_key);
    }

    #[pg_test]
    fn empty_tiles_are_null() {
        us_points();
        assert_eq!(bytes("SELECT vasttile.dot_tile('us', 4, 12, 3)"), None);
        assert_eq!(
            bytes("SELECT vasttile.dot_tile_agg(x, y, 4, 3, 6, '{}') FROM us WHERE false"),
            None
        );
        // Rows with NULLs are skipped, as by a STRICT aggregate.
        assert_eq!(
            bytes("SELECT vasttile.dot_tile_agg(NULL::int4, y, 4, 3, 6, '{}') FROM us"),
            None
        );
        // Fully transparent dots show nothing: NULL too.
        assert_eq!(
            bytes(r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '{"opacity": 0}')"#),
            None
        );
    }

    #[pg_test]
    fn all_points_in_one_pixel_draw_one_dot() {
        let n = visible(
            "SELECT vasttile.dot_tile_agg(1073741824 + g, 1073741824 + g, 0, 0, 0, '{\"radius\": 0}') \
             FROM generate_series(1, 10000) g",
        );
        assert_eq!(n, 1);
    }

    #[pg_test]
    fn dots_reach_across_tile_edges() {
        // One point 1 px (at z4) west of the edge between tiles (4, 3, 6) and (4, 4, 6).
        Spi::run(
            "CREATE TABLE edge AS SELECT vasttile.vcs_key(x, y) AS vcs_key FROM \
             (SELECT (4 << 27) - (1 << 19) AS x, (6 << 27) + (100 << 19) AS y) s",
        )
        .unwrap();
        let style = r#"'{"radius": 3}'"#;
        assert!(
            visible(&format!(
                "SELECT vasttile.dot_tile('edge', 4, 3, 6, {style})"
            )) > 0
        );
        assert!(
            visible(&format!(
                "SELECT vasttile.dot_tile('edge', 4, 4, 6, {style})"
            )) > 0
        );
        assert_eq!(
            visible("SELECT vasttile.dot_tile('edge', 4, 4, 6, '{\"radius\": 0}')"),
            0
        );
    }

    #[pg_test]
    fn parallel_aggregate_equals_serial() {
        Spi::run(
            "CREATE TABLE big AS SELECT (g::int8 * 2654435761) % 2147483648 AS x, (g::int8 * 40503) % 2147483648 AS y \
             FROM generate_series(1, 300000) g; ANALYZE big;",
        )
        .unwrap();
        let q =
            "SELECT vasttile.dot_tile_agg(x::int4, y::int4, 1, 0, 1, '{\"radius\": 1.5}') FROM big";
        Spi::run(
            "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; \
             SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2",
        )
        .unwrap();
        let plan = Spi::explain(q).unwrap().0.to_string();
        assert!(plan.contains(r#""Partial Mode":"Partial""#), "{plan}");
        let parallel = bytes(q);
        Spi::run("SET max_parallel_workers_per_gather = 0").unwrap();
        assert!(parallel.is_some());
        assert_eq!(parallel, bytes(q));
    }

    /// Not STRICT (it has an `Option` argument), so PostgreSQL hands NULLs to the others too.
    #[pg_extern(immutable, parallel_safe)]
    fn null_args_probe(
        raw: crate::bindings::RawJsonb,
        style: crate::bindings::StyleJsonb,
        tbl: crate::bindings::Relation,
        n: Option<i32>,
    ) -> i32 {
        let _ = (raw.to_value(), style.0, tbl.oid());
        crate::bindings::required(n, "n")
    }

    /// Inputs that used to end in XX000 (a panic or an unchecked elog): each is a clean error.
    #[pg_test]
    fn hostile_arguments_are_clean_errors() {
        us_points();
        let deep = "(repeat('[', 10000) || repeat(']', 10000))::jsonb";
        let pixel = "vasttile.pixel_key(vasttile.tile_key_lo(4, 3, 6), 4)";
        for (sql, state) in [
            // NULL to a non-STRICT function's arguments that cannot take it: 22004.
            ("SELECT tests.null_args_probe('{}', '{}', 'us', 1)".to_string(), "ok"),
            ("SELECT tests.null_args_probe(NULL, '{}', 'us', 1)".into(), "22004"),
            ("SELECT tests.null_args_probe('{}', NULL, 'us', 1)".into(), "22004"),
            ("SELECT tests.null_args_probe('{}', '{}', NULL, 1)".into(), "22004"),
            ("SELECT tests.null_args_probe('{}', '{}', 'us', NULL)".into(), "22004"),
            // JSON nested deeper than serde_json reads, or numbers beyond f64: 22023.
            (format!("SELECT vasttile.dot_tile('us', 4, 3, 6, {deep})"), "22023"),
            (format!("SELECT vasttile.dot_tile_agg(x, y, 4, 3, 6, {deep}) FROM us"), "22023"),
            (format!("SELECT tests.null_args_probe({deep}, '{{}}', 'us', 1)"), "22023"),
            (format!("SELECT tests.null_args_probe('{{}}', {deep}, 'us', 1)"), "22023"),
            (r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '{"radius": 1e400}')"#.into(), "22023"),
            // A regclass naming no relation: 42P01, not "could not open relation" (XX000).
            ("SELECT vasttile.dot_tile(2147483647::oid::regclass, 4, 3, 6)".into(), "42P01"),
            ("SELECT vasttile.access_tile(0::oid::regclass, 4, 3, 6)".into(), "42P01"),
            ("SELECT vasttile.dot_tile('us', 4, 3, 6, '{}', '')".into(), "22023"),
            // TopoJSON arc indexes out of range (a panic in the topojson crate).
            (r#"SELECT * FROM vasttile.polygons_from_topojson('{"type": "Topology", "arcs": [], "objects": {"o": {"type": "Polygon", "arcs": [[0]]}}}', 'o')"#.into(), "22023"),
            (r#"SELECT * FROM vasttile.paths_from_topojson('{"type": "Topology", "arcs": [], "objects": {"o": {"type": "LineString", "arcs": [-3]}}}', 'o')"#.into(), "22023"),
            // Pixel keys outside the tile are errors, not dropped silently.
            (format!("SELECT vasttile.heat_grid_from_pixels(4, 3, 6, ARRAY[{pixel}], ARRAY[1.0::float8])"), "ok"),
            (format!("SELECT vasttile.heat_grid_from_pixels(4, 4, 6, ARRAY[{pixel}], ARRAY[1.0::float8])"), "22023"),
        ] {
            assert_eq!(sqlstate_of(&sql), state, "{sql}");
        }
    }

    #[pg_test]
    fn bad_point_input_is_22023() {
        us_points();
        for sql in [
            r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '{"radius": 1000}')"#,
            r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '{"radius": -1}')"#,
            r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '{"colour": "red"}')"#,
            r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '{"color": "nonsense"}')"#,
            r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '{"size": 300}')"#,
            r#"SELECT vasttile.dot_tile('us', 4, 3, 6, '[]')"#,
            r#"SELECT vasttile.dot_tile('us', 24, 0, 0)"#,
            r#"SELECT vasttile.dot_tile('us', 4, 16, 0)"#,
            r#"SELECT vasttile.dot_tile('us', 23, 0, 0, '{"size": 512}')"#,
            "SELECT vasttile.dot_tile_agg(-x, y, 4, 3, 6, '{}') FROM us",
            "SELECT vasttile.dot_tile_agg(-vcs_key, 4, 3, 6, '{}') FROM us",
            "SELECT vasttile.dot_tile_agg(x, y, 4, (x % 2)::int, 6, '{}') FROM us",
        ] {
            assert_eq!(sqlstate_of(sql), "22023", "{sql}");
        }
        assert_eq!(
            sqlstate_of("SELECT vasttile.dot_tile('us', 4, 3, 6, '{}', 'nope')"),
            "42703"
        );
        // Support functions refuse to run outside their aggregate.
        assert_eq!(
            sqlstate_of("SELECT vasttile.dot_tile_trans(NULL, 1, 1, 0, 0, 0, '{}')"),
            "0A000"
        );
    }
}

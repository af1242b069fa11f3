-- The bad-input suite: every function and aggregate of schema vasttile, found in pg_proc (so new
-- functions are covered without editing this file), is called with one argument at a time
-- replaced by a hostile value of its type (NULL, NaN, infinities, extremes, empty and NULL-holding
-- arrays, empty/garbage/huge text, deeply nested jsonb, random and truncated / bit-flipped /
-- length-forged bytes of valid heatgrid, vcspolygon, skeleton, PNG and WKB values), the others
-- at a valid baseline. Each call runs in its own statement (statement_timeout applies) inside an
-- exception block that records its SQLSTATE. The script fails when any call ends in class XX
-- (internal error: a panic or an unchecked elog); a crashed backend ends psql with status 2.
--
-- Run by scripts/test_badinput.sh in a fresh database holding tests/badinput/fixtures.sql.
-- psql variables: timeout (default 2s), skip (a regexp of function names not to call, default
-- none: the database is a throwaway, so functions that write state run against the fixtures).
\set ON_ERROR_STOP 1
\if :{?timeout}
\else
\set timeout 2s
\endif
\if :{?skip}
\else
\set skip '^$'
\endif
SET client_min_messages = warning;
SET search_path = public;
-- (psql does not substitute variables inside the dollar quotes of the generator below.)
SELECT set_config('badinput.skip', :'skip', false) IS NOT NULL AS skip_set \gset

-- Mutations of stored bytes.
CREATE FUNCTION bi_flip(b bytea, n int8) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN length(b) = 0 THEN b
               ELSE set_bit(b, (n % (8 * length(b)))::int, 1 - get_bit(b, (n % (8 * length(b)))::int)) END $$;
-- Overwrite the 4 bytes at `offset` (0-based): forged counts, lengths, coordinates.
CREATE FUNCTION bi_forge(b bytea, "offset" int, word bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN length(b) < "offset" + 4 THEN b
               ELSE overlay(b PLACING word FROM "offset" + 1 FOR 4) END $$;
-- `n` pseudo-random bytes (deterministic).
CREATE FUNCTION bi_random(n int, seed int) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT substr(coalesce(decode(string_agg(md5(seed || ':' || i), ''), 'hex'), ''::bytea), 1, n)
   FROM generate_series(0, n / 16) i $$;

-- Candidate values per type (as format_type names them); domains over bytea also get bytea's.
CREATE TABLE bi_values (typ text NOT NULL, label text NOT NULL, expr text NOT NULL);
INSERT INTO bi_values (typ, label, expr)
SELECT t, 'NULL', 'NULL' FROM unnest(ARRAY['integer', 'bigint', 'double precision', 'real', 'text',
  'jsonb', 'json', 'bytea', 'boolean', 'regclass', 'bigint[]', 'double precision[]', 'integer[]',
  'text[]']) t
UNION ALL
SELECT 'integer', v, v FROM unnest(ARRAY['0', '-1', '1', '22', '23', '24', '31', '32', '255', '256',
  '257', '511', '512', '65536', '2147483647', '-2147483647', '(-2147483647 - 1)']) v
UNION ALL
SELECT 'bigint', v, v FROM unnest(ARRAY['0', '-1', '1', '2147483648', '4294967296', '10000000',
  '4611686018427387903', '4611686018427387904', '9223372036854775807', '(-9223372036854775807 - 1)']) v
UNION ALL
SELECT t, v, quote_literal(v) FROM unnest(ARRAY['double precision', 'real']) t,
  unnest(ARRAY['NaN', 'Infinity', '-Infinity', '0', '-0', '-1', '1e308', '-1e308', '4.9e-324',
               '91', '-181', '1e-300']) v
WHERE t = 'double precision' OR v NOT IN ('1e308', '-1e308', '4.9e-324', '1e-300')
UNION ALL
SELECT 'boolean', v, v FROM unnest(ARRAY['true', 'false']) v
UNION ALL
SELECT 'text', label, expr FROM (VALUES
  ('empty', $$''$$), ('garbage', $$'!@#$%^&*()'$$), ('quoted', $$'"x"; DROP TABLE bi_points; --'$$),
  ('unicode', $$'é€𝄞'$$), ('nul-like', $$E'\\x00'$$), ('column name', $$'vcs_key'$$),
  ('missing name', $$'no_such_thing'$$), ('schema', $$'pg_catalog'$$), ('sql', $$'SELECT 1/0'$$),
  ('sql pairs', $$'SELECT NULL::int8, ''NaN''::float8'$$), ('json open', $$'{'$$),
  ('huge', $$repeat('a', 1000000)$$), ('long name', $$repeat('n', 200)$$),
  ('deep json text', $$repeat('[', 10000) || repeat(']', 10000)$$),
  ('topojson bad arc', $$'{"type": "Topology", "arcs": [[[0, 0], [1, 1]]], "objects": {"o": {"type": "LineString", "arcs": [5]}}}'$$),
  ('topojson short transform', $$'{"type": "Topology", "transform": {"scale": [1], "translate": [0]}, "arcs": [[[0, 0], [1, 1]]], "objects": {"o": {"type": "LineString", "arcs": [0]}}}'$$),
  ('topojson nested collections', $$'{"type": "Topology", "arcs": [], "objects": {"o": {"type": "GeometryCollection", "geometries": [{"type": "GeometryCollection", "geometries": []}]}}}'$$),
  ('topojson one-number positions', $$'{"type": "Topology", "arcs": [[[0], [1]]], "objects": {"o": {"type": "Polygon", "arcs": [[0]]}}}'$$)
) v(label, expr)
UNION ALL
SELECT t, label, quote_literal(doc) FROM unnest(ARRAY['jsonb', 'json']) t, (VALUES
  ('empty object', $${}$$), ('null', 'null'), ('array', '[]'), ('number', '0'), ('string', '"x"'),
  ('true', 'true'), ('NaN string', '{"radius": "NaN"}'), ('huge number', '{"radius": 1e308}'),
  ('number beyond f64', '{"radius": 1e400}'), ('array beyond f64', '[1e400]'),
  ('big integer', '{"size": 123456789012345678901234567890}'), ('size 512', '{"size": 512}'),
  ('size 1e300', '{"size": 1e300}'), ('size -256', '{"size": -256}'), ('size string', '{"size": "512px"}'),
  ('unknown key', '{"nope": 1}'), ('colormap name', '{"colormap": "nope"}'), ('colormap empty', '{"colormap": []}'),
  ('colormap one stop', '{"colormap": [[0, "#000"]]}'), ('colormap bad stops', '{"colormap": [["a", "b"], [2, 3]]}'),
  ('colors empty', '{"colors": {}}'), ('colors bad id', '{"colors": {"-1": "red", "x": 1}}'),
  ('features empty', '{"features": []}'), ('features bad', '{"features": [[99, "red"], [1]]}'),
  ('classes empty', '{"classes": {"breaks": [], "colors": []}}'),
  ('classes bad', '{"classes": {"breaks": [2, 1], "colors": ["#000"]}}'),
  ('min above max', '{"min": 10, "max": -10}'), ('levels', '{"normalize": "nope", "how": "cdf"}'),
  ('geometry nope', '{"geometry": "nope"}'), ('geometry points no column', '{"geometry": "points"}'),
  ('base_zoom 100', '{"geometry": "points", "column": "vcs_key", "base_zoom": 100}'),
  ('base_zoom -1', '{"geometry": "points", "column": "vcs_key", "base_zoom": -1}'),
  ('radius huge', '{"radius": 1e9, "radius_km": 1e9, "offset_m": 1e300}'),
  ('GeoJSON empty polygon', '{"type": "Polygon", "coordinates": []}'),
  ('GeoJSON short positions', '{"type": "Polygon", "coordinates": [[[1], [2], [3], [1]]]}'),
  ('GeoJSON out of range', '{"type": "LineString", "coordinates": [[500, 100], [0, 0]]}'),
  ('GeoJSON feature', '{"type": "Feature", "geometry": null}')
) v(label, doc)
UNION ALL
SELECT t, label, expr FROM unnest(ARRAY['jsonb', 'json']) t, (VALUES
  ('deep arrays 10000', $$repeat('[', 10000) || repeat(']', 10000)$$),
  ('deep objects 10000', $$repeat('{"a": ', 10000) || '1' || repeat('}', 10000)$$),
  ('deep 129', $$repeat('[', 129) || repeat(']', 129)$$),
  ('deep style value', $$'{"colormap": ' || repeat('[', 300) || repeat(']', 300) || '}'$$),
  ('many keys', $$(SELECT '{' || string_agg(format('"k%s": %s', i, i), ',') || '}' FROM generate_series(1, 20000) i)$$),
  ('long array', $$(SELECT '[' || string_agg(i::text, ',') || ']' FROM generate_series(1, 200000) i)$$)
) v(label, expr)
UNION ALL
SELECT 'regclass', label, expr FROM (VALUES
  ('points', $$'bi_points'$$), ('empty table', $$'bi_empty'$$), ('no key column', $$'bi_nokey'$$),
  ('text key column', $$'bi_textkey'$$), ('view', $$'bi_view'$$), ('catalog', $$'pg_class'$$),
  ('oid 0', '0::oid'), ('dangling oid', '2147483647::oid')
) v(label, expr)
UNION ALL
SELECT t, label, expr FROM unnest(ARRAY['bigint[]', 'double precision[]', 'integer[]', 'text[]']) t, (VALUES
  ('empty', $$'{}'$$), ('NULL element', $$'{NULL}'$$), ('NULL among', $$'{1, NULL, 2}'$$),
  ('one', $$'{1}'$$), ('negative', $$'{-1, -2}'$$), ('two-dimensional', $$'{{1, 2}, {3, 4}}'$$),
  ('lower bound 0', $$'[0:1]={1, 2}'$$)
) v(label, expr)
UNION ALL
SELECT 'bigint[]', label, expr FROM (VALUES
  ('extremes', $$'{9223372036854775807, -9223372036854775808, 4611686018427387904}'$$),
  ('corners', $$'{0, 4611686018427387903, 0}'$$),
  ('long', $$(SELECT array_agg(i::int8 * 12345) FROM generate_series(1, 200000) i)$$)
) v(label, expr)
UNION ALL
SELECT 'double precision[]', label, expr FROM (VALUES
  ('NaN', $$'{NaN, 1}'$$), ('infinities', $$'{Infinity, -Infinity}'$$), ('huge', $$'{1e308, -1e308}'$$),
  ('decreasing', $$'{5, 1}'$$), ('long', $$(SELECT array_agg(i::float8) FROM generate_series(1, 200000) i)$$)
) v(label, expr);

-- Bytes: random, empty, huge, and every fixture truncated, bit-flipped, forged and extended.
INSERT INTO bi_values (typ, label, expr)
SELECT 'bytea', label, expr FROM (VALUES
  ('empty', $$''::bytea$$), ('one byte', $$'\x00'::bytea$$), ('zeros 32', $$decode(repeat('00', 32), 'hex')$$),
  ('random 31', 'bi_random(31, 1)'), ('random 32', 'bi_random(32, 2)'), ('random 100', 'bi_random(100, 3)'),
  ('random 4096', 'bi_random(4096, 4)'), ('random 1 MB', 'bi_random(1048576, 5)'),
  ('zeros 10 MB', $$decode(repeat('00', 10485760), 'hex')$$),
  ('magic VTHG only', $$'VTHG'::bytea$$), ('magic VTPG, huge count', $$'VTPG'::bytea || '\xffffffff'::bytea$$),
  ('magic VTSK only', $$'VTSK'::bytea$$), ('PNG signature only', $$'\x89504e470d0a1a0a'::bytea$$)
) v(label, expr)
UNION ALL
SELECT 'bytea', f.label || ' ' || m.label, format(m.expr, format('(SELECT b FROM bi_fixtures WHERE label = %L)', f.label))
FROM bi_fixtures f, (VALUES
  ('valid', '%s'),
  ('truncated to half', 'substr(%1$s, 1, length(%1$s) / 2)'),
  ('truncated by one', 'substr(%1$s, 1, length(%1$s) - 1)'),
  ('truncated to 31', 'substr(%s, 1, 31)'), ('truncated to 8', 'substr(%s, 1, 8)'),
  ('extended', $$%s || '\x00'::bytea$$),
  ('bit 33 flipped', 'bi_flip(%s, 33)'), ('bit 40 flipped', 'bi_flip(%s, 40)'),
  ('bit 48 flipped', 'bi_flip(%s, 48)'), ('bit 56 flipped', 'bi_flip(%s, 56)'),
  ('bit 65 flipped', 'bi_flip(%s, 65)'), ('bit 100 flipped', 'bi_flip(%s, 100)'),
  ('bit 131 flipped', 'bi_flip(%s, 131)'), ('bit 199 flipped', 'bi_flip(%s, 199)'),
  ('bit 259 flipped', 'bi_flip(%s, 259)'), ('middle bit flipped', 'bi_flip(%1$s, 4 * length(%1$s) + 3)'),
  ('last bit flipped', 'bi_flip(%1$s, 8 * length(%1$s) - 1)')
) m(label, expr)
UNION ALL
SELECT 'bytea', format('%s forged %s at %s', f.label, w.label, o), format('bi_forge((SELECT b FROM bi_fixtures WHERE label = %L), %s, %L::bytea)', f.label, o, w.word)
FROM bi_fixtures f, generate_series(4, 28, 4) o,
     (VALUES ('0xffffffff', '\xffffffff'), ('0x7fffffff', '\xffffff7f'), ('65537', '\x01000100'), ('0', '\x00000000')) w(label, word);

-- Baseline (valid) arguments by function, aggregate or any (kind 'a' / 'f' / NULL), argument name
-- and type; the most specific match wins, then the type's default (name NULL).
CREATE TABLE bi_baseline (kind text, fn text, arg text, typ text, expr text NOT NULL);
INSERT INTO bi_baseline (kind, fn, arg, typ, expr) VALUES
  -- Defaults by type.
  (NULL, NULL, NULL, 'integer', '1'), (NULL, NULL, NULL, 'bigint', '1'),
  (NULL, NULL, NULL, 'double precision', '1.0'), (NULL, NULL, NULL, 'real', '1.0'),
  (NULL, NULL, NULL, 'text', $$'x'$$), (NULL, NULL, NULL, 'jsonb', $$'{}'$$), (NULL, NULL, NULL, 'json', $$'{}'$$),
  (NULL, NULL, NULL, 'boolean', 'false'), (NULL, NULL, NULL, 'regclass', $$'bi_points'$$),
  (NULL, NULL, NULL, 'bytea', $$(SELECT b FROM bi_fixtures WHERE label = 'png')$$),
  (NULL, NULL, NULL, 'vasttile.heatgrid', $$(SELECT b FROM bi_fixtures WHERE label = 'heatgrid')$$),
  (NULL, NULL, NULL, 'vasttile.vcspolygon', $$(SELECT b FROM bi_fixtures WHERE label = 'vcspolygon')$$),
  (NULL, NULL, NULL, 'bigint[]', $$'{}'$$), (NULL, NULL, NULL, 'double precision[]', $$'{}'$$),
  -- Tiles and points.
  (NULL, NULL, 'z', NULL, '4'), ('f', NULL, 'x', 'integer', '4'), ('f', NULL, 'y', 'integer', '6'),
  (NULL, NULL, 'tile_x', NULL, '4'), (NULL, NULL, 'tile_y', NULL, '6'), (NULL, NULL, 'tile_size', NULL, '256'),
  ('a', NULL, 'x', NULL, 'p.x'), ('a', NULL, 'y', NULL, 'p.y'), ('a', NULL, 'key', NULL, 'p.vcs_key'),
  ('a', NULL, 'weight', NULL, 'p.w'), ('a', NULL, 'path', NULL, 'p.path'),
  ('f', NULL, 'key', NULL, '(SELECT vcs_key FROM bi_points WHERE id = 1)'),
  (NULL, NULL, 'radius_km', NULL, '1.2'), (NULL, NULL, 'weight', NULL, '1.0'), (NULL, NULL, 'v', NULL, '1073741824'),
  (NULL, NULL, 'margin', NULL, '2'), (NULL, NULL, 'lon', NULL, '-87.6'), (NULL, NULL, 'lat', NULL, '41.8'),
  (NULL, NULL, 'width', NULL, '64'), (NULL, NULL, 'height', NULL, '12'),
  (NULL, NULL, 'zmin', NULL, '4'), (NULL, NULL, 'zmax', NULL, '5'),
  -- Tables, columns, layers, pyramids.
  (NULL, NULL, 'tbl', NULL, $$'bi_points'$$), (NULL, NULL, 'key_column', NULL, $$'vcs_key'$$),
  (NULL, NULL, 'weight_column', NULL, $$'w'$$), (NULL, NULL, 'schema', NULL, $$'public'$$),
  (NULL, NULL, 'id_column', NULL, $$'id'$$), (NULL, NULL, 'polygon_column', NULL, $$'polygon'$$),
  (NULL, NULL, 'layer', NULL, $$'bi_layer'$$), (NULL, NULL, 'pyramid', NULL, $$'bi_pyr'$$),
  (NULL, NULL, 'name', NULL, $$'bi_pyr'$$),
  (NULL, NULL, 'values_sql', NULL, $$'SELECT id::int8, id::float8 FROM bi_polygons'$$),
  (NULL, NULL, 'options', NULL, $$'{"geometry": "points", "column": "vcs_key", "base_zoom": 8}'$$),
  (NULL, NULL, 'build', NULL, 'true'),
  -- Stored values and documents.
  (NULL, NULL, 'grid', NULL, $$(SELECT b FROM bi_fixtures WHERE label = 'heatgrid')$$),
  (NULL, NULL, 'polygon', NULL, $$(SELECT b FROM bi_fixtures WHERE label = 'vcspolygon')$$),
  (NULL, NULL, 'skeleton', NULL, $$(SELECT b FROM bi_fixtures WHERE label = 'skeleton')$$),
  (NULL, NULL, 'wkb', NULL, $$(SELECT b FROM bi_fixtures WHERE label = 'wkb')$$),
  (NULL, NULL, 'topojson', NULL, $$(SELECT t FROM bi_text WHERE label = 'topojson')$$),
  (NULL, NULL, 'object', NULL, $$'o'$$),
  (NULL, NULL, 'ids', NULL, $$'{1, 2}'$$), (NULL, NULL, 'vals', NULL, $$'{1.5, 2.5}'$$),
  (NULL, NULL, 'pixel_keys', NULL, '(SELECT array_agg(vasttile.pixel_key(vcs_key, 4)) FROM bi_points WHERE id <= 500)'),
  (NULL, NULL, 'heat', NULL, '(SELECT array_agg(w) FROM bi_points WHERE id <= 500)'),
  -- Activities.
  (NULL, NULL, 'n', NULL, '3'), (NULL, NULL, 'seed', NULL, '1'), (NULL, NULL, 'radius_m', NULL, '2000'),
  (NULL, NULL, 'points', NULL, '20'),
  (NULL, 'activity_path', 'id', NULL, '(SELECT id FROM bi_activities ORDER BY id LIMIT 1)'),
  (NULL, 'activity_path', 'path', NULL, '(SELECT path FROM bi_activities ORDER BY id LIMIT 1)'),
  (NULL, 'activity_path', 'times', NULL, '(SELECT times FROM bi_activities ORDER BY id LIMIT 1)'),
  (NULL, 'activity_path', 'kind', NULL, '(SELECT kind FROM bi_activities ORDER BY id LIMIT 1)'),
  (NULL, 'legend', 'kind', NULL, $$'heat'$$),
  -- Per function: new names for what creates, names that do not exist for what drops.
  (NULL, 'paths_from_geojson', 'geojson', NULL, $$(SELECT t FROM bi_text WHERE label = 'geojson line')$$),
  (NULL, NULL, 'geojson', NULL, $$(SELECT t FROM bi_text WHERE label = 'geojson polygon')$$),
  (NULL, 'create_heat_pyramid', 'name', NULL, $$'bi_new_pyramid'$$),
  (NULL, 'drop_heat_pyramid', 'name', NULL, $$'bi_no_such_pyramid'$$),
  (NULL, 'drop_skeleton_layer', 'name', NULL, $$'bi_no_such_layer'$$),
  (NULL, 'create_skeleton_layer', 'name', NULL, $$'bi_new_layer'$$),
  (NULL, 'create_skeleton_layer', 'tbl', NULL, $$'bi_polygons'$$),
  (NULL, 'create_dot_layer', 'name', NULL, $$'bi_new_dots'$$),
  (NULL, 'create_heat_layer', 'name', NULL, $$'bi_new_heat'$$),
  (NULL, 'create_access_layer', 'name', NULL, $$'bi_new_access'$$),
  (NULL, 'create_choropleth_layer', 'name', NULL, $$'bi_new_choropleth'$$),
  (NULL, 'create_pyramid_layer', 'name', NULL, $$'bi_new_pyramid_layer'$$);

CREATE FUNCTION bi_base(kind text, fn text, arg text, typ text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT expr FROM bi_baseline b
  WHERE (b.kind IS NULL OR b.kind = $1) AND (b.fn IS NULL OR b.fn = $2)
    AND (b.arg IS NULL OR b.arg = $3) AND (b.typ IS NULL OR b.typ = $4)
    AND (b.arg IS NOT NULL OR b.typ IS NOT NULL)
  ORDER BY b.fn IS NULL, b.arg IS NULL, b.kind IS NULL, b.typ IS NULL
  LIMIT 1 $$;

CREATE TABLE bi_cases (id serial PRIMARY KEY, fn text NOT NULL, kind text NOT NULL, signature text NOT NULL,
                       arg int NOT NULL, argname text, label text NOT NULL, sql text NOT NULL);
CREATE TABLE bi_results (id int PRIMARY KEY, sqlstate text NOT NULL, message text, elapsed interval);

-- One case per function (its baseline) and per argument and candidate value of its type.
DO $gen$
DECLARE
  f record;
  names text[];
  types text[];
  base text[];
  args text[];
  k int;
  v record;
  call text;
BEGIN
  FOR f IN
    SELECT p.oid, p.proname::text AS proname, p.prokind::text AS prokind, p.pronargs,
           p.proargtypes::oid[] AS argtypes, p.proargnames, p.proargmodes::text[] AS modes
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'vasttile' AND p.prokind IN ('f', 'a') AND p.provariadic = 0
      AND p.prorettype NOT IN ('trigger'::regtype, 'internal'::regtype)
      AND NOT ('internal'::regtype = ANY (p.proargtypes::oid[]))
      AND p.proname !~ current_setting('badinput.skip')
    -- What drops runs last, so that it cannot take fixtures from the others.
    ORDER BY p.proname ~ '^drop_', p.proname, p.oid
  LOOP
    -- Names of the input arguments (proargnames also lists OUT / TABLE columns).
    names := ARRAY[]::text[];
    FOR k IN 1 .. coalesce(array_length(f.proargnames, 1), 0) LOOP
      IF f.modes IS NULL OR f.modes[k] IN ('i', 'b', 'v') THEN
        names := names || f.proargnames[k];
      END IF;
    END LOOP;
    types := ARRAY(SELECT format_type(t, NULL) FROM unnest(f.argtypes) WITH ORDINALITY u(t, o) ORDER BY o);
    base := ARRAY[]::text[];
    FOR k IN 1 .. f.pronargs LOOP
      base := base || coalesce(bi_base(f.prokind, f.proname, nullif(names[k], ''), types[k]), 'NULL');
    END LOOP;
    FOR k IN 0 .. f.pronargs LOOP
      FOR v IN
        SELECT 'baseline' AS label, NULL AS expr WHERE k = 0
        UNION ALL
        SELECT bv.label, bv.expr FROM bi_values bv
        WHERE k > 0 AND bv.typ IN (types[k], (SELECT format_type(t.typbasetype, NULL) FROM pg_type t
                                             WHERE t.oid = f.argtypes[k] AND t.typtype = 'd'))
      LOOP
        args := base;
        IF k > 0 THEN
          args[k] := v.expr;
        END IF;
        call := format('vasttile.%I(%s)', f.proname,
                       (SELECT string_agg(format('(%s)::%s', a, types[o]), ', ' ORDER BY o)
                        FROM unnest(args) WITH ORDINALITY u(a, o)));
        INSERT INTO bi_cases (fn, kind, signature, arg, argname, label, sql)
        VALUES (f.proname, f.prokind, format('%s(%s)', f.proname, array_to_string(types, ', ')),
                k, names[k], v.label,
                CASE f.prokind WHEN 'a' THEN format('SELECT %s IS NULL FROM bi_points p', call)
                               ELSE format('SELECT count(*) FROM %s AS r', call) END);
      END LOOP;
    END LOOP;
  END LOOP;
END
$gen$;

-- Run one case, recording its SQLSTATE ('00000' when it returns).
CREATE FUNCTION bi_try(case_id int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  q text;
  state text := '00000';
  msg text;
  t0 timestamptz := clock_timestamp();
BEGIN
  SELECT sql INTO q FROM bi_cases WHERE id = case_id;
  BEGIN
    EXECUTE q;
  EXCEPTION
    WHEN query_canceled THEN GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    WHEN OTHERS THEN GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  END;
  INSERT INTO bi_results VALUES (case_id, state, left(msg, 300), clock_timestamp() - t0);
END $$;

SELECT count(*) AS cases, count(DISTINCT signature) AS functions FROM bi_cases \gset
\echo bad-input suite: :cases cases over :functions functions and aggregates, statement_timeout :timeout

-- Each case in its own statement: statement_timeout applies to it, and a crash leaves the
-- results so far in bi_results (the runner names the case that crashed).
SET statement_timeout = :'timeout';
\o /dev/null
SELECT format('SELECT bi_try(%s)', id) FROM bi_cases ORDER BY id
\gexec
\o
RESET statement_timeout;

\echo
\echo SQLSTATEs:
SELECT sqlstate, count(*) AS cases FROM bi_results GROUP BY sqlstate ORDER BY count(*) DESC, sqlstate;

\echo Internal errors (class XX), with the SQL that gave them:
\x on
SELECT c.id, c.signature, c.argname, c.label, r.sqlstate, r.message, c.sql
FROM bi_results r JOIN bi_cases c USING (id)
WHERE r.sqlstate LIKE 'XX%'
ORDER BY c.id;
\x off

SELECT count(*) AS cases_run, count(*) FILTER (WHERE sqlstate LIKE 'XX%') AS internal_errors,
       count(*) FILTER (WHERE sqlstate = '57014') AS timeouts
FROM bi_results \gset
\echo cases run: :cases_run, internal errors: :internal_errors, timeouts: :timeouts

DO $$ BEGIN
  IF (SELECT count(*) FROM bi_results WHERE sqlstate LIKE 'XX%') > 0 THEN
    RAISE EXCEPTION 'bad-input suite: % call(s) ended in an internal error (class XX)',
      (SELECT count(*) FROM bi_results WHERE sqlstate LIKE 'XX%');
  END IF;
END $$;

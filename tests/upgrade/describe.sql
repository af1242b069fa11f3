-- Every object of the vasttile extension in the current database, one canonical line (or
-- block) each, sorted: what `ALTER EXTENSION vasttile UPDATE` must leave equal to a fresh install.
-- pg_dump leaves extension members out, so the catalog is read here directly.
\pset format unaligned
\pset tuples_only on
\pset pager off
WITH ext AS (
    SELECT oid FROM pg_extension WHERE extname = 'vasttile'
), members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), described AS (
    -- Functions (with their body, options and grants); aggregates by their parts.
    SELECT 'function ' || p.oid::regprocedure::text AS key,
           CASE WHEN p.prokind = 'a' THEN
               format('aggregate sfunc=%s stype=%s sspace=%s finalfunc=%s combinefunc=%s serial=%s deserial=%s initcond=%s finalextra=%s modify=%s',
                      a.aggtransfn::regprocedure, a.aggtranstype::regtype, a.aggtransspace, a.aggfinalfn, a.aggcombinefn,
                      a.aggserialfn, a.aggdeserialfn, a.agginitval, a.aggfinalextra, a.aggfinalmodify)
                   || format(' returns %s strict=%s parallel=%s', p.prorettype::regtype, p.proisstrict, p.proparallel)
           ELSE pg_get_functiondef(p.oid) END
           || E'\n  acl ' || coalesce(p.proacl::text, 'default')
           || E'\n  owner ' || p.proowner::regrole::text
           || E'\n  comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-') AS body
    FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
    UNION ALL
    -- Types and domains.
    SELECT 'type ' || t.oid::regtype::text,
           format('type %s kind=%s base=%s notnull=%s', t.typname, t.typtype, t.typbasetype::regtype, t.typnotnull)
           || E'\n  acl ' || coalesce(t.typacl::text, 'default')
           || E'\n  comment ' || coalesce(obj_description(t.oid, 'pg_type'), '-')
    FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    -- Tables and sequences: columns in order (dropped ones included: they would differ),
    -- constraints, indexes, triggers, grants, comments, and whether pg_dump keeps their rows.
    SELECT 'relation ' || c.oid::regclass::text,
           format('relation %s kind=%s owner=%s rowsecurity=%s options=%s', c.relname, c.relkind,
                  c.relowner::regrole, c.relrowsecurity, c.reloptions)
           || coalesce((SELECT string_agg(format(E'\n  column %s %s %s%s%s acl=%s comment=%s', a.attnum,
                                                 CASE WHEN a.attisdropped THEN '(dropped)' ELSE a.attname END,
                                                 format_type(a.atttypid, a.atttypmod)
                                                   || coalesce(' compression=' || nullif(a.attcompression::text, ''), '')
                                                   || ' storage=' || a.attstorage::text,
                                                 CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                                                 coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                                 coalesce(a.attacl::text, '-'),
                                                 coalesce(col_description(c.oid, a.attnum), '-')), '' ORDER BY a.attnum)
                        FROM pg_attribute a
                        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                        WHERE a.attrelid = c.oid AND a.attnum > 0), '')
           || coalesce((SELECT string_agg(E'\n  constraint ' || k.conname || ' ' || pg_get_constraintdef(k.oid), '' ORDER BY k.conname)
                        FROM pg_constraint k WHERE k.conrelid = c.oid), '')
           || coalesce((SELECT string_agg(E'\n  index ' || pg_get_indexdef(i.indexrelid), ''
                                          ORDER BY pg_get_indexdef(i.indexrelid))
                        FROM pg_index i WHERE i.indrelid = c.oid), '')
           || coalesce((SELECT string_agg(E'\n  sequence ' || format('%s start=%s inc=%s min=%s max=%s cache=%s cycle=%s',
                                          q.seqtypid::regtype, q.seqstart, q.seqincrement, q.seqmin, q.seqmax, q.seqcache, q.seqcycle), '')
                        FROM pg_sequence q WHERE q.seqrelid = c.oid), '')
           || coalesce((SELECT string_agg(E'\n  trigger ' || pg_get_triggerdef(g.oid) || ' enabled=' || g.tgenabled::text, '' ORDER BY g.tgname)
                        FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal), '')
           || E'\n  acl ' || coalesce(c.relacl::text, 'default')
           || E'\n  initial acl ' || coalesce((SELECT string_agg(format('%s:%s', ip.objsubid, ip.initprivs), ' ' ORDER BY ip.objsubid)
                                               FROM pg_init_privs ip WHERE ip.classoid = 'pg_class'::regclass AND ip.objoid = c.oid), '-')
           || E'\n  comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
           || E'\n  dumped ' || (SELECT coalesce(e.extconfig @> ARRAY[c.oid], false) || ' ' ||
                                        coalesce(e.extcondition[array_position(e.extconfig, c.oid)], '-')
                                 FROM pg_extension e WHERE e.extname = 'vasttile')
    FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
    UNION ALL
    -- Anything else that belongs to the extension (casts, operators, ...), by name.
    SELECT 'other ' || pg_describe_object(m.classid, m.objid, 0), pg_describe_object(m.classid, m.objid, 0)
    FROM members m
    WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_type'::regclass, 'pg_class'::regclass)
)
SELECT body FROM described ORDER BY key;
-- The schema's grants and the extension's version.
SELECT format('schema %s acl=%s', n.nspname, n.nspacl) FROM pg_namespace n WHERE n.nspname = 'vasttile';
SELECT format('extension %s %s relocatable=%s config=%s conditions=%s', extname, extversion, extrelocatable,
              (SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text) FROM unnest(extconfig) c),
              array_to_string(extcondition, ','))
FROM pg_extension WHERE extname = 'vasttile';
-- Anything in the extension's schema that is not a member (left behind by an update).
SELECT format('not a member: %s', pg_describe_object('pg_class'::regclass, c.oid, 0))
FROM pg_class c WHERE c.relnamespace = 'vasttile'::regnamespace AND c.relkind IN ('r', 'S', 'v', 'm', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1;
SELECT format('not a member: %s', p.oid::regprocedure) FROM pg_proc p
WHERE p.pronamespace = 'vasttile'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1;
-- Triggers the extension made on users' tables (not members, but its state).
SELECT format('user trigger %s enabled=%s', pg_get_triggerdef(g.oid), g.tgenabled)
FROM pg_trigger g JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = g.tgfoid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'vasttile'
ORDER BY 1;

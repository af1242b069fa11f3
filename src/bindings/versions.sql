-- Data versions: a tile server caches a layer's tiles under the layer's version and answers
-- If-None-Match without drawing, so the version changes in the very transaction that changes
-- what the layer draws. A table's version counts the statements that changed it (statement
-- triggers made by the layer and pyramid functions); a pyramid's takes a new number at every
-- build and refresh that changed tiles. Listeners of the channel vasttile_data hear of both.

CREATE TABLE data_changes (
    rel     oid NOT NULL,
    changes int8 NOT NULL
);
CREATE INDEX data_changes_rel ON data_changes (rel);
COMMENT ON TABLE data_changes IS 'vasttile: statements that changed tables with a version trigger, a row per statement until merged (their sum is the table''s version)';
REVOKE ALL ON data_changes FROM PUBLIC;

-- Numbers statements over all versioned tables: one in 64 of each table's merges its rows.
CREATE SEQUENCE data_changes_seq;
REVOKE ALL ON SEQUENCE data_changes_seq FROM PUBLIC;

CREATE SEQUENCE pyramid_version_seq;
COMMENT ON SEQUENCE pyramid_version_seq IS 'vasttile: a heat pyramid''s version, taken at every build and refresh that changed tiles';
REVOKE ALL ON SEQUENCE pyramid_version_seq FROM PUBLIC;

-- Statement trigger on a versioned table. SECURITY DEFINER, so writers need no rights on
-- data_changes; it only adds one to the table it fires on.
CREATE FUNCTION data_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    merged int8;
BEGIN
    -- One row per statement: concurrent writers never wait on each other here.
    INSERT INTO @extschema@.data_changes (rel, changes) VALUES (TG_RELID, 1);
    -- Now and then (one statement in 64 per table, whatever the other tables do) the table's
    -- rows become one, their sum unchanged (the rows deleted are added back in this
    -- transaction). One merger per table at a time, none waiting: no row is deleted twice and no
    -- lock cycle forms. Only under READ COMMITTED, where a merge never fails a writer.
    IF pg_catalog.hashint8extended(pg_catalog.nextval('@extschema@.data_changes_seq'), TG_RELID::int8) & 63 = 0
       AND pg_catalog.current_setting('transaction_isolation') = 'read committed'
       AND pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('vasttile data version ' || TG_RELID::text)) THEN
        WITH gone AS (DELETE FROM @extschema@.data_changes WHERE rel = TG_RELID RETURNING changes)
        SELECT sum(changes) INTO merged FROM gone;
        INSERT INTO @extschema@.data_changes (rel, changes) VALUES (TG_RELID, merged);
    END IF;
    PERFORM pg_catalog.pg_notify('vasttile_data', '');
    RETURN NULL;
END $$;

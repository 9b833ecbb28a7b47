-- v7: the dashboard a sales team works in (issue #17).

-- All of Sarah's fields: the named ones get columns, anything else she sends is kept in
-- sarah_extra (never dropped). merged_into is the contract's merge marker (null unless merged).
ALTER TABLE leads ADD COLUMN IF NOT EXISTS story text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS language text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS interest_motivation text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS closing_technique_used text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS objection_raised text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS sarah_extra jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS merged_into uuid;

-- The needs-reply queue: leads whose last inbound message is newer than their last outbound
-- one, longest waiting first.
CREATE INDEX IF NOT EXISTS leads_ws_needs_reply ON leads (workspace_id, last_inbound_at, lead_id)
    WHERE last_inbound_at > coalesce(last_outbound_at, '-infinity'::timestamptz);

-- Dead letters are the operator's worklist: who marked one handled, and when.
ALTER TABLE sync_failures ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
ALTER TABLE sync_failures ADD COLUMN IF NOT EXISTS resolved_by text;
CREATE INDEX IF NOT EXISTS sync_failures_ws ON sync_failures (workspace_id, failed_at DESC, id);

-- "Open in Inbox": the URL of a Kapso conversation, per workspace, with {conversation_id}
-- (and optionally {phone}) filled in.
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS inbox_url text;

-- The manager's daily digest of a workspace, written at the configured local time.
CREATE TABLE IF NOT EXISTS workspace_digests (
    workspace_id  text NOT NULL,
    day           date NOT NULL,
    content       text NOT NULL,
    facts         jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, day)
);

-- Live push: one notification per workspace per statement that writes lead rows, whoever
-- writes them (worker, sink, replay). The payload is "<workspace_id> <lead_id> <lead_id> ...",
-- cut below NOTIFY's 8000-byte limit; the API server's listener turns it into SSE events.
CREATE OR REPLACE FUNCTION leadstream_notify_leads() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT workspace_id, array_agg(lead_id::text) AS ids FROM changed GROUP BY workspace_id
    LOOP
        FOR i IN 0 .. (coalesce(array_length(r.ids, 1), 0) - 1) / 150 LOOP
            PERFORM pg_notify('leadstream_leads',
                r.workspace_id || ' ' || array_to_string(r.ids[i * 150 + 1 : i * 150 + 150], ' '));
        END LOOP;
    END LOOP;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS leads_notify_insert ON leads;
DROP TRIGGER IF EXISTS leads_notify_update ON leads;
CREATE TRIGGER leads_notify_insert AFTER INSERT ON leads REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION leadstream_notify_leads();
CREATE TRIGGER leads_notify_update AFTER UPDATE ON leads REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION leadstream_notify_leads();

-- `q` also finds domisili, interest motivation and objection raised (http.queries.SEARCH_EXPR)
DROP INDEX IF EXISTS leads_search_trgm;
CREATE INDEX IF NOT EXISTS leads_search2_trgm ON leads USING gin (
    (coalesce(name, '') || ' ' || coalesce(phone_e164, '') || ' ' || coalesce(business_type, '')
     || ' ' || coalesce(domisili, '') || ' ' || coalesce(interest_motivation, '') || ' '
     || coalesce(objection_raised, '')) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS leads_ws_language ON leads (workspace_id, lower(language));

-- the digest counts a workspace's messages of one day
CREATE INDEX IF NOT EXISTS messages_ws_sent ON messages (workspace_id, sent_at);

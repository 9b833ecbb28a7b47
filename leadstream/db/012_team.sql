-- The team's workflow (issue #29): the person a lead is assigned to and its labels, both
-- from the lead's snapshot on the leads topic (a replay rebuilds them).
ALTER TABLE leads ADD COLUMN IF NOT EXISTS owner text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS tags text[] NOT NULL DEFAULT '{}';
-- "my leads" and an owner's list, newest activity first
CREATE INDEX IF NOT EXISTS leads_ws_owner ON leads (workspace_id, owner, last_activity_at DESC)
    WHERE owner IS NOT NULL;
-- leads with a label (`tags @> ARRAY[...]`)
CREATE INDEX IF NOT EXISTS leads_tags ON leads USING gin (tags);

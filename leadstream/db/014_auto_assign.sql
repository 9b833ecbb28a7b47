-- Automatic assignment of new leads (issue #29): the workspace's rule, since when it holds
-- (leads created before are left alone), and its round-robin counter; each lead is assigned
-- automatically at most once (a person may take it back or move it; it stays so).
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS auto_assign text NOT NULL DEFAULT 'off';
ALTER TABLE workspaces DROP CONSTRAINT IF EXISTS workspaces_auto_assign;
ALTER TABLE workspaces ADD CONSTRAINT workspaces_auto_assign
    CHECK (auto_assign IN ('off', 'all', 'hot'));
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS auto_assign_since timestamptz;
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS auto_assign_turn bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS auto_assignments (
    lead_id      uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    owner        text NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now()
);
-- the candidates: a workspace's unassigned live leads, newest first
CREATE INDEX IF NOT EXISTS leads_ws_unassigned ON leads (workspace_id, created_at)
    WHERE owner IS NULL AND merged_into IS NULL;

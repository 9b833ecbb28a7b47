-- Reconciliation from Kapso's API (issue #27): a workspace's Kapso API key, kept like the
-- webhook secrets (never logged, listed masked), and per number the time up to which
-- everything Kapso holds is known to be in the log, with the state of its last runs.
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS kapso_api_key text;

CREATE TABLE IF NOT EXISTS reconcile_watermarks (
    phone_number_id text PRIMARY KEY,
    workspace_id    text NOT NULL,
    complete_until  timestamptz,
    last_run_at     timestamptz,
    last_ok_at      timestamptz,
    last_error      text,
    failures        integer NOT NULL DEFAULT 0,
    read_total      bigint NOT NULL DEFAULT 0,
    missing_total   bigint NOT NULL DEFAULT 0
);

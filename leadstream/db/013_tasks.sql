-- Follow-up tasks (issue #29, contract §4): each version of a task is a record on the tasks
-- topic, keyed by its lead; the newest version (by `version`) is the row. A replay rebuilds it.
CREATE TABLE IF NOT EXISTS lead_tasks (
    task_id      text PRIMARY KEY,
    lead_id      uuid NOT NULL,
    workspace_id text NOT NULL,
    text         text NOT NULL,
    due_at       timestamptz,
    owner        text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    done_at      timestamptz,
    done_by      text,
    version      bigint NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS lead_tasks_lead ON lead_tasks (lead_id, created_at DESC);
-- "due today / overdue" for a workspace or one person: open tasks by due time
CREATE INDEX IF NOT EXISTS lead_tasks_open ON lead_tasks (workspace_id, due_at)
    WHERE done_at IS NULL;
CREATE INDEX IF NOT EXISTS lead_tasks_owner ON lead_tasks (workspace_id, owner, due_at)
    WHERE done_at IS NULL;

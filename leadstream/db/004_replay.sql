-- v4: resumable replay. One row per replay target (schema + workspace or '*'): the log end it
-- rebuilds to and how far it got, written in the same transaction as each batch of rows.
CREATE TABLE IF NOT EXISTS replay_runs (
    scope        text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    goal         jsonb NOT NULL,
    positions    jsonb NOT NULL DEFAULT '{}'::jsonb,
    records      bigint NOT NULL DEFAULT 0,
    finished_at  timestamptz
);

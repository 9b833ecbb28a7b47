-- A message id (the wamid) is unique per workspace, not across all of them: one tenant's
-- message can never overwrite another's row (issue #14).
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (workspace_id, message_id);

-- Personal tokens (`workspace add --user NAME`): the person is recorded as the actor of the
-- changes made with it (status history, notes, edits).
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS user_name text;
ALTER TABLE lead_status_history ADD COLUMN IF NOT EXISTS actor text;

-- Webhook secret rotation with an overlap: the previous secret keeps verifying until
-- `previous_secret_until`, so deliveries signed before Kapso/Meta switched are not refused.
ALTER TABLE workspace_numbers ADD COLUMN IF NOT EXISTS previous_secret text;
ALTER TABLE workspace_numbers ADD COLUMN IF NOT EXISTS previous_secret_until timestamptz;

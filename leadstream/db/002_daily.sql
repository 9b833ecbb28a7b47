-- v2: the daily summary note is rewritten in place (its version counts up); which
-- summarizer wrote a day's summary (built-in, or the LLM, or the fallback with its reason).
ALTER TABLE lead_notes ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
ALTER TABLE lead_daily_activity ADD COLUMN IF NOT EXISTS summarizer text;
CREATE INDEX IF NOT EXISTS daily_workspace_day ON lead_daily_activity (workspace_id, day DESC);

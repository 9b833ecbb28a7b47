-- Who wrote a workspace digest (issue #25): `builtin`, `llm:<model>`, or
-- `builtin (llm failed: <reason>)`, like `lead_daily_activity.summarizer`; the day column is
-- the day the digest covers (LEADSTREAM_DIGEST_DAY: yesterday by default).
ALTER TABLE workspace_digests ADD COLUMN IF NOT EXISTS writer text NOT NULL DEFAULT 'builtin';

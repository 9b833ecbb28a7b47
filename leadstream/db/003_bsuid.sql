-- v3: route business-scoped user ids to the lead whose phone is known (webhook lookup)
CREATE INDEX IF NOT EXISTS leads_ws_bsuid ON leads (workspace_id, bsuid) WHERE bsuid IS NOT NULL;

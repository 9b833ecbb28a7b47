-- v5: dashboard reads at 100k leads per workspace, each served by an index:
-- substring search on name/phone/business (trigram), created/score sorts, and the filters.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS leads_search_trgm ON leads USING gin (
    (coalesce(name, '') || ' ' || coalesce(phone_e164, '') || ' ' || coalesce(business_type, ''))
    gin_trgm_ops);
CREATE INDEX IF NOT EXISTS leads_ws_created ON leads (workspace_id, created_at DESC, lead_id DESC);
CREATE INDEX IF NOT EXISTS leads_ws_score_key
    ON leads (workspace_id, (coalesce(lead_score, -1)) DESC, lead_id DESC);
CREATE INDEX IF NOT EXISTS leads_ws_temperature
    ON leads (workspace_id, lead_temperature, last_activity_at DESC, lead_id);
CREATE INDEX IF NOT EXISTS leads_ws_domisili ON leads (workspace_id, lower(domisili));
CREATE INDEX IF NOT EXISTS leads_ws_business ON leads (workspace_id, lower(business_type));
CREATE INDEX IF NOT EXISTS leads_ws_urgency ON leads (workspace_id, urgency_level);

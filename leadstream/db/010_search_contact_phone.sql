-- `q` also finds a lead by the phone a person typed for it (`contact_phone`, issue #25);
-- the expression is http.queries.SEARCH_EXPR, to the letter, so the planner uses the index.
DROP INDEX IF EXISTS leads_search2_trgm;
CREATE INDEX IF NOT EXISTS leads_search3_trgm ON leads USING gin (
    (coalesce(name, '') || ' ' || coalesce(phone_e164, '') || ' ' || coalesce(contact_phone, '')
     || ' ' || coalesce(business_type, '') || ' ' || coalesce(domisili, '') || ' '
     || coalesce(interest_motivation, '') || ' ' || coalesce(objection_raised, ''))
    gin_trgm_ops);

-- Two indexes of 001 that no query uses since 005: disk and upkeep for nothing (their cost
-- per flush measured within the noise, bench/flush_sql.py, issue #31). The text search is `ILIKE` over the trigram index
-- (leads_search3_trgm), never a tsvector; the score sort is `coalesce(lead_score, -1)`
-- (leads_ws_score_key).
DROP INDEX IF EXISTS leads_text_search;
DROP INDEX IF EXISTS leads_ws_score;

-- v8: merges and identity changes (issue #18).

-- The full identity Kapso and Meta give: the business-scoped id (bsuid, since v3), its
-- parent, and the username.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS parent_bsuid text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS username text;

-- A number moves between leads when a contact changes number or two leads merge, and the
-- two rows are written by different partitions in no fixed order: a unique index would
-- refuse (and dead-letter) the survivor's row while the duplicate's still holds the number.
-- A number is unique among the leads the team sees (merged_into IS NULL) once both rows are
-- written; the index stays for lookups.
DROP INDEX IF EXISTS leads_workspace_phone;
CREATE INDEX IF NOT EXISTS leads_ws_phone ON leads (workspace_id, phone_e164)
    WHERE phone_e164 IS NOT NULL;
CREATE INDEX IF NOT EXISTS leads_merged_into ON leads (merged_into) WHERE merged_into IS NOT NULL;

-- Every lead and the lead the team now sees it as (itself, or the end of its merge chain):
-- join a table's lead_id through this to read a merged lead's rows under its survivor.
CREATE OR REPLACE VIEW lead_survivors AS
WITH RECURSIVE chain AS (
    SELECT lead_id, lead_id AS survivor_id, merged_into, 0 AS depth FROM leads
    UNION ALL
    SELECT c.lead_id, l.lead_id, l.merged_into, c.depth + 1
    FROM chain c JOIN leads l ON l.lead_id = c.merged_into
    WHERE c.depth < 16
)
SELECT lead_id, survivor_id FROM chain WHERE merged_into IS NULL;

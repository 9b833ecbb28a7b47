"""Leads seeded straight into the replica (the API tests, bench/api_list.py): $1 a prefix,
$2 the workspace, $3 the first phone number, $4 the first activity time, $5 how many."""

#: the spread of activity times, in minutes (the API tests page through 240 leads)
N = 240
SEED = f"""
INSERT INTO leads (lead_id, workspace_id, lead_key, phone_e164, name, business_type, domisili,
                   urgency_level, lead_score, lead_temperature, lead_status, created_at,
                   updated_at, last_activity_at, version)
SELECT md5($1 || i)::uuid, $2, $2 || ':' || $1 || i, '+62812' || lpad((i + $3)::text, 8, '0'),
       'Lead ' || $1 || i,
       (ARRAY['Kuliner', 'Fashion', 'Jasa'])[i % 3 + 1],
       (ARRAY['Jakarta', 'Bandung'])[i % 2 + 1],
       (ARRAY['high', 'low', 'low', 'medium'])[i % 4 + 1],
       CASE WHEN i % 5 = 0 THEN NULL ELSE i % 101 END,
       (ARRAY['hot', 'warm', 'lukewarm', 'cold'])[i % 4 + 1],
       (ARRAY['new', 'qualified', 'contacted', 'converted', 'archived'])[i % 5 + 1],
       $4::timestamptz + i * interval '1 minute', now(),
       $4::timestamptz + ((i * 37) % {N}) * interval '1 minute' + (i % 3) * interval '1 hour', 1
FROM generate_series(1, $5) AS i
"""

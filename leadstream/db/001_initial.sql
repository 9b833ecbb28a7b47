-- leadstream replica schema v1 (contract §4). Column names are the human-readable ones the
-- dashboards use; extra columns beyond the contract are marked.

CREATE TABLE IF NOT EXISTS workspaces (
    workspace_id   text PRIMARY KEY,
    region         text NOT NULL DEFAULT 'ID',
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS workspace_numbers (
    phone_number_id text PRIMARY KEY,
    workspace_id    text NOT NULL REFERENCES workspaces(workspace_id),
    webhook_secret  text NOT NULL,          -- needed in clear to compute the HMAC
    verify_token    text,                   -- Meta GET hub.verify_token
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256   text PRIMARY KEY,         -- only the hash is stored
    workspace_id   text NOT NULL REFERENCES workspaces(workspace_id),
    role           text NOT NULL CHECK (role IN ('human', 'brain-bot', 'sarah-bot')),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS leads (
    lead_id               uuid PRIMARY KEY,
    workspace_id          text NOT NULL,
    lead_key              text NOT NULL,          -- extra: the Kafka key
    phone_e164            text,
    wa_id                 text,
    bsuid                 text,
    name                  text,
    kapso_name            text,
    sarah_name            text,
    contact_phone         text,                   -- extra: phone edited by a human
    business_type         text,
    domisili              text,
    business_duration     text,
    pain_points           text[] NOT NULL DEFAULT '{}',
    priority              text,
    urgency_level         text,
    next_step             text,                   -- extra: Sarah's suggested next step
    lead_score            integer CHECK (lead_score BETWEEN 0 AND 100),
    lead_temperature      text CHECK (lead_temperature IN ('hot', 'warm', 'lukewarm', 'cold')),
    lead_status           text NOT NULL DEFAULT 'new'
                          CHECK (lead_status IN ('new', 'qualified', 'contacted', 'converted', 'archived')),
    chat_phase            text,
    status_updated_at     timestamptz,
    status_updated_by     text,
    kapso_conversation_id text,
    conversation_state    text,                   -- extra
    message_count         integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    last_message_at       timestamptz,
    last_inbound_at       timestamptz,
    last_outbound_at      timestamptz,
    last_contact_at       timestamptz,
    last_activity_at      timestamptz NOT NULL,
    version               bigint NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS leads_workspace_phone
    ON leads (workspace_id, phone_e164) WHERE phone_e164 IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS leads_lead_key ON leads (lead_key);
CREATE INDEX IF NOT EXISTS leads_ws_status_activity
    ON leads (workspace_id, lead_status, last_activity_at DESC, lead_id);
CREATE INDEX IF NOT EXISTS leads_ws_activity ON leads (workspace_id, last_activity_at DESC, lead_id);
CREATE INDEX IF NOT EXISTS leads_ws_score ON leads (workspace_id, lead_score DESC NULLS LAST, lead_id);
CREATE INDEX IF NOT EXISTS leads_text_search ON leads USING gin (
    to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(business_type, '') || ' '
                || coalesce(phone_e164, '')));

CREATE TABLE IF NOT EXISTS messages (
    message_id       text PRIMARY KEY,            -- the wamid
    lead_id          uuid NOT NULL,
    workspace_id     text NOT NULL,
    conversation_id  text,
    direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    type             text NOT NULL,
    text             text,
    origin           text,                        -- extra
    status           text,
    error            text,                        -- extra
    sent_at          timestamptz NOT NULL,
    version          bigint NOT NULL              -- extra: guards the upsert
);
CREATE INDEX IF NOT EXISTS messages_lead_sent ON messages (lead_id, sent_at DESC);

CREATE TABLE IF NOT EXISTS lead_status_history (
    event_id      text PRIMARY KEY,
    lead_id       uuid NOT NULL,
    workspace_id  text NOT NULL,                  -- extra
    from_status   text,
    to_status     text NOT NULL,
    changed_by    text NOT NULL,
    reason        text,
    changed_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS status_history_lead ON lead_status_history (lead_id, changed_at DESC);

CREATE TABLE IF NOT EXISTS lead_notes (
    note_id      text PRIMARY KEY,
    lead_id      uuid NOT NULL,
    workspace_id text NOT NULL,                   -- extra
    author       text NOT NULL,
    author_type  text NOT NULL CHECK (author_type IN ('human', 'bot', 'system')),
    content      text NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_lead ON lead_notes (lead_id, created_at DESC);

CREATE TABLE IF NOT EXISTS lead_daily_activity (
    lead_id           uuid NOT NULL,
    day               date NOT NULL,
    workspace_id      text NOT NULL,              -- extra
    inbound_count     integer NOT NULL DEFAULT 0,
    outbound_count    integer NOT NULL DEFAULT 0,
    status_changes    jsonb NOT NULL DEFAULT '[]',
    first_message_at  timestamptz,
    last_message_at   timestamptz,
    summary           text,
    version           bigint NOT NULL DEFAULT 0,  -- extra
    PRIMARY KEY (lead_id, day)
);

CREATE TABLE IF NOT EXISTS sync_failures (
    id             bigserial PRIMARY KEY,
    event_id       text UNIQUE NOT NULL,
    stage          text NOT NULL,
    reason         text NOT NULL,
    source_topic   text,
    source_partition integer,
    source_offset  bigint,
    workspace_id   text,
    failed_at      timestamptz NOT NULL,
    original_b64   text NOT NULL
);

-- The pipeline's own tables, in schema docket beside the patients table it
-- reads and updates but does not own.

-- One row per patient run: the checkpoints of its main chain of steps.
CREATE TABLE docket.runs (
    run_id           uuid PRIMARY KEY,
    patient_id       text NOT NULL,
    -- task, search, poll, fetch, documents, report, done, abandoned
    state            text NOT NULL,
    -- Bumped by every step of the main chain; a message carries the value it
    -- was sent with, so a stale or duplicated message is recognised and dropped.
    seq              bigint NOT NULL DEFAULT 0,
    requests         int NOT NULL DEFAULT 1,
    task_id          text,
    search_attempt   int NOT NULL DEFAULT 0,
    job_id           text,
    holds_job_slot   boolean NOT NULL DEFAULT false,
    polls            int NOT NULL DEFAULT 0,
    archive_url      text,
    archive_fetched  boolean NOT NULL DEFAULT false,
    docs_total       int,
    docs_done        int NOT NULL DEFAULT 0,
    docs_failed      int NOT NULL DEFAULT 0,
    documents_status text,
    tt_status_set    boolean NOT NULL DEFAULT false,
    report_id        text,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

-- At most one run in progress per patient: a second request joins it.
CREATE UNIQUE INDEX runs_one_active_per_patient ON docket.runs (patient_id) WHERE finished_at IS NULL;
CREATE INDEX runs_by_patient ON docket.runs (patient_id, created_at DESC);
CREATE INDEX runs_holding_job_slots ON docket.runs (run_id) WHERE holds_job_slot;
CREATE INDEX runs_active_by_state ON docket.runs (state) WHERE finished_at IS NULL;

-- One row per archive entry.
CREATE TABLE docket.documents (
    run_id       uuid NOT NULL REFERENCES docket.runs ON DELETE CASCADE,
    doc          int NOT NULL,
    -- The entry's path inside the archive, as the report shows it.
    name         text NOT NULL,
    -- A sanitised form of the name for storage keys, made once by fetch.
    key_name     text NOT NULL,
    -- extracted, stored, done, failed
    state        text NOT NULL,
    size         bigint,
    kind         text,
    original_key text,
    pdf_key      text,
    pages        int,
    reason       text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, doc)
);

-- Messages committed together with the state change that caused them,
-- published right after the commit, or by the relay if that failed.
CREATE TABLE docket.outbox (
    id            bigserial PRIMARY KEY,
    queue         text NOT NULL,
    body          bytea NOT NULL,
    run_id        uuid,
    message_id    uuid NOT NULL,
    attempt       int NOT NULL DEFAULT 0,
    not_before_ms bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- What happened to a run, for `docket status`.
CREATE TABLE docket.run_events (
    id      bigserial PRIMARY KEY,
    run_id  uuid NOT NULL REFERENCES docket.runs ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    stage   text NOT NULL,
    event   text NOT NULL
);
CREATE INDEX run_events_by_run ON docket.run_events (run_id, id);

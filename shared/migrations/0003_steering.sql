-- Work the operator steers: batches and priorities, the waiting rooms that
-- serve them (priority first, then round robin between batches), pauses and
-- cancels.

-- A batch is an operator's name for a set of requests. Each waiting room
-- remembers when it last served the batch: the least recently served batch
-- of the highest priority goes next.
CREATE TABLE docket.batches (
    name            text PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_task_at    timestamptz,
    last_search_at  timestamptz,
    last_convert_at timestamptz
);
INSERT INTO docket.batches (name) VALUES ('default') ON CONFLICT DO NOTHING;

ALTER TABLE docket.runs
    ADD COLUMN batch text NOT NULL DEFAULT 'default' REFERENCES docket.batches,
    -- 0 urgent, 1 normal, 2 bulk: lower goes first.
    ADD COLUMN priority smallint NOT NULL DEFAULT 1,
    -- A waiting room's worker serves the run until then; after a crash the
    -- claim lapses and another worker takes the run.
    ADD COLUMN claimed_until timestamptz,
    -- A failed attempt in a waiting room: not served again before then.
    ADD COLUMN not_before timestamptz,
    ADD COLUMN attempts int NOT NULL DEFAULT 0,
    ADD COLUMN cancelled_at timestamptz,
    -- The step the run was at when it was cancelled.
    ADD COLUMN cancelled_in text;

-- The waiting rooms' order: priority, then (per batch) age.
CREATE INDEX runs_waiting ON docket.runs (state, priority, created_at) WHERE finished_at IS NULL;
CREATE INDEX runs_by_batch ON docket.runs (batch, state);

-- What is paused: everything (scope 'all', name ''), a batch, or a patient.
-- A run is paused while any scope covering it is; resuming one scope leaves
-- the others in force.
CREATE TABLE docket.pauses (
    scope text NOT NULL CHECK (scope IN ('all', 'batch', 'patient')),
    name  text NOT NULL,
    at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name)
);

CREATE FUNCTION docket.paused(run_batch text, run_patient text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM docket.pauses p
        WHERE p.scope = 'all'
           OR (p.scope = 'batch' AND p.name = run_batch)
           OR (p.scope = 'patient' AND p.name = run_patient))
$$;

-- Documents: 'stored' now means waiting in the conversion room;
-- 'converting' means sent to a converter.
ALTER TABLE docket.documents
    ADD COLUMN dispatched_at timestamptz,
    ADD COLUMN finished_at   timestamptz;
CREATE INDEX documents_waiting ON docket.documents (run_id, doc) WHERE state = 'stored';
CREATE INDEX documents_converting ON docket.documents (run_id) WHERE state = 'converting';
CREATE INDEX documents_finished ON docket.documents (finished_at) WHERE finished_at IS NOT NULL;

-- Rows written by a tool with no broker connection (the CLI's resume and
-- cancel): the services' relays publish them at once instead of after the
-- grace they give a service's own eager publish.
ALTER TABLE docket.outbox ADD COLUMN relay_now boolean NOT NULL DEFAULT false;

-- A run whose step message was parked (by a handler, or by the broker after
-- too many deliveries) waits for an operator's replay or a new request for
-- the patient; it no longer holds a DocEx job slot meanwhile.
ALTER TABLE docket.runs ADD COLUMN parked boolean NOT NULL DEFAULT false;
CREATE INDEX runs_parked ON docket.runs (run_id) WHERE parked;

-- When the run's current DocEx job was started: an urgent run's polls keep
-- to their schedule by the job's age, whatever polls it made in between.
ALTER TABLE docket.runs ADD COLUMN job_started_at timestamptz;

/** A numbered schema change of the metadata database. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The metadata schema, in order. Never edit a released migration: add the next number.
 * Times are epoch milliseconds; lists are JSON text.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "jobs, tasks, coverage, processes and partition locks",
    sql: `
CREATE TABLE processes (
  id TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  hostname TEXT NOT NULL,
  start_marker TEXT,
  command TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL DEFAULT 'ingest',
  request_key TEXT NOT NULL,
  status TEXT NOT NULL
    CHECK (status IN ('pending', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
  provider TEXT NOT NULL,
  feed TEXT NOT NULL,
  adjustment TEXT NOT NULL,
  timeframe TEXT NOT NULL,
  symbols TEXT NOT NULL,
  start_date TEXT NOT NULL,
  end_date TEXT NOT NULL,
  params TEXT NOT NULL,
  process_id TEXT,
  pid INTEGER,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  updated_at INTEGER NOT NULL,
  error TEXT,
  bars_written INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_request ON jobs (request_key, created_at);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
CREATE TABLE tasks (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  symbol TEXT NOT NULL,
  start_date TEXT NOT NULL,
  end_date TEXT NOT NULL,
  days INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  bars_fetched INTEGER NOT NULL DEFAULT 0,
  bars_written INTEGER NOT NULL DEFAULT 0,
  bars_replaced INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  started_at INTEGER,
  finished_at INTEGER,
  PRIMARY KEY (job_id, seq)
);
CREATE TABLE ingested_days (
  source TEXT NOT NULL,
  timeframe TEXT NOT NULL,
  symbol TEXT NOT NULL,
  trading_date TEXT NOT NULL,
  bars INTEGER NOT NULL,
  job_id TEXT NOT NULL,
  ingested_at INTEGER NOT NULL,
  PRIMARY KEY (source, timeframe, symbol, trading_date)
) WITHOUT ROWID;
CREATE INDEX ingested_days_by_symbol ON ingested_days (symbol, timeframe, trading_date);
CREATE TABLE partition_locks (
  partition TEXT PRIMARY KEY,
  process_id TEXT NOT NULL,
  acquired_at INTEGER NOT NULL
);
`,
  },
  {
    version: 2,
    name: "validation counts per task",
    sql: `
ALTER TABLE tasks ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN findings TEXT NOT NULL DEFAULT '{}';
`,
  },
  {
    version: 3,
    name: "validation reports",
    sql: `
CREATE TABLE validation_reports (
  id TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  job_id TEXT,
  timeframe TEXT NOT NULL,
  symbols TEXT NOT NULL,
  start_date TEXT NOT NULL,
  end_date TEXT NOT NULL,
  cross_check INTEGER NOT NULL DEFAULT 0,
  bars INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  warnings INTEGER NOT NULL,
  infos INTEGER NOT NULL,
  quarantined INTEGER NOT NULL,
  rules TEXT NOT NULL,
  settings TEXT NOT NULL,
  path TEXT NOT NULL
);
CREATE INDEX validation_reports_by_created ON validation_reports (created_at);
CREATE INDEX validation_reports_by_job ON validation_reports (job_id, created_at);
`,
  },
  {
    version: 4,
    name: "aggregation state per target partition",
    sql: `
CREATE TABLE aggregation_state (
  target TEXT PRIMARY KEY,
  timeframe TEXT NOT NULL,
  symbol TEXT NOT NULL,
  session TEXT NOT NULL,
  sources TEXT NOT NULL,
  target_fingerprint TEXT NOT NULL,
  rows INTEGER NOT NULL,
  native_rows INTEGER NOT NULL,
  aggregated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX aggregation_state_by_symbol ON aggregation_state (symbol, timeframe);
`,
  },
  {
    version: 5,
    name: "metric totals across processes and their history",
    sql: `
CREATE TABLE metric_series (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  labels TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('counter', 'histogram')),
  value REAL NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  UNIQUE (name, labels)
);
CREATE TABLE metric_samples (
  series_id INTEGER NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
  ts INTEGER NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE INDEX metric_samples_by_ts ON metric_samples (ts);
CREATE TABLE series_freshness (
  symbol TEXT NOT NULL,
  timeframe TEXT NOT NULL,
  last_ts INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (symbol, timeframe)
) WITHOUT ROWID;
`,
  },
  {
    version: 6,
    name: "storage v2: the manifest of live Parquet files",
    sql: `
CREATE TABLE bar_files (
  path TEXT PRIMARY KEY,
  tree TEXT NOT NULL CHECK (tree IN ('bars', 'quarantine')),
  timeframe TEXT NOT NULL,
  symbol TEXT NOT NULL,
  year INTEGER NOT NULL,
  first_date TEXT NOT NULL,
  last_date TEXT NOT NULL,
  rows INTEGER NOT NULL,
  min_ts INTEGER NOT NULL,
  max_ts INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  job_id TEXT,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX bar_files_by_partition ON bar_files (tree, timeframe, symbol, year, first_date);
CREATE TABLE manifest_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO manifest_version VALUES (1, 0);
`,
  },
  {
    version: 7,
    name: "the outcome of prune, delete and export jobs",
    sql: `
ALTER TABLE jobs ADD COLUMN result TEXT;
`,
  },
  {
    version: 8,
    name: "symbol master with history, reference updates and universes",
    sql: `
CREATE TABLE symbol_history (
  row_id INTEGER PRIMARY KEY,
  source TEXT NOT NULL,
  instrument_id TEXT NOT NULL,
  ticker TEXT NOT NULL,
  name TEXT,
  exchange TEXT,
  asset_class TEXT NOT NULL,
  status TEXT NOT NULL,
  list_date TEXT,
  delist_date TEXT,
  figi TEXT,
  cusip TEXT,
  cik TEXT,
  provider_id TEXT,
  as_of TEXT NOT NULL,
  valid_from TEXT NOT NULL,
  valid_to TEXT CHECK (valid_to IS NULL OR valid_to >= valid_from),
  recorded_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX symbol_history_current ON symbol_history (source, instrument_id)
  WHERE valid_to IS NULL;
CREATE INDEX symbol_history_by_ticker ON symbol_history (ticker, valid_from);
CREATE INDEX symbol_history_by_instrument ON symbol_history (source, instrument_id, valid_from);
CREATE TABLE reference_updates (
  source TEXT NOT NULL,
  as_of TEXT NOT NULL,
  applied_at INTEGER NOT NULL,
  inserted INTEGER NOT NULL,
  changed INTEGER NOT NULL,
  delisted INTEGER NOT NULL,
  unchanged INTEGER NOT NULL,
  skipped INTEGER NOT NULL
);
CREATE INDEX reference_updates_by_source ON reference_updates (source, as_of);
CREATE TABLE universes (
  name TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('list', 'filter')),
  filter TEXT,
  description TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  CHECK ((kind = 'filter') = (filter IS NOT NULL))
);
CREATE TABLE universe_members (
  universe TEXT NOT NULL REFERENCES universes (name) ON DELETE CASCADE,
  symbol TEXT NOT NULL,
  valid_from TEXT NOT NULL,
  valid_to TEXT CHECK (valid_to IS NULL OR valid_to > valid_from),
  added_at INTEGER NOT NULL,
  PRIMARY KEY (universe, symbol, valid_from)
) WITHOUT ROWID;
`,
  },
  {
    version: 9,
    name: "schedule runs and the scheduler lease",
    sql: `
CREATE TABLE schedule_runs (
  id INTEGER PRIMARY KEY,
  schedule TEXT NOT NULL,
  command TEXT NOT NULL,
  trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'retry', 'manual')),
  planned_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  status TEXT NOT NULL
    CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'skipped', 'cancelled')),
  attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
  job_ids TEXT NOT NULL DEFAULT '[]',
  process_id TEXT,
  pid INTEGER,
  error TEXT
);
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule, planned_at);
CREATE INDEX schedule_runs_by_status ON schedule_runs (status);
CREATE TABLE scheduler_lease (
  name TEXT PRIMARY KEY,
  process_id TEXT NOT NULL,
  pid INTEGER NOT NULL,
  hostname TEXT NOT NULL,
  acquired_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);
`,
  },
];

-- schema version 1 of the elevate store (migration 0 -> 1 in src/core/store.c)
CREATE TABLE requests (  id TEXT PRIMARY KEY, profile TEXT NOT NULL, requester TEXT NOT NULL,  state TEXT NOT NULL, duration INTEGER NOT NULL, reason TEXT, ticket TEXT,  role_arn TEXT NOT NULL, region TEXT, created_at INTEGER NOT NULL,  pending_until INTEGER NOT NULL, decided_at INTEGER, window_start INTEGER,  window_end INTEGER, ended_at INTEGER, failure_code TEXT, failure_message TEXT,  updated_at INTEGER NOT NULL);
CREATE INDEX requests_state ON requests(state);
CREATE TABLE approvals (  request_id TEXT NOT NULL REFERENCES requests(id), approver TEXT NOT NULL,  decision TEXT NOT NULL CHECK (decision IN ('approve','deny')), comment TEXT,  at INTEGER NOT NULL, PRIMARY KEY (request_id, approver));
CREATE TABLE grants (  request_id TEXT PRIMARY KEY REFERENCES requests(id), role_session_name TEXT NOT NULL,  assumed_role_arn TEXT, assumed_role_id TEXT, access_key_id TEXT, creds_box BLOB,  creds_expire_at INTEGER, minted_at INTEGER);
CREATE TABLE nonces (nonce TEXT PRIMARY KEY, who TEXT NOT NULL, seen_at INTEGER NOT NULL);
CREATE TABLE audit (  seq INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL,  request_id TEXT, data TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE INDEX audit_request ON audit(request_id);

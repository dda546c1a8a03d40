BEGIN TRANSACTION;
CREATE TABLE acknowledgements (
        alert_id TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
        acknowledged_at TEXT NOT NULL, actor TEXT NOT NULL);
INSERT INTO "acknowledgements" VALUES('cbbccd6ee2fd4fc0a0b754e86a6f96eb','2026-12-01T09:48:36+00:00','maker');
CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY, source TEXT NOT NULL, speaker TEXT NOT NULL, wall_time TEXT NOT NULL,
        payload TEXT NOT NULL, delivered_at TEXT);
INSERT INTO "alerts" VALUES('cbbccd6ee2fd4fc0a0b754e86a6f96eb','/data/tones.flac','low','2026-12-01T09:48:36.070+00:00','{"alert_id": "cbbccd6ee2fd4fc0a0b754e86a6f96eb", "source": "/data/tones.flac", "speaker": "low", "stream_time_s": 2.016, "segment_start_s": 1.016, "score": 1.0, "llr": 10.0, "speech_s": 1.0, "wall_time": "2026-12-01T09:48:36.070+00:00"}','2026-12-01T09:48:36+00:00');
INSERT INTO "alerts" VALUES('401326c2e15045d19e490205c72aa75e','/data/tones.flac','high','2026-12-01T09:48:36.094+00:00','{"alert_id": "401326c2e15045d19e490205c72aa75e", "source": "/data/tones.flac", "speaker": "high", "stream_time_s": 10.496, "segment_start_s": 9.496, "score": 1.0, "llr": 10.0, "speech_s": 1.0, "wall_time": "2026-12-01T09:48:36.094+00:00"}','2026-12-01T09:48:36+00:00');
CREATE TABLE audit (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, detail TEXT NOT NULL);
INSERT INTO "audit" VALUES(1,'2026-12-01T09:48:36+00:00','maker','enroll','low','/tmp/tmpf3kmka12/low.wav sha256=8a854d2e0fd95e8a5f6edf97e04883bde98b98136b1f5540949e6492c8c8c328 speech_s=4.99 note=''tone, made by make_v3_db.py''');
INSERT INTO "audit" VALUES(2,'2026-12-01T09:48:36+00:00','maker','enroll','high','/tmp/tmpf3kmka12/high.wav sha256=8fca8ea530cfe54f17e51333e579577796c79a41b8f64763b78f37f0850ad24f speech_s=4.99 note=''tone, made by make_v3_db.py''');
INSERT INTO "audit" VALUES(3,'2026-12-01T09:48:36+00:00','maker','watch','high,low','/data/tones.flac');
INSERT INTO "audit" VALUES(4,'2026-12-01T09:48:36+00:00','maker','token-create','operator','');
INSERT INTO "audit" VALUES(5,'2026-12-01T09:48:36+00:00','maker','webhook-add','1','http://127.0.0.1:9/hook');
INSERT INTO "audit" VALUES(6,'2026-12-01T09:48:36+00:00','maker','acknowledge','cbbccd6ee2fd4fc0a0b754e86a6f96eb','');
CREATE TABLE "deliveries" (
        alert_id TEXT NOT NULL REFERENCES alerts(alert_id) ON DELETE CASCADE,
        event TEXT NOT NULL DEFAULT 'alert',
        webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
        delivered_at TEXT, last_error TEXT, PRIMARY KEY (webhook_id, alert_id, event));
INSERT INTO "deliveries" VALUES('401326c2e15045d19e490205c72aa75e','alert',1,'skipped',0,0.0,NULL,NULL);
INSERT INTO "deliveries" VALUES('cbbccd6ee2fd4fc0a0b754e86a6f96eb','alert',1,'skipped',0,0.0,NULL,NULL);
CREATE TABLE detections (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, speaker TEXT NOT NULL, start_s REAL NOT NULL,
        end_s REAL NOT NULL, score REAL NOT NULL, llr REAL NOT NULL, created_at TEXT NOT NULL, language TEXT NOT NULL DEFAULT '', language_probability REAL NOT NULL DEFAULT 0);
INSERT INTO "detections" VALUES(1,'/data/tones.flac','low',1.016,4.416,1.0,10.0,'2026-12-01T09:48:36+00:00','',0.0);
INSERT INTO "detections" VALUES(2,'/data/tones.flac','high',9.496,12.096,1.0,10.0,'2026-12-01T09:48:36+00:00','',0.0);
CREATE TABLE embeddings (
        id INTEGER PRIMARY KEY,
        enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
        model TEXT NOT NULL, condition TEXT NOT NULL, vector BLOB NOT NULL);
INSERT INTO "embeddings" VALUES(1,1,'tones','clean',X'77393D2A6954592A6CF5FB2A65CFF42A36A3072B8D20972B30AC692B08268C2BE573F32B0000803FC149022C823E562C0CC26B2C16B7842CC3E7CF2CA369002D482D382D335B6D2D1BF3662D5781952DB17AB32D3270042E7C61182E55B0372E1DDD532EA2C7862E94A2B32E6216EB2E5087192F9784312FB2F95B2F6A61922F');
INSERT INTO "embeddings" VALUES(2,2,'tones','clean',X'DC0DC32AB915842A61AD332BE376352BEF5D482B251B2D2B23F6472BBB2CBC2B5AD3E62B8373CE2B336C052CC1154C2CD5A67C2C98F6342CCCBACD2C5DFDEF2C43EB0D2DD959482D6BF35A2D216A8B2D3F87A12D0000803F510B112E48F0312EE586922E35AF9D2EDF17BA2EA388E02E1527142FA560412FF8A86D2F4176A82F');
CREATE TABLE enrollments (
        id INTEGER PRIMARY KEY,
        speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
        file TEXT NOT NULL, sha256 TEXT NOT NULL, speech_s REAL NOT NULL, snr_db REAL NOT NULL,
        consistency REAL NOT NULL, note TEXT NOT NULL, created_at TEXT NOT NULL, model TEXT NOT NULL);
INSERT INTO "enrollments" VALUES(1,1,'/tmp/tmpf3kmka12/low.wav','8a854d2e0fd95e8a5f6edf97e04883bde98b98136b1f5540949e6492c8c8c328',4.99,2.1,1.0,'tone, made by make_v3_db.py','2026-12-01T09:48:35+00:00','tones');
INSERT INTO "enrollments" VALUES(2,2,'/tmp/tmpf3kmka12/high.wav','8fca8ea530cfe54f17e51333e579577796c79a41b8f64763b78f37f0850ad24f',4.99,2.1,1.0,'tone, made by make_v3_db.py','2026-12-01T09:48:36+00:00','tones');
CREATE TABLE recordings (
        id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, model TEXT NOT NULL, path TEXT NOT NULL,
        duration_s REAL NOT NULL, speech_s REAL NOT NULL, indexed_at TEXT NOT NULL,
        spans BLOB NOT NULL, vectors BLOB NOT NULL, bandwidth_hz REAL NOT NULL DEFAULT 0, UNIQUE (sha256, model));
INSERT INTO "recordings" VALUES(1,'5b3d578f2bb6e14aee8d1a8e818c0146a1b668fb6d651e2be781ffc10abf2454','tones','/data/tones.flac',12.5,7.0,'2026-12-01T09:48:36+00:00',X'4A0C823F2B879640000040400000803F3BDFAF4037890141000000400000803F9EEF174137894141000000400000803F',X'000000000000000000000000000000000000003C00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003C000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003C0000000000000000000000000000000000000000',781.0);
CREATE TABLE search_hits (
        id INTEGER PRIMARY KEY, job_id TEXT NOT NULL REFERENCES search_jobs(id) ON DELETE CASCADE,
        source TEXT NOT NULL, speaker TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,
        score REAL NOT NULL, llr REAL NOT NULL);
CREATE TABLE search_jobs (
        id TEXT PRIMARY KEY, actor TEXT NOT NULL, paths TEXT NOT NULL, speakers TEXT, status TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, recordings TEXT, errors TEXT,
        created_at TEXT NOT NULL, finished_at TEXT);
INSERT INTO "search_jobs" VALUES('job1','maker','["tones.flac"]','["high"]','done',1,1,'[]','[]','2026-12-01T09:48:36+00:00','2026-12-01T09:48:36+00:00');
CREATE TABLE snippets (
        alert_id TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
        speaker TEXT NOT NULL, media_type TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL, audio BLOB NOT NULL);
INSERT INTO "snippets" VALUES('cbbccd6ee2fd4fc0a0b754e86a6f96eb','low','audio/wav',1.0,2.0,X'524946462D6E6F742D7265616C6C792D617564696F');
CREATE TABLE speakers (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
INSERT INTO "speakers" VALUES(1,'low','2026-12-01T09:48:36+00:00');
INSERT INTO "speakers" VALUES(2,'high','2026-12-01T09:48:36+00:00');
CREATE TABLE tokens (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
        created_by TEXT NOT NULL, role TEXT NOT NULL DEFAULT 'admin', expires_at TEXT);
INSERT INTO "tokens" VALUES(1,'operator','101ab2e66ca121e532e8c1785090c308e5732db20864fbd8d0b9708a3824a4b5','2026-12-01T09:48:36+00:00','maker','admin',NULL);
CREATE TABLE transcripts (
        alert_id TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
        speaker TEXT NOT NULL, status TEXT NOT NULL, language TEXT NOT NULL, text TEXT NOT NULL, payload TEXT NOT NULL,
        created_at TEXT NOT NULL);
INSERT INTO "transcripts" VALUES('401326c2e15045d19e490205c72aa75e','high','done','en','over the bridge','{"alert_id": "401326c2e15045d19e490205c72aa75e", "source": "/data/tones.flac", "speaker": "high", "start_s": 1.0, "end_s": 3.0, "status": "done", "language": "en", "language_probability": 0.9, "text": "over the bridge", "segments": [], "reason": "", "transcribe_s": 0.0, "wall_time": ""}','2026-12-01T15:01:27+00:00');
CREATE TABLE voice_summaries (
        recording_id INTEGER PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE, model TEXT NOT NULL,
        centroids BLOB NOT NULL);
INSERT INTO "voice_summaries" VALUES(1,'tones',X'000000000000000000000000000000000000003C00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003C000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003C0000000000000000000000000000000000000000');
CREATE TABLE webhooks (
        id INTEGER PRIMARY KEY, url TEXT NOT NULL, secret TEXT, speakers TEXT, created_at TEXT NOT NULL,
        created_by TEXT NOT NULL);
INSERT INTO "webhooks" VALUES(1,'http://127.0.0.1:9/hook','s3cret','["low"]','2026-12-01T09:48:36+00:00','maker');
CREATE INDEX detections_speaker ON detections (speaker);
CREATE INDEX alerts_speaker ON alerts (speaker);
CREATE INDEX snippets_speaker ON snippets (speaker);
CREATE INDEX search_hits_job ON search_hits (job_id);
CREATE INDEX search_hits_speaker ON search_hits (speaker);
CREATE INDEX alerts_source ON alerts (source);
CREATE INDEX detections_created ON detections (created_at);
CREATE INDEX alerts_wall_time ON alerts (wall_time);
CREATE INDEX detections_turn ON detections (source, speaker, start_s);
CREATE INDEX transcripts_speaker ON transcripts (speaker);
CREATE INDEX transcripts_language ON transcripts (language);
CREATE TRIGGER transcripts_added AFTER INSERT ON transcripts BEGIN
        INSERT INTO transcript_words (rowid, text) VALUES (new.rowid, new.text); END;
CREATE TRIGGER transcripts_removed AFTER DELETE ON transcripts BEGIN
        INSERT INTO transcript_words (transcript_words, rowid, text) VALUES ('delete', old.rowid, old.text); END;
CREATE INDEX deliveries_pending ON deliveries (webhook_id, status);
CREATE INDEX deliveries_alert ON deliveries (alert_id);
CREATE VIRTUAL TABLE transcript_words USING fts5(text, content='transcripts', content_rowid='rowid');
INSERT INTO transcript_words (transcript_words) VALUES ('rebuild');
PRAGMA user_version = 5;
COMMIT;

-- The event log: one hash-chained stream of events per rollout.
CREATE TABLE events (
    stream    TEXT   NOT NULL,
    seq       BIGINT NOT NULL CHECK (seq >= 1),
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL,
    body      TEXT   NOT NULL,
    PRIMARY KEY (stream, seq)
);

-- How far each stream's effects have been carried out.
CREATE TABLE effect_progress (
    stream       TEXT   NOT NULL PRIMARY KEY,
    done_through BIGINT NOT NULL
);

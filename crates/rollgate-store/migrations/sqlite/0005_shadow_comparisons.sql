-- Each shadow stage's comparison of answers: its state (to go on counting
-- after a restart) and its latest report (for any replica, the CLI and the
-- archive). Examples in it were redacted before they were stored.
CREATE TABLE shadow_comparisons (
    rollout    TEXT    NOT NULL PRIMARY KEY,
    state      TEXT    NOT NULL,
    report     TEXT    NOT NULL,
    updated_ms BIGINT  NOT NULL
) WITHOUT ROWID;

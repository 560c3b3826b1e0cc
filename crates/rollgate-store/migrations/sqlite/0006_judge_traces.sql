-- Each judged rollout's trace for people: canary and baseline per interval
-- and every trigger's e-value and confidence sequence, thinned as it grows
-- (the dashboard's charts, from any replica and after a restart). The
-- state column is unused: a trace is its report.
CREATE TABLE judge_traces (
    rollout    TEXT    NOT NULL PRIMARY KEY,
    state      TEXT    NOT NULL,
    report     TEXT    NOT NULL,
    updated_ms BIGINT  NOT NULL
) WITHOUT ROWID;

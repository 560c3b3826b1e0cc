-- Replicas of one control plane: the leader's lease and every member's
-- heartbeat. The lease's token grows by one each time another replica (or the
-- same one after its lease ran out) takes it; the leader's writes carry the
-- token and are refused once it is stale (fencing). Times are the database's
-- clock in Unix milliseconds, so replicas' clocks need not agree.
CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    token      BIGINT  NOT NULL,
    expires_ms BIGINT  NOT NULL
);

CREATE TABLE members (
    id           TEXT    NOT NULL PRIMARY KEY,
    address      TEXT    NOT NULL,
    heartbeat_ms BIGINT  NOT NULL
);

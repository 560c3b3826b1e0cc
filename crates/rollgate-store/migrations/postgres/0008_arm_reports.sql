-- What every replica's gateway measured, for the leader's judge. Each
-- replica keeps one row of cumulative counters per arm it measures (the
-- leader sums them over replicas; a row outlives its replica, so the sum
-- never goes back), and appends the latencies it sampled since its last
-- report; the leader takes (deletes) them as it judges, so each sample is
-- judged once. Times are the database's clock in Unix milliseconds.
CREATE TABLE arm_counters (
    service     TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    arm         TEXT    NOT NULL,
    replica     TEXT    NOT NULL,
    requests    BIGINT  NOT NULL,
    errors      BIGINT  NOT NULL,
    saturated   BIGINT  NOT NULL,
    bad_outputs BIGINT  NOT NULL,
    complaints  BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL,
    PRIMARY KEY (service, version, arm, replica)
);

CREATE TABLE arm_samples (
    id           BIGSERIAL PRIMARY KEY,
    service      TEXT      NOT NULL,
    version      TEXT      NOT NULL,
    arm          TEXT      NOT NULL,
    kind         TEXT      NOT NULL,
    values_us    BIGINT[]  NOT NULL,
    population   BIGINT    NOT NULL,
    published_ms BIGINT    NOT NULL
);

CREATE INDEX arm_samples_by_arm ON arm_samples (service, version, arm);

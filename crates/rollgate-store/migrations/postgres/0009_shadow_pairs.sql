-- Pairs of answers (production's and the candidate's) that a follower's
-- gateway mirrored during a rollout's shadow stage, for the leader's
-- comparison: followers append them, the leader takes (deletes) them, so
-- each pair is compared once. `pair` is the pair as JSON; times are the
-- database's clock in Unix milliseconds.
CREATE TABLE shadow_pairs (
    id           BIGSERIAL PRIMARY KEY,
    rollout      TEXT      NOT NULL,
    pair         TEXT      NOT NULL,
    published_ms BIGINT    NOT NULL
);

CREATE INDEX shadow_pairs_by_rollout ON shadow_pairs (rollout, id);

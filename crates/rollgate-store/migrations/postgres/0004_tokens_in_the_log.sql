-- API tokens are events of the hash-chained `@tokens` stream now, and are
-- authorized from it: a side table could be edited without a trace.
DROP TABLE tokens;
